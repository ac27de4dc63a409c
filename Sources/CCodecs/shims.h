// zlib (gzip-compressed IDX files) and libpng (image-folder datasets, `ddp predict`).
// Only headers: Swift calls the libraries directly. Nothing here carries logic.
#ifndef SWIFTDDP_CCODECS_SHIMS_H
#define SWIFTDDP_CCODECS_SHIMS_H
#include <zlib.h>
#include <png.h>
#endif
