import CPrefetch

// The AVX-512 register tile behind `PackedGEMM.multiply` (32 zmm registers of sixteen floats):
// a 16×16 micro-kernel (and a 16×8 one for narrow column panels) that multiply one packed A panel
// by one B panel, their stores into C, and the cache blocks sized around them. Layouts of the
// packed panels: see PackedGEMM+Packing.swift.
//
// Why 16×16: sixteen accumulators, one B vector and a broadcast need 18 of the 32 registers, so
// nothing spills (wider tiles of 24 to 28 accumulators spilled inside the k loop), and the
// convnet's products have 32, 64 or 1024 rows (and 16·n columns for the dense layers), which
// 16-row panels cover without a ragged tile.

extension PackedGEMM {
    /// The vector type of this target's kernels.
    public typealias Lanes = SIMD16<Float>
    /// Rows of C computed per micro-kernel call (one broadcast of A per row per k step).
    static let mr = 16
    /// Columns of C computed per micro-kernel call (one SIMD16 vector).
    static let nr = 16
    /// Depth of one packed block: a KC×NR panel of B is 16 KiB, a third of a 48 KiB L1.
    static let kc = 256
    /// Rows of op(A) packed at once: an MC×KC block of A is 192 KiB, a tenth of a 2 MiB L2.
    static let mc = 192
    /// Columns of C per outer block: an MC×NC block of C (384 KiB) stays in L2 across depth blocks.
    static let nc = 512

