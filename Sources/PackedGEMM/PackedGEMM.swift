import CPrefetch

// This file is shared, through symbolic links, by every instruction-set target (KernelsAVX2,
// KernelsAVX512): each compiles it with its own `-target-cpu` and its own register tile
// (`PackedGEMM+Tile.swift`: the vector type, MR×NR, the cache blocks and the micro-kernels).

/// Single-precision matrix multiplication on row-major matrices.
///
/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, where `op(X)` is `X` or its transpose.
/// `lda`, `ldb`, `ldc` are the row strides (leading dimensions) of the matrices as stored:
/// A is stored `m×k` (or `k×m` when `transA`), B is stored `k×n` (or `n×k` when `transB`).
/// With `beta == 0`, C is written without being read (it may hold garbage or NaN).
///
/// The fast path is blocked in the BLIS manner (five loops around a micro-kernel):
///
///     for jc in steps of NC over n       // a block of C columns (MC×NC of C stays in L2)
///       for pc in steps of KC over k     // a depth block (equal-sized blocks, no thin remainder)
///         for ic in steps of MC over m   // pack op(A)[ic.., pc..] into MR-tall panels (L2)
///           deep k:    for jr over NR-wide B panels { for ir over MR rows: micro-kernel }
///                      (a B panel stays in L1 for all the tiles of its column)
///           shallow k: for ir over MR rows { for jr over B panels: micro-kernel }
///                      (C is the main traffic: MR rows of C stream left to right)
///
/// op(B) is packed into NR-wide panels during the first row block and reused by the others;
/// an untransposed B small enough to stay in cache is read in place instead. Transposes are
/// absorbed by the packing routines (in-register 8×8 transposes), so the micro-kernel sees one
/// layout only. The micro-kernel keeps an MR×NR tile of C in vector registers and issues MR·NR/L
/// FMAs per k step (L floats a vector); a half-width variant serves panels with at most NR/2 live
/// columns. Each instruction-set target sets MR, NR, the vector type and the cache blocks in its
/// `PackedGEMM+Tile.swift`.
///
/// Callers (NN's `GEMM.multiply`) check the sizes and strides first.
public enum PackedGEMM {
    /// Packed, register-blocked and cache-blocked FMA kernel at this target's vector width.
    ///
    /// Uses a per-thread packing scratch (allocated on a thread's first call, reused afterwards),
    /// so threads may multiply concurrently.
    ///
    /// - Parameters:
    ///   - c: the output, `m×n` with row stride `ldc` (written; also read when `beta != 0`).
    ///   - a: `op(A)`, stored `m×k` (or `k×m` when `transA`) with row stride `lda` (read).
    ///   - b: `op(B)`, stored `k×n` (or `n×k` when `transB`) with row stride `ldb` (read).
    ///   - m, n, k: the sizes of `op(A)` (m×k) and `op(B)` (k×n); any may be zero.
    ///   - alpha: the product's scale.
    ///   - beta: C's scale; zero means C is not read.
    public static func multiply(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        run(
            c, ldc: ldc, a, lda: lda, transA: transA, prepackedA: nil, b, ldb: ldb, transB: transB,
            m: m, n: n, k: k, alpha: alpha, beta: beta)
    }

    /// The five loops behind both `multiply` forms: A is packed block by block into the thread's
    /// scratch, or, with `prepackedA` (laid out by `packWhole`), each block is read where it lies.
    @inline(__always)
    static func run(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ a: UnsafePointer<Float>, lda: Int, transA: Bool, prepackedA: UnsafePointer<Float>?,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
        m: Int, n: Int, k: Int, alpha: Float, beta: Float
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 || alpha == 0 {
            scale(c, ldc: ldc, m: m, n: n, beta: beta)
            return
        }
        let scratch = GEMMScratch.current
        // Equal blocks instead of full blocks plus a thin remainder (k = 800 as 4×200, not 3×256 + 32):
        // a thin depth block pays the C load/store for little work.
        let depthBlock = balancedBlock(k, limit: kc, multiple: 4)
        let rowBlock = balancedBlock(m, limit: mc, multiple: mr)
        let packedA = scratch.a, packedB = scratch.b
        // An untransposed B of up to 1 MiB stays in L2/L3, so the micro-kernel can read its full
        // panels in place (the rows of one panel, NR floats each, fit in L1); packing would only copy it.
        // A larger one is read in place too when few row tiles share each panel (a dense layer's
        // input gradient at a small batch): packing would then cost as much as the tiles that reuse it.
        let directB = !transB && (k * n <= directLimit || m <= directRows)
        // Matrices past the L2-sized threshold come from L3 or memory, where prefetching the next
        // stretch pays; smaller ones are still in L2 from their last use, where it only costs.
        // (An untransposed B that is not read in place is always past it.)
        let prefetchB = k * n > directLimit, prefetchC = m * n > directLimit
        var jc = 0
        while jc < n {
            let ncb = min(nc, n - jc)
            var pc = 0
            while pc < k {
                let kcb = min(depthBlock, k - pc)
                // The first depth block applies the caller's beta; later blocks add to what it left.
                let blockBeta: Float = pc == 0 ? beta : 1
                var ic = 0
                while ic < m {
                    let mcb = min(rowBlock, m - ic)
                    let blockA: UnsafePointer<Float>
                    if let prepackedA {
                        blockA = prepackedA + wholeOffset(m: m, row: ic, column: pc, depth: kcb)
                    } else {
                        packA(
                            packedA, a, lda: lda, transA: transA, storedWidth: transA ? m : k, row: ic, column: pc,
                            height: mcb, depth: kcb)
                        blockA = UnsafePointer(packedA)
                    }
                    let corner = c + ic * ldc + jc
                    if kcb <= shallowDepth {
                        shallowBlock(
                            corner, ldc: ldc, blockA, packedB, b, ldb: ldb, transB: transB, directB: directB,
                            prefetchC: prefetchC, row: pc, column: jc,
                            height: mcb, width: ncb, depth: kcb, packsB: ic == 0, alpha: alpha, beta: blockBeta)
                    } else {
                        deepBlock(
                            corner, ldc: ldc, blockA, packedB, b, ldb: ldb, transB: transB, directB: directB,
                            prefetchB: prefetchB, row: pc, column: jc,
                            height: mcb, width: ncb, depth: kcb, packsB: ic == 0, alpha: alpha, beta: blockBeta)
                    }
                    ic += mcb
                }
                pc += kcb
            }
            jc += ncb
        }
    }

