#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

// Shared by every instruction-set target, like PackedGEMM.swift: the deterministic reduction's
// dense-layer product, fused with its conversion to integers. A chunk's weight gradient is formed
// one register tile at a time, turned into integers while the tile is still in L1, and added into
// a tile of Double sums that leaves for memory once, after the last chunk: the float gradient never
// reaches memory, and neither does a partial sum.

extension PackedGEMM {
    /// The most samples (all chunks together) `exactChunkProducts` takes in one call: the packed B
    /// panels of every chunk for one column panel must fit the B scratch, and an A panel of every
    /// chunk the A scratch.
    public static var exactChunkSampleLimit: Int { min(kc * nc / nr, mc * kc / mr) }

    /// The most samples one chunk may have: a chunk is one depth block, so its products are the
    /// same FMA chains as `multiply`'s.
    public static var exactChunkDepthLimit: Int { kc }

    /// For each chunk c (a range of rows of gy and x), the weight gradient `gyᵀ[·, c] · x[c, ·]`
    /// (m×n, every element the FMA chain over c's samples in order that `multiply` forms, from
    /// zero), turned into integers `round(g · scale)` (ties to even) and added into Double sums.
    ///
    /// The integers and sums are those of `FixedPointSum.accumulate` on the product `multiply`
    /// writes, chunk by chunk. Returns the largest |g| of the rows computed (as a bit pattern).
    ///
    /// - Parameters:
    ///   - sums: m×n Doubles, row stride `ldSums`: added into (`first`: written, old contents
    ///     ignored). Written with non-temporal stores on x86-64 (the caller fences before another
    ///     thread or process reads them), unless `mean` is given.
    ///   - mean: when given (with `first`), the sums are not written: `Float(sum · meanFactor)` goes
    ///     to this m×n float matrix (row stride `ldMean`) instead.
    ///   - window: the elements written (row-major indices into m×n); only the rows it touches are
    ///     computed.
    ///   - gy: `[N, m]`, row stride `ldGy` ≥ m (read). x: `[N, n]`, row stride `ldX` ≥ n (read).
    ///   - chunks: row ranges of gy and x, each at most `exactChunkDepthLimit` rows, together at
    ///     most `exactChunkSampleLimit`.
    ///   - scale: 2^e with e ≤ 127 (a Float, so the scaling is exact in Float).
    public static func exactChunkProducts(
        sums: UnsafeMutablePointer<Double>, ldSums: Int, first: Bool,
        mean: UnsafeMutablePointer<Float>?, ldMean: Int, meanFactor: Double, window: Range<Int>,
        gy: UnsafePointer<Float>, ldGy: Int, x: UnsafePointer<Float>, ldX: Int, m: Int, n: Int,
        chunks: [Range<Int>], scale: Double
    ) -> UInt32 {
        precondition(scale <= 0x1p127, "exactChunkProducts scales in Float; 2^e must be a Float, got \(scale).")
        precondition(mean == nil || first, "exactChunkProducts writes a mean only from the chunks' own sums (first).")
        precondition(window.lowerBound >= 0 && window.upperBound <= m * n, "The window \(window) lies outside a \(m)×\(n) matrix.")
        // Sizes and panel offsets come from running sums over the chunks, not arrays: a step of
        // the deterministic mode allocates nothing.
        var total = 0, deepest = 0
        for chunk in chunks {
            total += chunk.count
            deepest = max(deepest, chunk.count)
        }
        precondition(
            deepest <= kc && total <= exactChunkSampleLimit,
            "exactChunkProducts takes chunks of at most \(kc) samples, \(exactChunkSampleLimit) in all; got \(chunks.map(\.count)).")
        if window.isEmpty || total == 0 { return 0 }
        let scratch = GEMMScratch.current
        let firstRow = window.lowerBound / n, endRow = (window.upperBound - 1) / n + 1
        // As `shallowBlock` orders a product of small depth: a block of columns of x for every chunk
        // is packed once and stays in L2; row strips of MR rows then pass it left to right, so the
        // output streams along MR rows at a time and each strip's A panels stay in L1.
        let blockColumns = min((n + nr - 1) / nr * nr, max(nr, kc * nc / total / nr * nr))
        // Rows of the weight per block: the packed A panels of every chunk fill the A scratch.
        let blockRows = max(mr, min((endRow - firstRow + mr - 1) / mr * mr, mc * kc / total / mr * mr))
        // Chunk j's packed panels start at (the samples of the chunks before it) × blockRows in the
        // A scratch and × blockColumns in the B scratch.
        var most = SIMD16<UInt32>()
        let tile = scratch.tile, totals = scratch.totals
        tile.initialize(repeating: 0, count: mr * nr)
        totals.initialize(repeating: 0, count: mr * nr)
        var jc = 0
        while jc < n {
            let width = min(blockColumns, n - jc)
            var before = 0
            for chunk in chunks {
                packB(
                    scratch.b + before * blockColumns, x, ldb: ldX, transB: false, row: chunk.lowerBound, column: jc,
                    depth: chunk.count, width: width)
                before += chunk.count
            }
            var ic = firstRow
            while ic < endRow {
                let height = min(blockRows, endRow - ic)
                var before = 0
                for chunk in chunks {
                    packA(
                        scratch.a + before * blockRows, gy, lda: ldGy, transA: true, storedWidth: m, row: ic,
                        column: chunk.lowerBound, height: height, depth: chunk.count)
                    before += chunk.count
                }
                var i0 = 0
                while i0 < height {
                    let rows = min(mr, height - i0)
                    let row = ic + i0
                    var j0 = 0
                    while j0 < width {
                        let columns = min(nr, width - j0), column = jc + j0
                        if !first {
                            for r in 0 ..< rows {
                                let (from, to) = clip(window, row: row + r, n: n, columns: column ..< column + columns)
                                if from < to { (totals + r * nr + from - column).update(from: sums + (row + r) * ldSums + from, count: to - from) }
                            }
                        }
                        var before = 0
                        for chunk in chunks {
                            // Padded rows and columns of the panels are zero, so the whole tile
                            // is computed and converted; only its live corner is written out.
                            let depth = chunk.count
                            microKernel(
                                tile, ldc: nr, UnsafePointer(scratch.a + before * blockRows + i0 * depth),
                                UnsafePointer(scratch.b + before * blockColumns + j0 * depth), bStride: nr,
                                depth: depth, rows: mr, columns: nr, alpha: 1, beta: 0)
                            FixedPointSum.accumulateTile(
                                totals, tile, scale: Float(scale), vectors: mr * nr / 16,
                                first: first && before == 0, most: &most)
                            before += depth
                        }
                        let whole =
                            rows == mr && columns == nr && window.lowerBound <= row * n + column
                            && (row + mr - 1) * n + column + nr <= window.upperBound
                        if whole, let mean {
                            FixedPointSum.writeMeanTile(
                                mean + row * ldMean + column, ldMean: ldMean, totals, factor: meanFactor,
                                rows: mr, vectorsPerRow: nr / 16)
                            j0 += nr
                            continue
                        }
                        for r in 0 ..< rows {
                            let (from, to) = clip(window, row: row + r, n: n, columns: column ..< column + columns)
                            guard from < to else { continue }
                            if let mean {
                                FixedPointSum.writeMean(
                                    mean + (row + r) * ldMean + from, totals + r * nr + from - column,
                                    factor: meanFactor, to - from)
                            } else {
                                FixedPointSum.streamStore(sums + (row + r) * ldSums + from, totals + r * nr + from - column, to - from)
                            }
                        }
                        j0 += nr
                    }
                    i0 += mr
                }
                ic += height
            }
            jc += width
        }
        return most.max()
    }

