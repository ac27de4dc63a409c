/// Convolution kernels: the fast im2col + GEMM path and the direct reference twins.
///
/// Shape letters: `N` batch, `C` in-channels, `K` out-channels, `H,W` input, `P,Q` output,
/// `R,S` filter. Layouts: x `[N,C,H,W]`, weight `[K,C,R,S]`, bias `[K]`, y `[N,K,P,Q]`, and the
/// per-sample column matrix col `[C·R·S, P·Q]` (row `(c·R + r)·S + s`, column `p·Q + q` holds the
/// input pixel under filter tap (r, s) of output pixel (p, q), or 0 in the padding). The fast
/// kernels store its rows `columnStride(g)` floats apart (PQ rounded up to 16) from a 64-byte
/// boundary, so every row starts on a cache line and the GEMM's 16-float panel loads never split
/// one (with PQ = 196, three rows in four would otherwise start mid-line).
///
/// With that layout, one sample's convolution is a GEMM: `y_n[K×PQ] = weight[K×CRS] · col_n[CRS×PQ]`;
/// the weight gradient is `gradWeight += gy_n · col_nᵀ`, and the input gradient is
/// `col2im(weightᵀ · gy_n)`. The fast kernels build col_n a chunk of channels at a time (the
/// products split along CRS), so each chunk is still in L2 when the GEMM reads it.
public enum ConvKernels {
    /// The number of floats of scratch that the fast kernels need for geometry `g`: the column
    /// matrix of one channel chunk `[chunkRows, columnStride]` followed by one zero-bordered sample
    /// `[C, Hp, Wp]` (neither when the column matrix is the input itself: 1×1 filters, stride 1,
    /// no padding), plus 16 floats to start on a 64-byte boundary.
    ///
    /// After them comes the packed weight (`packedWeightCount(g)` floats, from a 64-byte boundary):
    /// each chunk's slice of the weight is packed once per call and reused by every sample's GEMM;
    /// then (not for pointwise geometries) room for the sample's gy, which `backward` packs once for
    /// all of its channel chunks' products.
    public static func columnScratchCount(_ g: ConvGeometry) -> Int {
        let columns = g.isPointwise ? 0 : columnMatrixCount(g) + g.C * g.paddedHeight * g.paddedWidth
        let packedGradOutput = g.isPointwise ? 0 : GEMM.packedCount(m: g.K, k: g.PQ) + 16
        return columns + 16 + packedWeightCount(g) + 16 + packedGradOutput
    }

    /// Floats for every channel chunk's packed weight slice, as forward (`K×rows`) or as the input
    /// gradient (`rows×K`, transposed) packs it, whichever is larger.
    static func packedWeightCount(_ g: ConvGeometry) -> Int {
        var forward = 0, backward = 0
        let chunk = packingChunk(g), taps = g.R * g.S
        for c0 in stride(from: 0, to: g.C, by: chunk) {
            let rows = (min(c0 + chunk, g.C) - c0) * taps
            forward += GEMM.packedCount(m: g.K, k: rows)
            backward += GEMM.packedCount(m: rows, k: g.K)
        }
        return max(forward, backward)
    }

    /// Channels per packed weight slice: the column chunks, or all channels for a pointwise
    /// geometry (whose one GEMM per sample spans all of C).
    static func packingChunk(_ g: ConvGeometry) -> Int { g.isPointwise ? g.C : chunkChannels(g) }

    /// The packed weight's place in the scratch: the first 64-byte boundary after the column
    /// matrix and the zero-bordered sample (or at the start for pointwise geometries).
    static func packedWeights(_ scratch: UnsafeMutablePointer<Float>, _ g: ConvGeometry) -> UnsafeMutablePointer<Float> {
        lineAligned(g.isPointwise ? scratch : layout(scratch, g).padded + g.C * g.paddedHeight * g.paddedWidth)
    }

    /// The first 64-byte boundary (a cache line) at or after `p`.
    static func lineAligned(_ p: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        UnsafeMutablePointer<Float>(bitPattern: (UInt(bitPattern: p) + 63) & ~UInt(63))!
    }

    /// Where each channel chunk's packed weight slice starts: chunk `i` at `base + i · stride`, as
    /// every chunk but a ragged last one has the full size (a value, so a call allocates nothing).
    struct PackedChunks {
        let base: UnsafePointer<Float>
        let stride: Int
        subscript(index: Int) -> UnsafePointer<Float> { base + index * stride }
    }

