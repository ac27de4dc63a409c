import CCodecs

extension ImageDecoder {
    /// Decodes a PNG of any colour type (gray, gray+alpha, RGB, RGBA, palette; 1–16 bits) to 8-bit
    /// gray or RGB with libpng's simplified API; an alpha channel is dropped.
    static func decodePNG(_ bytes: [UInt8], path: String) throws -> Image {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func failure(_ what: String) -> DataError {
            let message = withUnsafeBytes(of: image.message) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            png_image_free(&image)
            return DataError.badImage(path: path, reason: "\(what): \(message.isEmpty ? "libpng error" : message)")
        }
        let began = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw failure("invalid PNG header") }
        let color = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let alpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        // Keep alpha while decoding and drop it afterwards, as PIL's convert("RGB") (and so Keras)
        // does: transparent pixels keep their colour instead of being composited onto black.
        image.format = (color ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (alpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        let channels = color ? 3 : 1, stored = channels + (alpha ? 1 : 0)
        let width = Int(image.width), height = Int(image.height)
        guard width * height <= 1 << 28 else {
            png_image_free(&image)
            throw DataError.badImage(path: path, reason: "\(width)x\(height) pixels is too large")
        }
        var decoded = [UInt8](repeating: 0, count: width * height * stored)
        let finished = decoded.withUnsafeMutableBytes {
            png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * stored), nil)
        }
        guard finished != 0 else { throw failure("cannot decode PNG data") }
        var pixels = decoded
        if alpha {
            pixels = [UInt8](repeating: 0, count: width * height * channels)
            for i in 0 ..< width * height {
                for c in 0 ..< channels { pixels[i * channels + c] = decoded[i * stored + c] }
            }
        }
        png_image_free(&image)
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }
}
