// The packing routines behind `PackedGEMM.multiply`: they copy blocks of op(A) and op(B) into the
// layouts the micro-kernel reads, absorbing transposes on the way.
//
// Packed layouts (both zero-padded to whole panels, 64-byte aligned):
//   packed A: ceil(height/MR) panels, each [depth][MR]: panel i holds op(A) rows i·MR ..< i·MR+MR.
//   packed B: ceil(width/NR) panels, each [depth][NR]: panel j holds op(B) columns j·NR ..< j·NR+NR.
// The micro-kernel reads one A panel and one B panel front to back, so every load is sequential.

extension PackedGEMM {
    /// Packs op(A)[row ..< row+height, column ..< column+depth] into MR-tall panels.
    ///
    /// - dst: packed A, `ceil(height/MR)·MR·depth` floats (written; rows past `height` are zero),
    ///   plus up to `Lanes.scalarCount` floats past the end (the scratch has slack for them).
    /// - a: A as stored, `m×k` (`k×m` when `transA`), row stride `lda`, `storedWidth` valid floats
    ///   per stored row (k, or m when `transA`) (read).
    static func packA(
        _ dst: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        storedWidth: Int, row: Int, column: Int, height: Int, depth: Int
    ) {
        var out = dst
        var i0 = 0
        while i0 < height {
            let rows = min(mr, height - i0)
            if transA && rows == mr && mr <= Lanes.scalarCount && row + i0 + Lanes.scalarCount <= storedWidth {
                // op(A)[i][p] = a[p·lda + i]: each k step is MR contiguous floats, moved as one
                // vector (inside the stored row, whose valid width is `storedWidth`); floats past MR
                // are overwritten by the next store, or land in the slack.
                var src = UnsafeRawPointer(a + column * lda + row + i0)
                let step = lda * MemoryLayout<Float>.stride
                for _ in 0 ..< depth {
                    UnsafeMutableRawPointer(out).storeBytes(of: src.loadUnaligned(as: Lanes.self), as: Lanes.self)
                    src += step
                    out += mr
                }
            } else if transA {
                // op(A)[i][p] = a[p·lda + i]: each k step is a short contiguous run of rows.
                var src = a + column * lda + row + i0
                for _ in 0 ..< depth {
                    for ii in 0 ..< rows { out[ii] = src[ii] }
                    for ii in rows ..< mr { out[ii] = 0 }
                    src += lda
                    out += mr
                }
            } else {
                // op(A)[i][p] = a[i·lda + p]: eight k steps of eight of the panel's rows at a time,
                // transposed in registers (zero rows fill the 8×8 block, and pad a partial panel).
                // Each k step of a group is stored as eight floats at a stride of MR; a last group
                // of fewer than eight rows writes its extra floats over the next k step's first
                // group, so the groups go last to first and the first group's stores overwrite them
                // (past the panel's end they land in the next panel or the scratch's slack).
                let s0 = a + (row + i0) * lda + column
                let raw = UnsafeRawPointer(s0), step = lda * MemoryLayout<Float>.stride
                var p0 = 0
                while p0 + 8 <= depth {
                    let o = p0 * MemoryLayout<Float>.stride
                    for g0 in stride(from: (mr - 1) / 8 * 8, through: 0, by: -8) {
                        @inline(__always) func load(_ i: Int) -> SIMD8<Float> {
                            g0 + i < rows
                                ? raw.loadUnaligned(fromByteOffset: o + (g0 + i) * step, as: SIMD8<Float>.self)
                                : SIMD8<Float>()
                        }
                        let t = transpose8x8((load(0), load(1), load(2), load(3), load(4), load(5), load(6), load(7)))
                        let d = UnsafeMutableRawPointer(out + g0), w = mr * MemoryLayout<Float>.stride
                        d.storeBytes(of: t.0, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.1, toByteOffset: w, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.2, toByteOffset: 2 * w, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.3, toByteOffset: 3 * w, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.4, toByteOffset: 4 * w, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.5, toByteOffset: 5 * w, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.6, toByteOffset: 6 * w, as: SIMD8<Float>.self)
                        d.storeBytes(of: t.7, toByteOffset: 7 * w, as: SIMD8<Float>.self)
                    }
                    out += 8 * mr
                    p0 += 8
                }
                for p in p0 ..< depth {
                    for ii in 0 ..< rows { out[ii] = s0[ii * lda + p] }
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
    static func packB(
        _ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        row: Int, column: Int, depth: Int, width: Int
    ) {
        var out = dst
        var j0 = 0
        while j0 < width {
            let cols = min(nr, width - j0)
            if transB {
                // op(B)[p][j] = b[j·ldb + p]: 8×8 blocks, each read as eight row vectors of the
                // stored B (zero vectors for columns past the panel's live ones) and transposed in
                // registers, so loads and stores are whole vectors.
                let src = b + (column + j0) * ldb + row
                let step = nr * MemoryLayout<Float>.stride
                var p0 = 0
                while p0 + 8 <= depth {
                    for half in 0 ..< nr / 8 {
                        let live = min(max(cols - half * 8, 0), 8)
                        let base = src + half * 8 * ldb + p0
                        let block = live == 8 ? transpose8x8(base, ldb: ldb) : transposePartial8x8(base, ldb: ldb, rows: live)
                        let dst = UnsafeMutableRawPointer(out + p0 * nr + half * 8)
                        dst.storeBytes(of: block.0, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.1, toByteOffset: step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.2, toByteOffset: 2 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.3, toByteOffset: 3 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.4, toByteOffset: 4 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.5, toByteOffset: 5 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.6, toByteOffset: 6 * step, as: SIMD8<Float>.self)
                        dst.storeBytes(of: block.7, toByteOffset: 7 * step, as: SIMD8<Float>.self)
                    }
                    p0 += 8
                }
                for p in p0 ..< depth {
                    for jj in 0 ..< cols { out[p * nr + jj] = src[jj * ldb + p] }
                    for jj in cols ..< nr { out[p * nr + jj] = 0 }
                }
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
    static func packBRows(
        _ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int,
        row: Int, column: Int, depth: Int, width: Int
    ) {
        let fullPanels = width / nr, rest = width % nr
        let panelBytes = nr * depth * MemoryLayout<Float>.stride
        let f = MemoryLayout<Float>.stride, lanes = Lanes.scalarCount, laneBytes = lanes * f
        var p = 0
        // Four rows at a time, interleaved: four read streams keep more cache misses in flight.
        while p + 4 <= depth {
            let s0 = UnsafeRawPointer(b + (row + p) * ldb + column), stride = ldb * f
            var out = UnsafeMutableRawPointer(dst + p * nr)
            for panel in 0 ..< fullPanels {
                let o = panel * nr * f
                for r in 0 ..< 4 {
                    for v in 0 ..< nr / lanes {
                        out.storeBytes(
                            of: s0.loadUnaligned(fromByteOffset: r * stride + o + v * laneBytes, as: Lanes.self),
                            toByteOffset: (r * nr / lanes + v) * laneBytes, as: Lanes.self)
                    }
                }
                out += panelBytes
            }
            p += 4
        }
        while p < depth {
            let src = UnsafeRawPointer(b + (row + p) * ldb + column)
            var out = UnsafeMutableRawPointer(dst + p * nr)
            for panel in 0 ..< fullPanels {
                let o = panel * nr * f
                for v in 0 ..< nr / lanes {
                    out.storeBytes(
                        of: src.loadUnaligned(fromByteOffset: o + v * laneBytes, as: Lanes.self),
                        toByteOffset: v * laneBytes, as: Lanes.self)
                }
                out += panelBytes
            }
            p += 1
        }
        if rest > 0 {
            // The ragged last panel, zero-padded to NR columns: each k step is cleared with vector
            // stores, then its live columns are copied over them (a conv's 196-pixel rows leave
            // four, at every depth of every sample's products).
            let tail = dst + fullPanels * nr * depth
            for p in 0 ..< depth {
                let src = b + (row + p) * ldb + column + fullPanels * nr, out = tail + p * nr
                for v in 0 ..< nr / lanes {
                    UnsafeMutableRawPointer(out).storeBytes(of: Lanes(), toByteOffset: v * laneBytes, as: Lanes.self)
                }
                for jj in 0 ..< rest { out[jj] = src[jj] }
            }
        }
    }

    typealias Block8x8 = (
        SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>,
        SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>
    )

    /// Loads eight rows of eight floats (row stride `ldb`) and returns the transposed 8×8 block:
    /// result `q` holds element `q` of every row.
    @inline(__always)
    static func transpose8x8(_ p: UnsafePointer<Float>, ldb: Int) -> Block8x8 {
        let raw = UnsafeRawPointer(p), step = ldb * MemoryLayout<Float>.stride
        return transpose8x8(
            (
                raw.loadUnaligned(as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: step, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 2 * step, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 3 * step, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 4 * step, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 5 * step, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 6 * step, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 7 * step, as: SIMD8<Float>.self)
            ))
    }

    /// Like `transpose8x8(_:ldb:)` for a block of which only the first `rows` rows exist
    /// (0 ≤ rows < 8); the others are taken as zero and never read.
    @inline(__always)
    static func transposePartial8x8(_ p: UnsafePointer<Float>, ldb: Int, rows: Int) -> Block8x8 {
        let raw = UnsafeRawPointer(p), step = ldb * MemoryLayout<Float>.stride
        @inline(__always) func load(_ i: Int) -> SIMD8<Float> {
            i < rows ? raw.loadUnaligned(fromByteOffset: i * step, as: SIMD8<Float>.self) : SIMD8<Float>()
        }
        return transpose8x8((load(0), load(1), load(2), load(3), load(4), load(5), load(6), load(7)))
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
                SIMD8(lowHalf: r4.oddHalf, highHalf: r5.oddHalf), SIMD8(lowHalf: r6.oddHalf, highHalf: r7.oddHalf)
            )
        }
        return (r0, r1, r2, r3, r4, r5, r6, r7)
    }
}