    /// One MC×NC block of C for a deep depth block: column panels outer, so each B panel stays in
    /// L1 for all the tiles of its column.
    ///
    /// B is packed when `packsB` (during the first row block); later row blocks reuse the packed
    /// panels. With `directB` (untransposed B small enough to stay in cache) full panels are read
    /// from B itself, row stride `ldb`, and only a ragged last panel is packed. With `prefetchB`
    /// (a B too large for L2) the lines of the next panel are prefetched meanwhile.
    ///
    /// - c: the block's top-left element of C, row stride `ldc` (written; read when beta != 0).
    /// - packedA: the packed A block (read). packedB: the packed B block (written when `packsB`, read).
    /// - b: B as stored (read); `row`, `column`: where the block starts in op(B).
    @inline(__always)
    static func deepBlock(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ packedA: UnsafePointer<Float>, _ packedB: UnsafeMutablePointer<Float>,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool, directB: Bool, prefetchB: Bool,
        row: Int, column: Int,
        height: Int, width: Int, depth: Int, packsB: Bool, alpha: Float, beta: Float
    ) {
        // B is packed panel by panel, just before the panel's first use, so the panel is still in L1
        // for its tiles (packing a whole block first left its panels to come back from L3).
        var j0 = 0
        while j0 < width {
            let cols = min(nr, width - j0)
            let direct = directB && cols == nr
            let packed = packedB + j0 * depth
            if packsB && !direct {
                packB(packed, b, ldb: ldb, transB: transB, row: row, column: column + j0, depth: depth, width: cols)
            }
            let panel = direct ? b + row * ldb + column + j0 : UnsafePointer(packed)
            let bStride = direct ? ldb : nr
            // A panel of a large B comes from lines far apart in memory (fc1's weight: 16 stored rows
            // 12.5 KiB apart when transposed, one line from each of `depth` rows when not), which the
            // hardware prefetcher does not follow; while this panel's tiles compute, bring the next
            // panel's lines into L2, a share before each tile.
            let tiles = (height + mr - 1) / mr, nextColumns = min(nr, width - j0 - nr)
            let upcoming =
                !(packsB && prefetchB)
                ? nil
                : transB
                    ? UpcomingRows(b + (column + j0 + nr) * ldb + row, stride: ldb, rows: nextColumns, length: depth, over: tiles)
                    : UpcomingRows(
                        b + row * ldb + column + j0 + nr, stride: ldb, rows: nextColumns > 0 ? depth : 0,
                        length: nextColumns, over: tiles)
            var i0 = 0, tileIndex = 0
            while i0 < height {
                upcoming?.prefetch(part: tileIndex)
                tile(
                    c + i0 * ldc + j0, ldc: ldc, packedA + i0 * depth, panel, bStride: bStride,
                    depth: depth, rows: min(mr, height - i0), columns: cols, alpha: alpha, beta: beta)
                i0 += mr
                tileIndex += 1
            }
            j0 += nr
        }
    }

    /// The largest untransposed B, in floats, that the micro-kernel reads in place instead of packing.
    static let directLimit = 256 * 1024

    /// The most rows of C for which an untransposed B of any size is read in place: so few row
    /// tiles reuse each panel that packing it would cost about as much as the reads it saves.
    static let directRows = 64

    /// Depth blocks up to this size take `shallowBlock`: a packed B block of 128×512 floats (256 KiB)
    /// then fits in L2 next to the A block.
    static let shallowDepth = 128