    /// Packs each channel chunk's slice of the weight, one after the other in `dst`, and returns
    /// where each chunk's packed slice starts: `weight[:, chunk]` (`K×rows`) for forward, or its
    /// transpose (`rows×K`) for the input gradient.
    static func packWeightChunks(
        _ dst: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>,
        _ g: ConvGeometry, transposed: Bool
    ) -> PackedChunks {
        let chunk = packingChunk(g), taps = g.R * g.S
        var at = dst
        for c0 in stride(from: 0, to: g.C, by: chunk) {
            let rows = (min(c0 + chunk, g.C) - c0) * taps
            let (m, k) = transposed ? (rows, g.K) : (g.K, rows)
            GEMM.pack(at, weight + c0 * taps, lda: g.CRS, transA: transposed, m: m, k: k)
            at += GEMM.packedCount(m: m, k: k)
        }
        let fullRows = min(chunk, g.C) * taps
        let full = transposed ? GEMM.packedCount(m: fullRows, k: g.K) : GEMM.packedCount(m: g.K, k: fullRows)
        return PackedChunks(base: UnsafePointer(dst), stride: full)
    }

    /// Floats of the scratch's column matrix: one chunk's `[rows, columnStride]`, or, where the
    /// weight gradient builds it transposed, `[PQ, transposedColumnStride]` if that is larger.
    static func columnMatrixCount(_ g: ConvGeometry) -> Int {
        let rows = chunkChannels(g) * g.R * g.S
        return max(rows * columnStride(g), buildsTransposedColumns(g) ? g.PQ * transposedColumnStride(g) : 0)
    }

    /// Whether `backward` builds each chunk's column matrix transposed for the weight gradient:
    /// then the product reads it in place instead of repacking it panel by panel, which pays when a
    /// chunk has at least a full panel of taps and a filter row's taps fit one eight-float copy.
    static func buildsTransposedColumns(_ g: ConvGeometry) -> Bool {
        !g.isPointwise && g.strideW == 1 && g.S <= 8 && chunkChannels(g) * g.R * g.S >= 32
    }

    /// The row stride of the transposed column matrix: a chunk's taps, plus room for the last
    /// eight-float copy's overhang, rounded up to whole 64-byte lines.
    static func transposedColumnStride(_ g: ConvGeometry) -> Int { (chunkChannels(g) * g.R * g.S + 8 - g.S + 15) / 16 * 16 }

    /// The row stride of the column matrix in the scratch: PQ rounded up to whole 64-byte lines.
    public static func columnStride(_ g: ConvGeometry) -> Int { (g.PQ + 15) / 16 * 16 }

    /// The scratch's column matrix and zero-bordered sample: the first 64-byte boundary in
    /// `scratch`, and the sample after the matrix.
    static func layout(_ scratch: UnsafeMutablePointer<Float>, _ g: ConvGeometry)
        -> (col: UnsafeMutablePointer<Float>, padded: UnsafeMutablePointer<Float>)
    {
        let col = lineAligned(scratch)
        return (col, col + columnMatrixCount(g))
    }

    /// Channels per chunk of the column matrix: chunks of at most about 256 rows (one GEMM depth
    /// block), of equal size, so a chunk's columns stay in L2 between im2col and the GEMM that
    /// reads them (or between the GEMM that writes them and col2im).
    public static func chunkChannels(_ g: ConvGeometry) -> Int {
        let perChunk = max(1, 256 / (g.R * g.S))
        let chunks = (g.C + perChunk - 1) / perChunk
        return (g.C + chunks - 1) / chunks
    }

    // MARK: Fast kernels

