import CPrefetch

// The AVX2 + FMA register tile behind `PackedGEMM.multiply` (16 ymm registers of eight floats):
// a 6×16 micro-kernel (and a 6×8 one for narrow column panels) that multiply one packed A panel by
// one B panel with SIMD8 FMAs, their stores into C, and the cache blocks sized around them.
// Layouts of the packed panels: see PackedGEMM+Packing.swift. On other architectures this target
// is the portable path: the same code on the platform's own 8-float vectors.

extension PackedGEMM {
    /// The vector type of this target's kernels.
    public typealias Lanes = SIMD8<Float>
    /// Rows of C computed per micro-kernel call (one broadcast of A per row per k step).
    static let mr = 6
    /// Columns of C computed per micro-kernel call (two SIMD8 vectors).
    static let nr = 16
    /// Depth of one packed block: a KC×NR panel of B is 16 KiB, half of a 32 KiB L1.
    /// Every target must use the same KC: it fixes the order of each element's sum, so all
    /// paths give the same bits (NN `GEMMTests.testEveryPathGivesTheSameBits`).
    static let kc = 256
    /// Rows of op(A) packed at once: an MC×KC block of A is 96 KiB, well inside a 512 KiB L2.
    static let mc = 96
    /// Columns of C per outer block: an MC×NC block of C (192 KiB) stays in L2 across depth blocks.
    static let nc = 512

