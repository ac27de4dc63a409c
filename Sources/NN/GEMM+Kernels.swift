#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The packing routines, the macro-kernel and the 6×16 micro-kernel behind `GEMM.multiply`.
//
// Packed layouts (both zero-padded to whole panels, 64-byte aligned):
//   packed A: ceil(height/MR) panels, each [depth][MR]: panel i holds op(A) rows i·MR ..< i·MR+MR.
//   packed B: ceil(width/NR) panels, each [depth][NR]: panel j holds op(B) columns j·NR ..< j·NR+NR.
// The micro-kernel reads one A panel and one B panel front to back, so every load is sequential.

extension GEMM {
    /// Packs op(A)[row ..< row+height, column ..< column+depth] into MR-tall panels.
    ///
    /// - dst: packed A, `ceil(height/MR)·MR·depth` floats (written; rows past `height` are zero).
    /// - a: A as stored, `m×k` (`k×m` when `transA`), row stride `lda` (read).
    static func packA(_ dst: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
                      row: Int, column: Int, height: Int, depth: Int) {
        var out = dst
        var i0 = 0
        while i0 < height {
            let rows = min(mr, height - i0)
            if transA {
                // op(A)[i][p] = a[p·lda + i]: each k step is a short contiguous run of rows.
                var src = a + column * lda + row + i0
                for _ in 0 ..< depth {
                    for ii in 0 ..< rows { out[ii] = src[ii] }
                    for ii in rows ..< mr { out[ii] = 0 }
                    src += lda
                    out += mr
                }
            } else if rows == mr {
                // op(A)[i][p] = a[i·lda + p]: eight k steps of the six rows at a time, transposed in
                // registers (two zero rows fill the 8×8 block). Each k step is stored as eight floats
                // at a stride of six; the two extra floats land where the next step's store (or the
                // next panel, or the scratch's slack) overwrites them.
                let s0 = a + (row + i0) * lda + column
                let raw = UnsafeRawPointer(s0), step = lda * MemoryLayout<Float>.stride
                let zero = SIMD8<Float>()
                var p0 = 0
                while p0 + 8 <= depth {
                    let o = p0 * MemoryLayout<Float>.stride
                    let t = transpose8x8((raw.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self),
                                          raw.loadUnaligned(fromByteOffset: o + step, as: SIMD8<Float>.self),
                                          raw.loadUnaligned(fromByteOffset: o + 2 * step, as: SIMD8<Float>.self),
                                          raw.loadUnaligned(fromByteOffset: o + 3 * step, as: SIMD8<Float>.self),
                                          raw.loadUnaligned(fromByteOffset: o + 4 * step, as: SIMD8<Float>.self),
                                          raw.loadUnaligned(fromByteOffset: o + 5 * step, as: SIMD8<Float>.self),
                                          zero, zero))
                    let d = UnsafeMutableRawPointer(out), w = mr * MemoryLayout<Float>.stride
                    d.storeBytes(of: t.0, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.1, toByteOffset: w, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.2, toByteOffset: 2 * w, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.3, toByteOffset: 3 * w, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.4, toByteOffset: 4 * w, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.5, toByteOffset: 5 * w, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.6, toByteOffset: 6 * w, as: SIMD8<Float>.self)
                    d.storeBytes(of: t.7, toByteOffset: 7 * w, as: SIMD8<Float>.self)
                    out += 8 * mr
                    p0 += 8
                }
                let s1 = s0 + lda, s2 = s1 + lda, s3 = s2 + lda, s4 = s3 + lda, s5 = s4 + lda
                for p in p0 ..< depth {
                    out[0] = s0[p]; out[1] = s1[p]; out[2] = s2[p]
                    out[3] = s3[p]; out[4] = s4[p]; out[5] = s5[p]
                    out += mr
                }
            } else {
                let src = a + (row + i0) * lda + column
                for p in 0 ..< depth {
                    for ii in 0 ..< rows { out[ii] = src[ii * lda + p] }
                    for ii in rows ..< mr { out[ii] = 0 }
                    out += mr
                }
            }
            i0 += mr
        }
    }

    /// Packs op(B)[row ..< row+depth, column ..< column+width] into NR-wide panels.
    ///
    /// - dst: packed B, `ceil(width/NR)·NR·depth` floats (written; columns past `width` are zero).
    /// - b: B as stored, `k×n` (`n×k` when `transB`), row stride `ldb` (read).
    static func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
                      row: Int, column: Int, depth: Int, width: Int) {
        var out = dst
        var j0 = 0
        while j0 < width {
            let cols = min(nr, width - j0)
            if transB && cols == nr {
                // op(B)[p][j] = b[j·ldb + p]: 8×8 blocks, each read as eight row vectors of the
                // stored B and transposed in registers, so loads and stores are whole vectors.
                let src = b + (column + j0) * ldb + row
                var p0 = 0
                while p0 + 8 <= depth {
                    for half in 0 ..< 2 {
                        let base = src + half * 8 * ldb + p0
                        let rows = transpose8x8(base, ldb: ldb)
                        let dst = UnsafeMutableRawPointer(out + p0 * nr + half * 8)
                        let step = nr * MemoryLayout<Float>.stride
                        dst.storeBytes(of: rows.0, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.1, toByteOffset: step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.2, toByteOffset: 2 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.3, toByteOffset: 3 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.4, toByteOffset: 4 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.5, toByteOffset: 5 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.6, toByteOffset: 6 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: rows.7, toByteOffset: 7 * step, as: SIMD8<Float>.self)
                    }
                    p0 += 8
                }
                for p in p0 ..< depth { for jj in 0 ..< nr { out[p * nr + jj] = src[jj * ldb + p] } }
                out += nr * depth
            } else if transB {
                // A partial panel: read each stored row sequentially, scatter with stride NR.
                for jj in 0 ..< cols {
                    let src = b + (column + j0 + jj) * ldb + row
                    for p in 0 ..< depth { out[p * nr + jj] = src[p] }
                }
                for p in 0 ..< depth { for jj in cols ..< nr { out[p * nr + jj] = 0 } }
                out += nr * depth
            } else {
                packBRows(out, b, ldb: ldb, row: row, column: column + j0, depth: depth, width: width - j0)
                return
            }
            j0 += nr
        }
    }

    /// The untransposed case of `packB` for a whole block: walks op(B) row by row, so each stored
    /// row is read contiguously (the hardware prefetcher follows it) and scattered into the panels.
    ///
    /// - dst: `ceil(width/NR)` panels `[depth][NR]` (written; columns past `width` are zero).
    /// - b: B as stored, `k×n`, row stride `ldb` (read).
    static func packBRows(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int,
                          row: Int, column: Int, depth: Int, width: Int) {
        let fullPanels = width / nr, rest = width % nr
        let panelBytes = nr * depth * MemoryLayout<Float>.stride
        let f = MemoryLayout<Float>.stride
        var p = 0
        // Four rows at a time, interleaved: four read streams keep more cache misses in flight.
        while p + 4 <= depth {
            let s0 = UnsafeRawPointer(b + (row + p) * ldb + column), stride = ldb * f
            var out = UnsafeMutableRawPointer(dst + p * nr)
            for panel in 0 ..< fullPanels {
                let o = panel * nr * f
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self), toByteOffset: 32, as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: stride + o, as: SIMD8<Float>.self), toByteOffset: 64, as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: stride + o + 32, as: SIMD8<Float>.self), toByteOffset: 96, as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: 2 * stride + o, as: SIMD8<Float>.self), toByteOffset: 128, as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: 2 * stride + o + 32, as: SIMD8<Float>.self), toByteOffset: 160, as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: 3 * stride + o, as: SIMD8<Float>.self), toByteOffset: 192, as: SIMD8<Float>.self)
                out.storeBytes(of: s0.loadUnaligned(fromByteOffset: 3 * stride + o + 32, as: SIMD8<Float>.self), toByteOffset: 224, as: SIMD8<Float>.self)
                out += panelBytes
            }
            p += 4
        }
        while p < depth {
            let src = UnsafeRawPointer(b + (row + p) * ldb + column)
            var out = UnsafeMutableRawPointer(dst + p * nr)
            for panel in 0 ..< fullPanels {
                let o = panel * nr * f
                out.storeBytes(of: src.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                out.storeBytes(of: src.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self), toByteOffset: 32, as: SIMD8<Float>.self)
                out += panelBytes
            }
            p += 1
        }
        if rest > 0 {
            // The ragged last panel, zero-padded to NR columns.
            let tail = dst + fullPanels * nr * depth
            for p in 0 ..< depth {
                let src = b + (row + p) * ldb + column + fullPanels * nr
                for jj in 0 ..< rest { tail[p * nr + jj] = src[jj] }
                for jj in rest ..< nr { tail[p * nr + jj] = 0 }
            }
        }
    }

    typealias Block8x8 = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>,
                          SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

    /// Loads eight rows of eight floats (row stride `ldb`) and returns the transposed 8×8 block:
    /// result `q` holds element `q` of every row.
    @inline(__always)
    static func transpose8x8(_ p: UnsafePointer<Float>, ldb: Int) -> Block8x8 {
        let raw = UnsafeRawPointer(p), step = ldb * MemoryLayout<Float>.stride
        return transpose8x8((raw.loadUnaligned(as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: step, as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: 2 * step, as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: 3 * step, as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: 4 * step, as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: 5 * step, as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: 6 * step, as: SIMD8<Float>.self),
                             raw.loadUnaligned(fromByteOffset: 7 * step, as: SIMD8<Float>.self)))
    }

    /// Transposes an 8×8 block held in registers: three rounds of even/odd interleaving.
    @inline(__always)
    static func transpose8x8(_ block: Block8x8) -> Block8x8 {
        var (r0, r1, r2, r3, r4, r5, r6, r7) = block
        for _ in 0 ..< 3 {
            (r0, r1, r2, r3, r4, r5, r6, r7) = (
                SIMD8(lowHalf: r0.evenHalf, highHalf: r1.evenHalf), SIMD8(lowHalf: r2.evenHalf, highHalf: r3.evenHalf),
                SIMD8(lowHalf: r4.evenHalf, highHalf: r5.evenHalf), SIMD8(lowHalf: r6.evenHalf, highHalf: r7.evenHalf),
                SIMD8(lowHalf: r0.oddHalf, highHalf: r1.oddHalf), SIMD8(lowHalf: r2.oddHalf, highHalf: r3.oddHalf),
                SIMD8(lowHalf: r4.oddHalf, highHalf: r5.oddHalf), SIMD8(lowHalf: r6.oddHalf, highHalf: r7.oddHalf))
        }
        return (r0, r1, r2, r3, r4, r5, r6, r7)
    }

    /// The 6×16 register tile: twelve SIMD8 accumulators, two B vectors and one A broadcast fill
    /// 15 of the 16 ymm registers, so nothing spills.
    ///
    /// - c: the tile's top-left element, row stride `ldc`; `rows×columns` of it are written
    ///   (alpha·AB + beta·C; C read only when beta != 0).
    /// - a: one packed A panel `[depth][6]` (read). b: a B panel, 16 floats per k step with
    ///   `bStride` floats between steps: a packed panel (stride 16) or B itself (stride ldb) (read).
    @inline(__always)
    static func microKernel(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                            _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
                            depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float) {
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>()
        var c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        var pa = a
        var pb = UnsafeRawPointer(b)
        // One k step: two B vectors, six A broadcasts, twelve FMAs into independent accumulators.
        @inline(__always) func step(_ q: UnsafePointer<Float>, _ pb: UnsafeRawPointer, _ offset: Int) {
            let b0 = pb.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            let b1 = pb.loadUnaligned(fromByteOffset: offset + 32, as: SIMD8<Float>.self)
            var av = SIMD8<Float>(repeating: q[0])
            c00 = c00.addingProduct(av, b0); c01 = c01.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[1])
            c10 = c10.addingProduct(av, b0); c11 = c11.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[2])
            c20 = c20.addingProduct(av, b0); c21 = c21.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[3])
            c30 = c30.addingProduct(av, b0); c31 = c31.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[4])
            c40 = c40.addingProduct(av, b0); c41 = c41.addingProduct(av, b1)
            av = SIMD8<Float>(repeating: q[5])
            c50 = c50.addingProduct(av, b0); c51 = c51.addingProduct(av, b1)
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
        if rows == mr && columns == nr {
            storeRow(c, c00, c01, alpha: alpha, beta: beta)
            storeRow(c + ldc, c10, c11, alpha: alpha, beta: beta)
            storeRow(c + 2 * ldc, c20, c21, alpha: alpha, beta: beta)
            storeRow(c + 3 * ldc, c30, c31, alpha: alpha, beta: beta)
            storeRow(c + 4 * ldc, c40, c41, alpha: alpha, beta: beta)
            storeRow(c + 5 * ldc, c50, c51, alpha: alpha, beta: beta)
        } else {
            // An edge tile: park the whole register tile, then write only the part inside C.
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * mr) { tile in
                tile[0] = c00; tile[1] = c01; tile[2] = c10; tile[3] = c11
                tile[4] = c20; tile[5] = c21; tile[6] = c30; tile[7] = c31
                tile[8] = c40; tile[9] = c41; tile[10] = c50; tile[11] = c51
                storeEdge(c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                          rows: rows, columns: columns, alpha: alpha, beta: beta)
            }
        }
    }

    /// The 6×8 tile for panels with at most eight live columns (n's ragged end): half the work of
    /// the 6×16 tile, which would compute eight columns that are thrown away. Reads the first eight
    /// floats of each k step of the B panel; same buffers and contract as `microKernel`.
    @inline(__always)
    static func narrowMicroKernel(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                                  _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bStride: Int,
                                  depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float) {
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
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * mr) { tile in
            let zero = SIMD8<Float>()
            tile[0] = c0; tile[1] = zero; tile[2] = c1; tile[3] = zero; tile[4] = c2; tile[5] = zero
            tile[6] = c3; tile[7] = zero; tile[8] = c4; tile[9] = zero; tile[10] = c5; tile[11] = zero
            storeEdge(c, ldc: ldc, UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self),
                      rows: rows, columns: columns, alpha: alpha, beta: beta)
        }
    }

    /// Writes the `rows×columns` corner of a parked 6×16 tile into C: alpha·tile + beta·C.
    ///
    /// - c: row stride `ldc` (written; read when beta != 0). tile: `[6][16]` (read).
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

    /// Writes 16 floats of C: alpha·(v0, v1) + beta·C, reading C only when beta != 0.
    @inline(__always)
    static func storeRow(_ c: UnsafeMutablePointer<Float>, _ v0: SIMD8<Float>, _ v1: SIMD8<Float>,
                         alpha: Float, beta: Float) {
        let p = UnsafeMutableRawPointer(c)
        var r0 = v0 * alpha, r1 = v1 * alpha
        if beta != 0 {
            let vb = SIMD8<Float>(repeating: beta)
            r0 = r0.addingProduct(vb, p.loadUnaligned(as: SIMD8<Float>.self))
            r1 = r1.addingProduct(vb, p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
        }
        p.storeBytes(of: r0, as: SIMD8<Float>.self)
        p.storeBytes(of: r1, toByteOffset: 32, as: SIMD8<Float>.self)
    }
}