    /// The columns of `columns` in row `row` of an n-wide matrix that lie inside `window`
    /// (row-major element indices), as a half-open pair (empty when from ≥ to).
    @inline(__always)
    static func clip(_ window: Range<Int>, row: Int, n: Int, columns: Range<Int>) -> (Int, Int) {
        (max(columns.lowerBound, window.lowerBound - row * n), min(columns.upperBound, window.upperBound - row * n))
    }
}

extension FixedPointSum {
    /// Copies `n` sums to `destination` with non-temporal stores where it is 32-byte aligned (x86-64):
    /// sums finished in cache go to memory without first reading the lines they replace. The caller
    /// orders them (a store fence) before anything else reads them.
    public static func streamStore(_ destination: UnsafeMutablePointer<Double>, _ values: UnsafePointer<Double>, _ n: Int) {
        var i = 0
        #if arch(x86_64)
            while i < n && Int(bitPattern: destination + i) & 31 != 0 {
                destination[i] = values[i]
                i += 1
            }
            while i + 4 <= n {
                _mm256_stream_pd(destination + i, UnsafeRawPointer(values + i).loadUnaligned(as: SIMD4<Double>.self))
                i += 4
            }
        #endif
        while i < n {
            destination[i] = values[i]
            i += 1
        }
    }
}