    /// One MC×NC block of C for a shallow depth block, where loading and storing C costs as much as
    /// the arithmetic: tiles row by row, so MR rows of C stream left to right (which the hardware
    /// prefetcher follows) while the B block stays in L2; with `prefetchC` (a C too large for L2) the
    /// next strip's rows of C are prefetched meanwhile. Same buffers and flags as `deepBlock`.
    @inline(__always)
    static func shallowBlock(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,
        _ packedA: UnsafePointer<Float>, _ packedB: UnsafeMutablePointer<Float>,
        _ b: UnsafePointer<Float>, ldb: Int, transB: Bool, directB: Bool, prefetchC: Bool,
        row: Int, column: Int,
        height: Int, width: Int, depth: Int, packsB: Bool, alpha: Float, beta: Float
    ) {
        let fullWidth = width / nr * nr
        if packsB {
            if !directB {
                packB(packedB, b, ldb: ldb, transB: transB, row: row, column: column, depth: depth, width: width)
            } else if fullWidth < width {
                packB(
                    packedB + fullWidth * depth, b, ldb: ldb, transB: false, row: row, column: column + fullWidth,
                    depth: depth, width: width - fullWidth)
            }
        }
        var i0 = 0
        while i0 < height {
            let rows = min(mr, height - i0)
            // C is the main traffic here: while this strip's tiles compute, bring the next strip's
            // rows of C into L2, a share before each tile.
            let upcoming =
                prefetchC
                ? UpcomingRows(
                    c + (i0 + mr) * ldc, stride: ldc, rows: min(mr, height - i0 - mr),
                    length: width, over: (width + nr - 1) / nr) : nil
            var j0 = 0, tileIndex = 0
            while j0 < width {
                upcoming?.prefetch(part: tileIndex)
                tileIndex += 1
                let cols = min(nr, width - j0)
                let direct = directB && cols == nr
                let panel = direct ? b + row * ldb + column + j0 : UnsafePointer(packedB + j0 * depth)
                tile(
                    c + i0 * ldc + j0, ldc: ldc, packedA + i0 * depth, panel, bStride: direct ? ldb : nr,
                    depth: depth, rows: rows, columns: cols, alpha: alpha, beta: beta)
                j0 += nr
            }
            i0 += mr
        }
    }

    /// Rows of a matrix that the next stretch of work reads, prefetched into L2 in equal parts
    /// spread over the current stretch (so the requests do not all queue at once).
    struct UpcomingRows {
        let start: UnsafeRawPointer
        let strideBytes: Int, linesPerRow: Int, lines: Int, perPart: Int

        /// - start: the first row's first float. stride: floats between rows. rows: how many rows
        ///   (none when ≤ 0). length: floats per row. over: how many parts the prefetches split into.
        @inline(__always)
        init(_ start: UnsafePointer<Float>, stride: Int, rows: Int, length: Int, over parts: Int) {
            self.start = UnsafeRawPointer(start)
            strideBytes = stride * MemoryLayout<Float>.stride
            linesPerRow = (length + 15) / 16
            lines = max(rows, 0) * linesPerRow
            perPart = (lines + max(parts, 1) - 1) / max(parts, 1)
        }

        /// Prefetches part `part` (0-based) of the lines; parts past the last do nothing.
        @inline(__always)
        func prefetch(part: Int) {
            var line = part * perPart
            let end = min(line + perPart, lines)
            while line < end {
                let (r, l) = line.quotientAndRemainder(dividingBy: linesPerRow)
                ddp_prefetch_l2(start + r * strideBytes + l * 64)
                line += 1
            }
        }
    }

    /// One register tile: the half-width kernel when at most NR/2 columns are live, else the full one.
    @inline(__always)
    static func tile(
        _ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        bStride: Int, depth: Int, rows: Int, columns: Int, alpha: Float, beta: Float
    ) {
        if columns <= nr / 2 {
            narrowMicroKernel(
                c, ldc: ldc, a, b, bStride: bStride, depth: depth, rows: rows, columns: columns,
                alpha: alpha, beta: beta)
        } else {
            microKernel(
                c, ldc: ldc, a, b, bStride: bStride, depth: depth, rows: rows, columns: columns,
                alpha: alpha, beta: beta)
        }
    }

    /// The smallest block size, a multiple of `multiple` and at most `limit`, that covers `size`
    /// in as few blocks as full `limit`-sized blocks would.
    static func balancedBlock(_ size: Int, limit: Int, multiple: Int) -> Int {
        let blocks = (size + limit - 1) / limit
        let even = (size + blocks - 1) / blocks
        return min(limit, (even + multiple - 1) / multiple * multiple)
    }

    /// c[m×n] (written, and read when beta != 0) = beta · c: the k == 0 or alpha == 0 case.
    static func scale(_ c: UnsafeMutablePointer<Float>, ldc: Int, m: Int, n: Int, beta: Float) {
        for i in 0 ..< m {
            let row = c + i * ldc
            if beta == 0 {
                row.update(repeating: 0, count: n)
            } else {
                for j in 0 ..< n { row[j] *= beta }
            }
        }
    }
}