/// One thread's packing buffers for `GEMM.multiply`, allocated on the thread's first
/// multiplication and freed when the thread ends.
final class GEMMScratch {
    /// Packed A: MC×KC floats (plus slack), 64-byte aligned.
    let a: UnsafeMutablePointer<Float>
    /// Packed B: KC×NC floats, 64-byte aligned.
    let b: UnsafeMutablePointer<Float>

    private init() {
        // Eight floats of slack: the vector packing of A writes two floats past a panel's end.
        a = GEMMScratch.allocate(GEMM.mc * GEMM.kc + 8)
        b = GEMMScratch.allocate(GEMM.kc * GEMM.nc)
    }

    deinit {
        UnsafeMutableRawPointer(a).deallocate()
        UnsafeMutableRawPointer(b).deallocate()
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: count)
    }

    /// The key of the thread-local slot; its destructor releases a thread's scratch when the thread ends.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<GEMMScratch>.fromOpaque(pointer).release() }
        }
        precondition(status == 0, "pthread_key_create failed with status \(status) while setting up GEMM scratch.")
        return key
    }()

    /// The calling thread's scratch, created on first use.
    static var current: GEMMScratch {
        if let pointer = pthread_getspecific(key) {
            return Unmanaged<GEMMScratch>.fromOpaque(pointer).takeUnretainedValue()
        }
        let scratch = GEMMScratch()
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }
}