    /// The 6×16 register tile: twelve SIMD8 accumulators, two B vectors and one A broadcast fill
    /// 15 of the 16 ymm registers, so nothing spills.
    ///
    /// - c: the tile's top-left element, row stride `ldc`; `rows×columns` of it are written
    ///   (alpha·AB + beta·C; C read only when beta != 0).
    /// - a: one packed A panel `[depth][6]` (read). b: a B panel, 16 floats per k step with
    ///   `bStride` floats between steps: a packed panel (stride 16) or B itself (stride ldb) (read).
    @inline(__always)
    static func microKernel(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
        depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>()
        var c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        // The tile of C is read (beta != 0) and written only after the k loop: ask for its lines
        // now, so that they arrive while the loop computes instead of stalling the stores.
        for i in 0 ..< rows {
            ddp_prefetch_for_write(c + i * ldc)
            ddp_prefetch_for_write(c + i * ldc + nr - 1)
        }
        var pa = a
        var pb = UnsafeRawPointer(b)
        // One k step: two B vectors, six A broadcasts, twelve FMAs into independent accumulators.
        @inline(__always) func step(_ q: UnsafePointer<Float>, _ pb: UnsafeRawPointer, _ offset: Int) {
            let b0 = pb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            let b1 = pb.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self)
            var av = SIMD8<Float>(repeating: q[0])
            c00 = c00.addingProduct(av, b0)
            c01 = c01.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[1])
            c10 = c10.addingProduct(av, b0)
            c11 = c11.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[2])
            c20 = c20.addingProduct(av, b0)
            c21 = c21.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[3])
            c30 = c30.addingProduct(av, b0)
            c31 = c31.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[4])
            c40 = c40.addingProduct(av, b0)
            c41 = c41.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[5])
            c50 = c50.addingProduct(av, b0)
            c51 = c51.addingProduct(av, b1)
        }
        // Unrolled by four with constant offsets: one pointer update per four steps. Without it the
        // loop ran at about 80% of the FMA peak, with it at about 95% (measured on L1-resident panels).
        let rowBytes = bStride * MemoryLayout<Float>.stride
        for _ in 0 ..< depth / 4 {
            step(pa, pb, 0)
            step(pa + mr, pb, rowBytes)
            step(pa + 2 * mr, pb, 2 * rowBytes)
            step(pa + 3 * mr, pb, 3 * rowBytes)
            pa += 4 * mr
            pb += 4 * rowBytes
        }
        for _ in 0 ..< depth % 4 {
            step(pa, pb, 0)
            pa += mr
            pb += rowBytes
        }
        if columns == nr {
            // Full width: whole-vector stores of the live rows (fewer than six at m's ragged end,
            // which every column panel of a 64-row product reaches).
            storeRow(c, c00, c01, alpha: alpha, beta: beta)
            if rows > 1 { storeRow(c + ldc, c10, c11, alpha: alpha, beta: beta) }
            if rows > 2 { storeRow(c + 2 * ldc, c20, c21, alpha: alpha, beta: beta) }
            if rows > 3 { storeRow(c + 3 * ldc, c30, c31, alpha: alpha, beta: beta) }
            if rows > 4 { storeRow(c + 4 * ldc, c40, c41, alpha: alpha, beta: beta) }
            if rows > 5 { storeRow(c + 5 * ldc, c50, c51, alpha: alpha, beta: beta) }
        } else {
            // Fewer than 16 live columns (n's ragged end): park the whole register tile, then write
            // only the part inside C.
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * mr) { tile in
                tile[0] = c00
                tile[1] = c01
                tile[2] = c10
                tile[3] = c11
                tile[4] = c20
                tile[5] = c21
                tile[6] = c30
                tile[7] = c31
                tile[8] = c40
                tile[9] = c41
                tile[10] = c50
                tile[11] = c51
                storeEdge(
                    c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                    rows: rows, columns: columns, alpha: alpha, beta: beta)
            }
        }
    }

    /// The 6×8 tile for panels with at most eight live columns (n's ragged end): half the work of
    /// the 6×16 tile, which would compute eight columns that are thrown away. Reads the first eight
    /// floats of each k step of the B panel; same buffers and contract as `microKernel`.
    @inline(__always)
    static func narrowMicroKernel(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
        depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>()
        var c3 = SIMD8<Float>(), c4 = SIMD8<Float>(), c5 = SIMD8<Float>()
        var pa = a
        var pb = UnsafeRawPointer(b)
        @inline(__always) func step(_ q: UnsafePointer<Float>, _ pb: UnsafeRawPointer, _ offset: Int) {
            let b0 = pb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            c0 = c0.addingProduct(SIMD8<Float>(repeating: q[0]), b0)
            c1 = c1.addingProduct(SIMD8<Float>(repeating: q[1]), b0)
            c2 = c2.addingProduct(SIMD8<Float>(repeating: q[2]), b0)
            c3 = c3.addingProduct(SIMD8<Float>(repeating: q[3]), b0)
            c4 = c4.addingProduct(SIMD8<Float>(repeating: q[4]), b0)
            c5 = c5.addingProduct(SIMD8<Float>(repeating: q[5]), b0)
        }
        let rowBytes = bStride * MemoryLayout<Float>.stride
        for _ in 0 ..< depth / 4 {
            step(pa, pb, 0)
            step(pa + mr, pb, rowBytes)
            step(pa + 2 * mr, pb, 2 * rowBytes)
            step(pa + 3 * mr, pb, 3 * rowBytes)
            pa += 4 * mr
            pb += 4 * rowBytes
        }
        for _ in 0 ..< depth % 4 {
            step(pa, pb, 0)
            pa += mr
            pb += rowBytes
        }
        if columns == nr / 2 {
            // Eight live columns (a width that is 8 more than a multiple of 16): one vector a row.
            storeHalfRow(c, c0, alpha: alpha, beta: beta)
            if rows > 1 { storeHalfRow(c + ldc, c1, alpha: alpha, beta: beta) }
            if rows > 2 { storeHalfRow(c + 2 * ldc, c2, alpha: alpha, beta: beta) }
            if rows > 3 { storeHalfRow(c + 3 * ldc, c3, alpha: alpha, beta: beta) }
            if rows > 4 { storeHalfRow(c + 4 * ldc, c4, alpha: alpha, beta: beta) }
            if rows > 5 { storeHalfRow(c + 5 * ldc, c5, alpha: alpha, beta: beta) }
            return
        }
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * mr) { tile in
            let zero = SIMD8<Float>()
            tile[0] = c0
            tile[1] = zero
            tile[2] = c1
            tile[3] = zero
            tile[4] = c2
            tile[5] = zero
            tile[6] = c3
            tile[7] = zero
            tile[8] = c4
            tile[9] = zero
            tile[10] = c5
            tile[11] = zero
            storeEdge(
                c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                rows: rows, columns: columns, alpha: alpha, beta: beta)
        }
    }
}