    /// Fast forward: y (written) = conv(x, weight) + bias; per sample and channel chunk, im2col
    /// then a GEMM that accumulates the chunk's taps.
    ///
    /// - y: `[N,K,P,Q]` (written), or one sample's `[K,P,Q]` rewritten for each sample when
    ///   `outputStride` is 0. x: `[N,C,H,W]` (read). weight: `[K,C,R,S]` (read).
    /// - bias: `[K]` (read) or nil. scratch: `columnScratchCount(g)` floats (overwritten).
    /// - outputStride: floats from one sample's output to the next (`K·P·Q` by default).
    /// - sampleDone: called with each sample's index once its output (bias included) is
    ///   written, before the next sample's overwrites a reused block: a fused pooling pass reads it
    ///   there while it is still in cache.
    public static func forward(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
        _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ scratch: UnsafeMutablePointer<Float>, _ N: Int, _ g: ConvGeometry,
        outputStride: Int? = nil, sampleDone: (Int) -> Void = { _ in }
    ) {
        let inputCount = g.C * g.H * g.W, outputCount = outputStride ?? g.K * g.PQ, taps = g.R * g.S
        let chunk = chunkChannels(g), (col, padded) = layout(scratch, g), ldcol = columnStride(g)
        let packed = packWeightChunks(packedWeights(scratch, g), weight, g, transposed: false)
        for n in 0 ..< N {
            defer { sampleDone(n) }
            let xn = x + n * inputCount, yn = y + n * outputCount
            if g.isPointwise {
                GEMM.multiply(
                    yn, ldc: g.PQ, packedA: packed[0], xn, ldb: g.PQ, transB: false,
                    m: g.K, n: g.PQ, k: g.CRS)
            } else {
                pad(padded, xn, g)
                for (index, c0) in stride(from: 0, to: g.C, by: chunk).enumerated() {
                    let channels = c0 ..< min(c0 + chunk, g.C)
                    unfold(col, padded, g, channels: channels)
                    // y_n[K×PQ] (+)= weight[:, chunk][K×rows] · col_chunk[rows×PQ]
                    GEMM.multiply(
                        yn, ldc: g.PQ, packedA: packed[index], col, ldb: ldcol,
                        transB: false, m: g.K, n: g.PQ, k: channels.count * taps, beta: c0 == 0 ? 0 : 1)
                }
            }
            if let bias {
                for k in 0 ..< g.K {
                    let row = yn + k * g.PQ, b = bias[k]
                    for i in 0 ..< g.PQ { row[i] += b }
                }
            }
        }
    }

    /// Fast backward: the weight gradient, the bias gradient's sums and (when asked) the input
    /// gradient, one sample at a time; per sample, im2col then a GEMM per channel chunk for the
    /// weight, then per chunk a GEMM and col2im for the input.
    ///
    /// One pass over the samples serves both gradients, so each sample's gy is prepared once and
    /// is still in cache for the input gradient's products; with several chunks, gy is packed once
    /// per sample for all of them (the same bits as packing it in every product).
    ///
    /// - gradWeight: `[K,C,R,S]` (added into).
    /// - biasSums: `[K]` Double (added into: each output channel's sum of gy over the samples, in
    ///   sample order) or nil. The caller rounds them into the float bias gradient once, after its
    ///   last block of samples, so the bits do not depend on how the batch was cut into blocks.
    /// - gradInput: `[N,C,H,W]` (written) or nil when the input gradient is not wanted.
    /// - gy: `[N,K,P,Q]` (read), or one sample's `[K,P,Q]` refilled for each sample when
    ///   `gradOutputStride` is 0. x: `[N,C,H,W]` (read). weight: `[K,C,R,S]` (read).
    /// - scratch: `columnScratchCount(g)` floats (overwritten).
    /// - gradOutputStride: floats from one sample's gy to the next (`K·P·Q` by default).
    /// - prepareSample: called with each sample's index before its gy is read (a fused pooling
    ///   layer's backward writes it there).
    public static func backward(
        _ gradWeight: UnsafeMutablePointer<Float>, _ biasSums: UnsafeMutablePointer<Double>?,
        _ gradInput: UnsafeMutablePointer<Float>?,
        _ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        _ scratch: UnsafeMutablePointer<Float>, _ N: Int, _ g: ConvGeometry,
        gradOutputStride: Int? = nil, prepareSample: (Int) -> Void = { _ in }
    ) {
        let inputCount = g.C * g.H * g.W, outputCount = gradOutputStride ?? g.K * g.PQ, taps = g.R * g.S
        let chunk = chunkChannels(g), (col, padded) = layout(scratch, g), ldcol = columnStride(g)
        let transposedColumns = buildsTransposedColumns(g), ldcolT = transposedColumnStride(g)
        let packed = gradInput == nil ? nil : packWeightChunks(packedWeights(scratch, g), weight, g, transposed: true)
        let packedGradOutput = packedGradOutputs(scratch, g)
        for n in 0 ..< N {
            prepareSample(n)
            let xn = x + n * inputCount, gyn = gy + n * outputCount
            // The bias sums read the sample's gy while it is in cache from preparing it.
            if let biasSums { for k in 0 ..< g.K { biasSums[k] += Double(vectorSum(gyn + k * g.PQ, g.PQ)) } }
            if g.isPointwise {
                GEMM.multiply(
                    gradWeight, ldc: g.CRS, gyn, lda: g.PQ, transA: false, xn, ldb: g.PQ, transB: true,
                    m: g.K, n: g.CRS, k: g.PQ, beta: 1)
                // For 1×1 filters the column-matrix gradient is gx_n itself.
                if let gradInput, let packed {
                    GEMM.multiply(
                        gradInput + n * inputCount, ldc: g.PQ, packedA: packed[0], gyn, ldb: g.PQ, transB: false,
                        m: g.CRS, n: g.PQ, k: g.K)
                }
                continue
            }
            GEMM.pack(packedGradOutput, gyn, lda: g.PQ, transA: false, m: g.K, k: g.PQ)
            pad(padded, xn, g)
            for c0 in stride(from: 0, to: g.C, by: chunk) {
                let channels = c0 ..< min(c0 + chunk, g.C)
                // gradWeight[:, chunk][K×rows] += gy_n[K×PQ] · col_chunkᵀ[PQ×rows], from colᵀ built
                // directly where that pays (the same sums in the same order either way).
                if transposedColumns {
                    unfoldTransposed(col, padded, g, channels: channels, rowStride: ldcolT)
                } else {
                    unfold(col, padded, g, channels: channels)
                }
                let (columns, ldb) = (UnsafePointer(col), transposedColumns ? ldcolT : ldcol)
                GEMM.multiply(
                    gradWeight + c0 * taps, ldc: g.CRS, packedA: packedGradOutput, columns, ldb: ldb,
                    transB: !transposedColumns, m: g.K, n: channels.count * taps, k: g.PQ, beta: 1)
            }
            guard let gradInput, let packed else { continue }
            padded.update(repeating: 0, count: g.C * g.paddedHeight * g.paddedWidth)
            for (index, c0) in stride(from: 0, to: g.C, by: chunk).enumerated() {
                let channels = c0 ..< min(c0 + chunk, g.C)
                // gcol_chunk[rows×PQ] = weight[:, chunk]ᵀ[rows×K] · gy_n[K×PQ]
                GEMM.multiply(
                    col, ldc: ldcol, packedA: packed[index], gyn, ldb: g.PQ,
                    transB: false, m: channels.count * taps, n: g.PQ, k: g.K)
                fold(padded, col, g, channels: channels)
            }
            unpad(gradInput + n * inputCount, padded, g)
        }
    }

