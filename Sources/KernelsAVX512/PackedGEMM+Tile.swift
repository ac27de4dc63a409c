import CPrefetch

// The AVX-512 register tile behind `PackedGEMM.multiply` (32 zmm registers of sixteen floats):
// an 8×32 micro-kernel (and an 8×16 one for narrow column panels) that multiply one packed A panel
// by one B panel, their stores into C, and the cache blocks sized around them. Layouts of the
// packed panels: see PackedGEMM+Packing.swift.
//
// Why 8×32: sixteen accumulators, two B vectors and a broadcast need 19 of the 32 registers, so
// nothing spills (tiles of 24 to 28 accumulators spilled inside the k loop), and a k step issues
// ten loads for sixteen FMAs: a 16×16 tile needs seventeen, more than the two vector loads a cycle
// that keep both FMA ports busy. The convnet's products have 32, 64 or 1024 rows, which 8-row
// panels cover without a ragged tile.

extension PackedGEMM {
    /// The vector type of this target's kernels.
    public typealias Lanes = SIMD16<Float>
    /// Rows of C computed per micro-kernel call (one broadcast of A per row per k step).
    static let mr = 8
    /// Columns of C computed per micro-kernel call (two SIMD16 vectors).
    static let nr = 32
    /// Depth of one packed block: a KC×NR panel of B is 32 KiB of a 48 KiB L1, next to the 8 KiB
    /// A panel that streams past it.
    /// Every target must use the same KC: it fixes the order of each element's sum, so all
    /// paths give the same bits (NN `GEMMTests.testEveryPathGivesTheSameBits`).
    static let kc = 256
    /// Rows of op(A) packed at once: an MC×KC block of A is 192 KiB, a tenth of a 2 MiB L2.
    static let mc = 192
    /// Columns of C per outer block: an MC×NC block of C (384 KiB) stays in L2 across depth blocks.
    static let nc = 512