    /// The 16×16 register tile: sixteen SIMD16 accumulators, one B vector per k step and one A
    /// broadcast per row.
    ///
    /// - c: the tile's top-left element, row stride `ldc`; `rows×columns` of it are written
    ///   (alpha·AB + beta·C; C read only when beta != 0).
    /// - a: one packed A panel `[depth][16]` (read). b: a B panel, 16 floats per k step with
    ///   `bStride` floats between steps: a packed panel (stride 16) or B itself (stride ldb) (read).
    @inline(__always)
    static func microKernel(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                            _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
                            depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float) {
        var c0 = SIMD16<Float>(), c1 = SIMD16<Float>(), c2 = SIMD16<Float>(), c3 = SIMD16<Float>()
        var c4 = SIMD16<Float>(), c5 = SIMD16<Float>(), c6 = SIMD16<Float>(), c7 = SIMD16<Float>()
        var c8 = SIMD16<Float>(), c9 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
        var c12 = SIMD16<Float>(), c13 = SIMD16<Float>(), c14 = SIMD16<Float>(), c15 = SIMD16<Float>()
        // The tile of C is read (beta != 0) and written only after the k loop: ask for its lines
        // now, so that they arrive while the loop computes instead of stalling the stores.
        for i in 0 ..< rows {
            ddp_prefetch_for_write(c + i * ldc)
            ddp_prefetch_for_write(c + i * ldc + nr - 1)
        }
        var pa = a
        var pb = UnsafeRawPointer(b)
        let rowBytes = bStride * MemoryLayout<Float>.stride
        // One k step: one B vector, sixteen A broadcasts, sixteen FMAs into independent accumulators.
        // Not unrolled by hand: unrolling let the compiler hoist loads of later steps and spill.
        for _ in 0 ..< depth {
            let b0 = pb.loadUnaligned(as: SIMD16<Float>.self)
            c0 = c0.addingProduct(SIMD16<Float>(repeating: pa[0]), b0); c1 = c1.addingProduct(SIMD16<Float>(repeating: pa[1]), b0)
            c2 = c2.addingProduct(SIMD16<Float>(repeating: pa[2]), b0); c3 = c3.addingProduct(SIMD16<Float>(repeating: pa[3]), b0)
            c4 = c4.addingProduct(SIMD16<Float>(repeating: pa[4]), b0); c5 = c5.addingProduct(SIMD16<Float>(repeating: pa[5]), b0)
            c6 = c6.addingProduct(SIMD16<Float>(repeating: pa[6]), b0); c7 = c7.addingProduct(SIMD16<Float>(repeating: pa[7]), b0)
            c8 = c8.addingProduct(SIMD16<Float>(repeating: pa[8]), b0); c9 = c9.addingProduct(SIMD16<Float>(repeating: pa[9]), b0)
            c10 = c10.addingProduct(SIMD16<Float>(repeating: pa[10]), b0); c11 = c11.addingProduct(SIMD16<Float>(repeating: pa[11]), b0)
            c12 = c12.addingProduct(SIMD16<Float>(repeating: pa[12]), b0); c13 = c13.addingProduct(SIMD16<Float>(repeating: pa[13]), b0)
            c14 = c14.addingProduct(SIMD16<Float>(repeating: pa[14]), b0); c15 = c15.addingProduct(SIMD16<Float>(repeating: pa[15]), b0)
            pa += mr
            pb += rowBytes
        }
        if columns == nr {
            // Full width: one whole-vector store per live row (fewer than sixteen at m's ragged end).
            storeRow(c, c0, alpha: alpha, beta: beta)
            if rows > 1 { storeRow(c + 1 * ldc, c1, alpha: alpha, beta: beta) }
            if rows > 2 { storeRow(c + 2 * ldc, c2, alpha: alpha, beta: beta) }
            if rows > 3 { storeRow(c + 3 * ldc, c3, alpha: alpha, beta: beta) }
            if rows > 4 { storeRow(c + 4 * ldc, c4, alpha: alpha, beta: beta) }
            if rows > 5 { storeRow(c + 5 * ldc, c5, alpha: alpha, beta: beta) }
            if rows > 6 { storeRow(c + 6 * ldc, c6, alpha: alpha, beta: beta) }
            if rows > 7 { storeRow(c + 7 * ldc, c7, alpha: alpha, beta: beta) }
            if rows > 8 { storeRow(c + 8 * ldc, c8, alpha: alpha, beta: beta) }
            if rows > 9 { storeRow(c + 9 * ldc, c9, alpha: alpha, beta: beta) }
            if rows > 10 { storeRow(c + 10 * ldc, c10, alpha: alpha, beta: beta) }
            if rows > 11 { storeRow(c + 11 * ldc, c11, alpha: alpha, beta: beta) }
            if rows > 12 { storeRow(c + 12 * ldc, c12, alpha: alpha, beta: beta) }
            if rows > 13 { storeRow(c + 13 * ldc, c13, alpha: alpha, beta: beta) }
            if rows > 14 { storeRow(c + 14 * ldc, c14, alpha: alpha, beta: beta) }
            if rows > 15 { storeRow(c + 15 * ldc, c15, alpha: alpha, beta: beta) }
        } else {
            // Fewer than 16 live columns (n's ragged end): park the whole register tile, then write
            // only the part inside C.
            withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: mr) { tile in
                tile[0] = c0; tile[1] = c1; tile[2] = c2; tile[3] = c3
                tile[4] = c4; tile[5] = c5; tile[6] = c6; tile[7] = c7
                tile[8] = c8; tile[9] = c9; tile[10] = c10; tile[11] = c11
                tile[12] = c12; tile[13] = c13; tile[14] = c14; tile[15] = c15
                storeEdge(c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                          rows: rows, columns: columns, alpha: alpha, beta: beta)
            }
        }
    }

    /// The 16×8 tile for panels with at most eight live columns (n's ragged end): half the work of
    /// the 16×16 tile, which would compute eight columns that are thrown away. Reads the first eight
    /// floats of each k step of the B panel; same buffers and contract as `microKernel`.
    @inline(__always)
    static func narrowMicroKernel(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                                  _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
                                  depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float) {
        var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
        var c4 = SIMD8<Float>(), c5 = SIMD8<Float>(), c6 = SIMD8<Float>(), c7 = SIMD8<Float>()
        var c8 = SIMD8<Float>(), c9 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c12 = SIMD8<Float>(), c13 = SIMD8<Float>(), c14 = SIMD8<Float>(), c15 = SIMD8<Float>()
        var pa = a
        var pb = UnsafeRawPointer(b)
        let rowBytes = bStride * MemoryLayout<Float>.stride
        for _ in 0 ..< depth {
            let b0 = pb.loadUnaligned(as: SIMD8<Float>.self)
            c0 = c0.addingProduct(SIMD8<Float>(repeating: pa[0]), b0); c1 = c1.addingProduct(SIMD8<Float>(repeating: pa[1]), b0)
            c2 = c2.addingProduct(SIMD8<Float>(repeating: pa[2]), b0); c3 = c3.addingProduct(SIMD8<Float>(repeating: pa[3]), b0)
            c4 = c4.addingProduct(SIMD8<Float>(repeating: pa[4]), b0); c5 = c5.addingProduct(SIMD8<Float>(repeating: pa[5]), b0)
            c6 = c6.addingProduct(SIMD8<Float>(repeating: pa[6]), b0); c7 = c7.addingProduct(SIMD8<Float>(repeating: pa[7]), b0)
            c8 = c8.addingProduct(SIMD8<Float>(repeating: pa[8]), b0); c9 = c9.addingProduct(SIMD8<Float>(repeating: pa[9]), b0)
            c10 = c10.addingProduct(SIMD8<Float>(repeating: pa[10]), b0); c11 = c11.addingProduct(SIMD8<Float>(repeating: pa[11]), b0)
            c12 = c12.addingProduct(SIMD8<Float>(repeating: pa[12]), b0); c13 = c13.addingProduct(SIMD8<Float>(repeating: pa[13]), b0)
            c14 = c14.addingProduct(SIMD8<Float>(repeating: pa[14]), b0); c15 = c15.addingProduct(SIMD8<Float>(repeating: pa[15]), b0)
            pa += mr
            pb += rowBytes
        }
        if columns == nr / 2 {
            // Eight live columns (a width that is 8 more than a multiple of 16): one vector a row.
            storeHalfRow(c, c0, alpha: alpha, beta: beta)
            if rows > 1 { storeHalfRow(c + 1 * ldc, c1, alpha: alpha, beta: beta) }
            if rows > 2 { storeHalfRow(c + 2 * ldc, c2, alpha: alpha, beta: beta) }
            if rows > 3 { storeHalfRow(c + 3 * ldc, c3, alpha: alpha, beta: beta) }
            if rows > 4 { storeHalfRow(c + 4 * ldc, c4, alpha: alpha, beta: beta) }
            if rows > 5 { storeHalfRow(c + 5 * ldc, c5, alpha: alpha, beta: beta) }
            if rows > 6 { storeHalfRow(c + 6 * ldc, c6, alpha: alpha, beta: beta) }
            if rows > 7 { storeHalfRow(c + 7 * ldc, c7, alpha: alpha, beta: beta) }
            if rows > 8 { storeHalfRow(c + 8 * ldc, c8, alpha: alpha, beta: beta) }
            if rows > 9 { storeHalfRow(c + 9 * ldc, c9, alpha: alpha, beta: beta) }
            if rows > 10 { storeHalfRow(c + 10 * ldc, c10, alpha: alpha, beta: beta) }
            if rows > 11 { storeHalfRow(c + 11 * ldc, c11, alpha: alpha, beta: beta) }
            if rows > 12 { storeHalfRow(c + 12 * ldc, c12, alpha: alpha, beta: beta) }
            if rows > 13 { storeHalfRow(c + 13 * ldc, c13, alpha: alpha, beta: beta) }
            if rows > 14 { storeHalfRow(c + 14 * ldc, c14, alpha: alpha, beta: beta) }
            if rows > 15 { storeHalfRow(c + 15 * ldc, c15, alpha: alpha, beta: beta) }
            return
        }
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * mr) { tile in
            let zero = SIMD8<Float>()
            tile[0] = c0; tile[1] = zero; tile[2] = c1; tile[3] = zero; tile[4] = c2; tile[5] = zero; tile[6] = c3; tile[7] = zero
            tile[8] = c4; tile[9] = zero; tile[10] = c5; tile[11] = zero; tile[12] = c6; tile[13] = zero; tile[14] = c7; tile[15] = zero
            tile[16] = c8; tile[17] = zero; tile[18] = c9; tile[19] = zero; tile[20] = c10; tile[21] = zero; tile[22] = c11; tile[23] = zero
            tile[24] = c12; tile[25] = zero; tile[26] = c13; tile[27] = zero; tile[28] = c14; tile[29] = zero; tile[30] = c15; tile[31] = zero
            storeEdge(c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                      rows: rows, columns: columns, alpha: alpha, beta: beta)
        }
    }

    /// Writes the `rows×columns` corner of a parked 16×16 tile into C: alpha·tile + beta·C.
    ///
    /// - c: row stride `ldc` (written; read when beta != 0). tile: `[16][16]` (read).
    @inline(never)
    static func storeEdge(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ tile: UnsafePointer<Float>,
                          rows: Int, columns: Int, alpha: Float, beta: Float) {
        for i in 0 ..< rows {
            let row = c + i * ldc, source = tile + i * nr
            if beta == 0 {
                for j in 0 ..< columns { row[j] = alpha * source[j] }
            } else {
                for j in 0 ..< columns { row[j] = alpha * source[j] + beta * row[j] }
            }
        }
    }

    /// Writes 8 floats of C: alpha·v + beta·C, reading C only when beta != 0.
    @inline(__always)
    static func storeHalfRow(_ c: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>, alpha: Float, beta: Float) {
        let p = UnsafeMutableRawPointer(c)
        var r = v * alpha
        if beta != 0 { r = r.addingProduct(SIMD8<Float>(repeating: beta), p.loadUnaligned(as: SIMD8<Float>.self)) }
        p.storeBytes(of: r, as: SIMD8<Float>.self)
    }

    /// Writes 16 floats of C: alpha·v + beta·C, reading C only when beta != 0.
    @inline(__always)
    static func storeRow(_ c: UnsafeMutablePointer<Float>, _ v: SIMD16<Float>, alpha: Float, beta: Float) {
        let p = UnsafeMutableRawPointer(c)
        var r = v * alpha
        if beta != 0 { r = r.addingProduct(SIMD16<Float>(repeating: beta), p.loadUnaligned(as: SIMD16<Float>.self)) }
        p.storeBytes(of: r, as: SIMD16<Float>.self)
    }
}