    /// Where `backward` packs a sample's gy: after the packed weight, from a 64-byte boundary.
    static func packedGradOutputs(_ scratch: UnsafeMutablePointer<Float>, _ g: ConvGeometry) -> UnsafeMutablePointer<Float> {
        lineAligned(packedWeights(scratch, g) + packedWeightCount(g))
    }

    /// Copies one sample into the interior of a zero-bordered buffer, so that the column matrix
    /// becomes plain strided reads with no bounds tests per pixel.
    ///
    /// - padded: `[C, Hp, Wp]` (written: the sample at offset (padTop, padLeft), zeros around it).
    /// - x: one sample `[C,H,W]` (read).
    static func pad(_ padded: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ g: ConvGeometry) {
        let hp = g.paddedHeight, wp = g.paddedWidth
        padded.update(repeating: 0, count: g.C * hp * wp)
        for c in 0 ..< g.C {
            for h in 0 ..< g.H {
                copy(padded + (c * hp + h + g.padTop) * wp + g.padLeft, x + (c * g.H + h) * g.W, g.W)
            }
        }
    }

    /// The rows of the column matrix for a range of channels.
    ///
    /// - col: `[channels.count·R·S, PQ]`, rows `columnStride(g)` apart (written; row 0 is channel
    ///   `channels.lowerBound`, tap (0, 0)).
    /// - padded: the zero-bordered sample `[C, Hp, Wp]` from `pad` (read).
    static func unfold(
        _ col: UnsafeMutablePointer<Float>, _ padded: UnsafePointer<Float>, _ g: ConvGeometry,
        channels: Range<Int>
    ) {
        let hp = g.paddedHeight, wp = g.paddedWidth, rowStride = columnStride(g)
        var row = col
        for c in channels {
            for r in 0 ..< g.R {
                for s in 0 ..< g.S {
                    let base = padded + (c * hp + r) * wp + s
                    for p in 0 ..< g.P {
                        let src = base + p * g.strideH * wp, out = row + p * g.Q
                        if g.strideW == 1 {
                            copy(out, src, g.Q)
                        } else {
                            for q in 0 ..< g.Q { out[q] = src[q * g.strideW] }
                        }
                    }
                    row += rowStride
                }
            }
        }
    }