    /// The 8×32 register tile: sixteen SIMD16 accumulators, two B vectors per k step and one A
    /// broadcast per row.
    ///
    /// - c: the tile's top-left element, row stride `ldc`; `rows×columns` of it are written
    ///   (alpha·AB + beta·C; C read only when beta != 0).
    /// - a: one packed A panel `[depth][8]` (read). b: a B panel, 32 floats per k step with
    ///   `bStride` floats between steps: a packed panel (stride 32) or B itself (stride ldb) (read).
    @inline(__always)
    static func microKernel(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
        depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        var c00 = SIMD16<Float>(), c01 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
        var c20 = SIMD16<Float>(), c21 = SIMD16<Float>(), c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
        var c40 = SIMD16<Float>(), c41 = SIMD16<Float>(), c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
        var c60 = SIMD16<Float>(), c61 = SIMD16<Float>(), c70 = SIMD16<Float>(), c71 = SIMD16<Float>()
        // The tile of C is read (beta != 0) and written only after the k loop: ask for its lines
        // now, so that they arrive while the loop computes instead of stalling the stores.
        for i in 0 ..< rows {
            ddp_prefetch_for_write(c + i * ldc)
            ddp_prefetch_for_write(c + i * ldc + nr / 2)
            ddp_prefetch_for_write(c + i * ldc + nr - 1)
        }
        var pa = a
        var pb = UnsafeRawPointer(b)
        let rowBytes = bStride * MemoryLayout<Float>.stride
        // One k step: two B vectors, eight A broadcasts, sixteen FMAs into independent accumulators.
        // Not unrolled by hand: unrolling let the compiler hoist loads of later steps and spill.
        for _ in 0 ..< depth {
            let b0 = pb.loadUnaligned(as: SIMD16<Float>.self)
            let b1 = pb.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
            do {
                let av = SIMD16<Float>(repeating: pa[0])
                c00 = c00.addingProduct(av, b0)
                c01 = c01.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[1])
                c10 = c10.addingProduct(av, b0)
                c11 = c11.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[2])
                c20 = c20.addingProduct(av, b0)
                c21 = c21.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[3])
                c30 = c30.addingProduct(av, b0)
                c31 = c31.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[4])
                c40 = c40.addingProduct(av, b0)
                c41 = c41.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[5])
                c50 = c50.addingProduct(av, b0)
                c51 = c51.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[6])
                c60 = c60.addingProduct(av, b0)
                c61 = c61.addingProduct(av, b1)
            }
            do {
                let av = SIMD16<Float>(repeating: pa[7])
                c70 = c70.addingProduct(av, b0)
                c71 = c71.addingProduct(av, b1)
            }
            pa += mr
            pb += rowBytes
        }
        if columns == nr {
            // Full width: two whole-vector stores per live row (fewer than eight at m's ragged end).
            storeRow(c, c00, c01, alpha: alpha, beta: beta)
            if rows > 1 { storeRow(c + 1 * ldc, c10, c11, alpha: alpha, beta: beta) }
            if rows > 2 { storeRow(c + 2 * ldc, c20, c21, alpha: alpha, beta: beta) }
            if rows > 3 { storeRow(c + 3 * ldc, c30, c31, alpha: alpha, beta: beta) }
            if rows > 4 { storeRow(c + 4 * ldc, c40, c41, alpha: alpha, beta: beta) }
            if rows > 5 { storeRow(c + 5 * ldc, c50, c51, alpha: alpha, beta: beta) }
            if rows > 6 { storeRow(c + 6 * ldc, c60, c61, alpha: alpha, beta: beta) }
            if rows > 7 { storeRow(c + 7 * ldc, c70, c71, alpha: alpha, beta: beta) }
        } else {
            // Fewer than 32 live columns (n's ragged end): park the whole register tile, then write
            // only the part inside C.
            withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 2 * mr) { tile in
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
                tile[12] = c60
                tile[13] = c61
                tile[14] = c70
                tile[15] = c71
                storeEdge(
                    c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                    rows: rows, columns: columns, alpha: alpha, beta: beta)
            }
        }
    }

    /// The 8×16 tile for panels with at most sixteen live columns (n's ragged end): half the work
    /// of the 8×32 tile, which would compute columns that are thrown away. Reads the first sixteen
    /// floats of each k step of the B panel; same buffers and contract as `microKernel`.
    @inline(__always)
    static func narrowMicroKernel(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
        depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var c4 = SIMD16<Float>(), c5 = SIMD16<Float>(), c6 = SIMD16<Float>(), c7 = SIMD16<Float>()
        var pa = a
        var pb = UnsafeRawPointer(b)
        let rowBytes = bStride * MemoryLayout<Float>.stride
        for _ in 0 ..< depth {
            let b0 = pb.loadUnaligned(as: SIMD16<Float>.self)
            c0 = c0.addingProduct(SIMD16<Float>(repeating: pa[0]), b0)
            c1 = c1.addingProduct(SIMD16<Float>(repeating: pa[1]), b0)
            c2 = c2.addingProduct(SIMD16<Float>(repeating: pa[2]), b0)
            c3 = c3.addingProduct(SIMD16<Float>(repeating: pa[3]), b0)
            c4 = c4.addingProduct(SIMD16<Float>(repeating: pa[4]), b0)
            c5 = c5.addingProduct(SIMD16<Float>(repeating: pa[5]), b0)
            c6 = c6.addingProduct(SIMD16<Float>(repeating: pa[6]), b0)
            c7 = c7.addingProduct(SIMD16<Float>(repeating: pa[7]), b0)
            pa += mr
            pb += rowBytes
        }
        if columns == nr / 2 {
            // Sixteen live columns (a width that is 16 more than a multiple of 32): one vector a row.
            storeHalfRow(c, c0, alpha: alpha, beta: beta)
            if rows > 1 { storeHalfRow(c + 1 * ldc, c1, alpha: alpha, beta: beta) }
            if rows > 2 { storeHalfRow(c + 2 * ldc, c2, alpha: alpha, beta: beta) }
            if rows > 3 { storeHalfRow(c + 3 * ldc, c3, alpha: alpha, beta: beta) }
            if rows > 4 { storeHalfRow(c + 4 * ldc, c4, alpha: alpha, beta: beta) }
            if rows > 5 { storeHalfRow(c + 5 * ldc, c5, alpha: alpha, beta: beta) }
            if rows > 6 { storeHalfRow(c + 6 * ldc, c6, alpha: alpha, beta: beta) }
            if rows > 7 { storeHalfRow(c + 7 * ldc, c7, alpha: alpha, beta: beta) }
            return
        }
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: 2 * mr) { tile in
            let zero = SIMD16<Float>()
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
            tile[12] = c6
            tile[13] = zero
            tile[14] = c7
            tile[15] = zero
            storeEdge(
                c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                rows: rows, columns: columns, alpha: alpha, beta: beta)
        }
    }
}