    /// Builds the transposed column matrix of a range of channels for stride-1 filters at most
    /// eight taps wide: row `p·Q + q` holds the taps `(c, r, s)` of output pixel (p, q), in the
    /// weight's `[C,R,S]` order.
    ///
    /// A filter row's S taps are S floats side by side in the padded sample, copied as eight: each
    /// copy's overhang is overwritten by the next tap row's copy (taps are written in ascending
    /// order within an output row), and the last one's lands in the row's padding.
    ///
    /// - colT: `[PQ, channels.count·R·S]`, rows `rowStride ≥ channels.count·R·S + 8 − S` floats
    ///   apart (written, and up to 8 − S floats past each row's taps).
    /// - padded: one zero-bordered sample `[C, Hp, Wp]` (read, and up to 8 − S floats past each
    ///   copied window: inside the scratch).
    static func unfoldTransposed(
        _ colT: UnsafeMutablePointer<Float>, _ padded: UnsafePointer<Float>, _ g: ConvGeometry,
        channels: Range<Int>, rowStride: Int
    ) {
        let hp = g.paddedHeight, wp = g.paddedWidth, rowBytes = rowStride * MemoryLayout<Float>.stride
        for p in 0 ..< g.P {
            var j = 0
            for c in channels {
                for r in 0 ..< g.R {
                    var src = UnsafeRawPointer(padded + (c * hp + p * g.strideH + r) * wp)
                    var out = UnsafeMutableRawPointer(colT + p * g.Q * rowStride + j)
                    for _ in 0 ..< g.Q {
                        out.storeBytes(of: src.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                        src += MemoryLayout<Float>.stride
                        out += rowBytes
                    }
                    j += g.S
                }
            }
        }
    }

    /// Sums the column-matrix gradient of a range of channels into a zero-bordered sample gradient,
    /// taps on the border included (they are dropped by `unpad`).
    ///
    /// - padded: `[C, Hp, Wp]` (added into). gcol: `[channels.count·R·S, PQ]`, rows `columnStride(g)`
    ///   apart (read).
    static func fold(
        _ padded: UnsafeMutablePointer<Float>, _ gcol: UnsafePointer<Float>, _ g: ConvGeometry,
        channels: Range<Int>
    ) {
        let hp = g.paddedHeight, wp = g.paddedWidth, rowStride = columnStride(g)
        var row = gcol
        for c in channels {
            for r in 0 ..< g.R {
                for s in 0 ..< g.S {
                    let base = padded + (c * hp + r) * wp + s
                    for p in 0 ..< g.P {
                        let dst = base + p * g.strideH * wp, src = row + p * g.Q
                        if g.strideW == 1 {
                            add(dst, src, g.Q)
                        } else {
                            for q in 0 ..< g.Q { dst[q * g.strideW] += src[q] }
                        }
                    }
                    row += rowStride
                }
            }
        }
    }

    /// Copies the interior of a zero-bordered sample gradient out.
    ///
    /// - gx: one sample `[C,H,W]` (written). padded: `[C, Hp, Wp]` (read).
    static func unpad(_ gx: UnsafeMutablePointer<Float>, _ padded: UnsafePointer<Float>, _ g: ConvGeometry) {
        let hp = g.paddedHeight, wp = g.paddedWidth
        for c in 0 ..< g.C {
            for h in 0 ..< g.H {
                copy(gx + (c * g.H + h) * g.W, padded + (c * hp + h + g.padTop) * wp + g.padLeft, g.W)
            }
        }
    }

    /// Copies `count` floats eight at a time: rows here are short (tens of floats), where a call
    /// to memmove per row costs more than the copy. A ragged end is copied as the last eight
    /// floats again (overlapping, same values) rather than one by one.
    @inline(__always)
    static func copy(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
        guard count >= 8 else {
            for i in 0 ..< count { dst[i] = src[i] }
            return
        }
        var i = 0
        while i + 8 <= count {
            UnsafeMutableRawPointer(dst + i).storeBytes(
                of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self),
                as: SIMD8<Float>.self)
            i += 8
        }
        if i < count {
            let last = count - 8
            UnsafeMutableRawPointer(dst + last).storeBytes(
                of: UnsafeRawPointer(src + last).loadUnaligned(as: SIMD8<Float>.self),
                as: SIMD8<Float>.self)
        }
    }

    /// Adds `count` floats of `src` into `dst`, eight at a time. A ragged end is one more vector
    /// over the last eight floats, loaded before anything is stored and stored last: its lanes
    /// that the full vectors also cover then hold the same sums (original + src), and no load reads
    /// a vector that a store just wrote in part (which stalls store-to-load forwarding; with the
    /// tail loaded after the stores, folding 14-float rows took about 20 cycles a row).
    @inline(__always)
    static func add(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
        guard count >= 8 else {
            for i in 0 ..< count { dst[i] += src[i] }
            return
        }
        let last = count - 8
        let tail = UnsafeMutableRawPointer(dst + last)
        let tailSum = tail.loadUnaligned(as: SIMD8<Float>.self) + UnsafeRawPointer(src + last).loadUnaligned(as: SIMD8<Float>.self)
        var i = 0
        while i < last {
            let d = UnsafeMutableRawPointer(dst + i)
            d.storeBytes(
                of: d.loadUnaligned(as: SIMD8<Float>.self) + UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self),
                as: SIMD8<Float>.self)
            i += 8
        }
        tail.storeBytes(of: tailSum, as: SIMD8<Float>.self)
    }

    /// The sum of `count` floats, eight lanes at a time.
    static func vectorSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= count {
            acc += raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
            i += 8
        }
        var sum = acc.sum()
        while i < count {
            sum += p[i]
            i += 1
        }
        return sum
    }

    // MARK: Reference twins

    /// Direct convolution, the reference: y (written) = conv(x, weight) + bias.
    public static func forwardReference(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
        _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ N: Int, _ g: ConvGeometry
    ) {
        for n in 0 ..< N {
            for k in 0 ..< g.K {
                for p in 0 ..< g.P {
                    for q in 0 ..< g.Q {
                        var sum = Double(bias?[k] ?? 0)
                        for c in 0 ..< g.C {
                            for r in 0 ..< g.R {
                                for s in 0 ..< g.S {
                                    let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                                    guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                                    sum += Double(x[((n * g.C + c) * g.H + h) * g.W + w]) * Double(weight[((k * g.C + c) * g.R + r) * g.S + s])
                                }
                            }
                        }
                        y[((n * g.K + k) * g.P + p) * g.Q + q] = Float(sum)
                    }
                }
            }
        }
    }

    /// Reference weight and bias gradients: gradWeight and gradBias are *added into*.
    public static func backwardWeightReference(
        _ gradWeight: UnsafeMutablePointer<Float>,
        _ gradBias: UnsafeMutablePointer<Float>?,
        _ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
        _ N: Int, _ g: ConvGeometry
    ) {
        for k in 0 ..< g.K {
            if let gb = gradBias {
                var sum = 0.0
                for n in 0 ..< N { for i in 0 ..< g.PQ { sum += Double(gy[(n * g.K + k) * g.PQ + i]) } }
                gb[k] += Float(sum)
            }
            for c in 0 ..< g.C {
                for r in 0 ..< g.R {
                    for s in 0 ..< g.S {
                        var sum = 0.0
                        for n in 0 ..< N {
                            for p in 0 ..< g.P {
                                for q in 0 ..< g.Q {
                                    let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                                    guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                                    sum += Double(gy[((n * g.K + k) * g.P + p) * g.Q + q]) * Double(x[((n * g.C + c) * g.H + h) * g.W + w])
                                }
                            }
                        }
                        gradWeight[((k * g.C + c) * g.R + r) * g.S + s] += Float(sum)
                    }
                }
            }
        }
    }

    /// Reference input gradient: gx (written) = transposed convolution of gy with weight.
    public static func backwardInputReference(
        _ gx: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>,
        _ weight: UnsafePointer<Float>, _ N: Int, _ g: ConvGeometry
    ) {
        gx.update(repeating: 0, count: N * g.C * g.H * g.W)
        for n in 0 ..< N {
            for k in 0 ..< g.K {
                for p in 0 ..< g.P {
                    for q in 0 ..< g.Q {
                        let d = gy[((n * g.K + k) * g.P + p) * g.Q + q]
                        for c in 0 ..< g.C {
                            for r in 0 ..< g.R {
                                for s in 0 ..< g.S {
                                    let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                                    guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                                    gx[((n * g.C + c) * g.H + h) * g.W + w] += d * weight[((k * g.C + c) * g.R + r) * g.S + s]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
