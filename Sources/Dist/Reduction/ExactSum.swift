import CPrefetch
import KernelsAVX2
import NN

#if canImport(KernelsAVX512)
    import KernelsAVX512
#endif

/// The kernels of the exact (deterministic) reduction: float gradients turned into integers at a
/// fixed power-of-two scale and added into Double accumulators that hold integers exactly. They run
/// on the kernel path in use (`KernelPath.current`: `FixedPointSum` of the AVX-512 or the AVX2
/// target, the same bits on each), with a plain twin here.
///
/// Buffers: `sums` is Double, integer-valued, added into; `gradients` is Float, read and then
/// cleared (set to 0) so the next chunk's backward adds into zeros; `n` elements each.
/// `scale` is 2^e: `Double(g) · scale` is exact (a power of two times a float), and rounding it
/// to the nearest integer (ties to even) is the only rounding. The caller chooses e so every
/// rounded term and every partial sum stays at or below 2^53 in magnitude, where Double holds
/// integers exactly; sums of integers then do not depend on their order.
public enum ExactSum {
    /// Adds round(g · scale) into `sums`, clears `gradients` (unless `clear` is false: the last
    /// chunk's gradients are overwritten by the mean anyway), and returns the largest |g|
    /// (+inf when an element is infinite, NaN when one is NaN).
    ///
    /// The magnitude is tracked on the bit patterns (|g| as an unsigned integer orders like the
    /// value, and NaN patterns lie above +inf), which vectorizes as an integer max.
    ///
    /// With `first`, `sums` is written instead of added into (its old contents are ignored): the
    /// first term of a sum skips a pass that clears it and a read of it, since the pass is bound by
    /// memory traffic.
    public static func accumulate(
        _ sums: UnsafeMutablePointer<Double>, clearing gradients: UnsafeMutablePointer<Float>,
        scale: Double, _ n: Int, first: Bool = false, clear: Bool = true
    ) -> Float {
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                return Float(bitPattern: KernelsAVX512.FixedPointSum.accumulate(sums, gradients, scale: scale, n, first: first, clear: clear))
            #else
                preconditionFailure("This build has no AVX-512 kernels.")
            #endif
        case .avx2, .portable:
            return Float(bitPattern: KernelsAVX2.FixedPointSum.accumulate(sums, gradients, scale: scale, n, first: first, clear: clear))
        }
    }

    /// The plain twin of `accumulate`: Int64 arithmetic and a float max, element by element.
    public static func accumulateReference(
        _ sums: UnsafeMutablePointer<Double>, clearing gradients: UnsafeMutablePointer<Float>,
        scale: Double, _ n: Int, first: Bool = false, clear: Bool = true
    ) -> Float {
        var most: Float = 0
        if first { sums.update(repeating: 0, count: n) }
        for i in 0 ..< n {
            let g = gradients[i]
            if g.isNaN { most = .nan } else if !most.isNaN { most = Swift.max(most, abs(g)) }
            let scaled = Double(g) * scale
            if scaled.isFinite && sums[i].isFinite {
                let q = Int64(scaled.rounded(.toNearestOrEven))
                sums[i] = Double(Int64(sums[i]) + q)
            } else {
                sums[i] += scaled
            }
            if clear { gradients[i] = 0 }
        }
        return most
    }

    /// Adds integer-valued Double sums into `sums` (another rank's terms): exact while every partial
    /// sum stays within 2^53, as the scales guarantee for a step that fits.
    public static func add(_ sums: UnsafeMutablePointer<Double>, _ terms: UnsafePointer<Double>, _ n: Int) {
        for i in 0 ..< n { sums[i] += terms[i] }
    }

    /// Copies `n` sums to `destination` with non-temporal stores where it is 32-byte aligned (x86-64):
    /// a block of sums finished in cache goes to memory without first reading the lines it
    /// replaces. Call `fenceStores` before anything else (MPI, another process) reads them.
    public static func streamStore(_ destination: UnsafeMutablePointer<Double>, _ values: UnsafePointer<Double>, _ n: Int) {
        KernelsAVX2.FixedPointSum.streamStore(destination, values, n)
    }

    /// Whether `denseChunkProducts` takes these chunks at this scale (else the caller forms each
    /// chunk's product with `GEMM.multiply` and converts it with `accumulate`: the same integers).
    public static func fusesDenseChunks(_ chunks: [Range<Int>], scale: Double) -> Bool {
        let depth: Int, samples: Int
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                (depth, samples) = (KernelsAVX512.PackedGEMM.exactChunkDepthLimit, KernelsAVX512.PackedGEMM.exactChunkSampleLimit)
            #else
                preconditionFailure("This build has no AVX-512 kernels.")
            #endif
        case .avx2, .portable:
            (depth, samples) = (KernelsAVX2.PackedGEMM.exactChunkDepthLimit, KernelsAVX2.PackedGEMM.exactChunkSampleLimit)
        }
        return scale <= 0x1p127 && chunks.allSatisfy { $0.count <= depth } && chunks.reduce(0) { $0 + $1.count } <= samples
    }

    /// A dense layer's weight gradient chunk by chunk, each turned into integers at `scale` and
    /// added into `sums` (`first`: written), in register tiles (`PackedGEMM.exactChunkProducts` of
    /// the path in use): the integers `accumulate` makes from `GEMM.multiply`'s product of each
    /// chunk, without the products ever reaching memory. With `mean` (and `first`), the sums are not
    /// written: their mean over `count` samples goes to `mean` instead, the bits `writeMean` gives.
    /// Only the elements in `window` (row-major indices of the weight) are written, and only the
    /// rows it touches computed. Returns the largest |gradient| of those rows. Take it only where
    /// `fusesDenseChunks` says so.
    ///
    /// - sums: `[units, features]` (row stride `features`). mean: the same shape, Float. gy:
    ///   `[N, units]`, row stride `ldGy`. x: `[N, features]`, row stride `ldX`. chunks: row ranges
    ///   of gy and x.
    public static func denseChunkProducts(
        sums: UnsafeMutablePointer<Double>, first: Bool, mean: UnsafeMutablePointer<Float>?, count: Int,
        gy: UnsafePointer<Float>, ldGy: Int, x: UnsafePointer<Float>, ldX: Int,
        units: Int, features: Int, window: Range<Int>, chunks: [Range<Int>], scale: Double
    ) -> Float {
        let factor = meanFactor(scale: scale, count: max(count, 1))
        let bits: UInt32
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                bits = KernelsAVX512.PackedGEMM.exactChunkProducts(
                    sums: sums, ldSums: features, first: first, mean: mean, ldMean: features,
                    meanFactor: factor, window: window, gy: gy, ldGy: ldGy, x: x, ldX: ldX,
                    m: units, n: features, chunks: chunks, scale: scale)
            #else
                preconditionFailure("This build has no AVX-512 kernels.")
            #endif
        case .avx2, .portable:
            bits = KernelsAVX2.PackedGEMM.exactChunkProducts(
                sums: sums, ldSums: features, first: first, mean: mean, ldMean: features,
                meanFactor: factor, window: window, gy: gy, ldGy: ldGy, x: x, ldX: ldX,
                m: units, n: features, chunks: chunks, scale: scale)
        }
        return Float(bitPattern: bits)
    }

    /// Orders the non-temporal stores of `streamStore` before later stores and loads.
    public static func fenceStores() {
        ddp_store_fence()
    }

    /// What turns a sum at `scale` over `count` samples into the mean: 1 / (scale · count), one
    /// product per element instead of a division. Every reader of the sums (`writeMean`, an
    /// optimizer reading `GradientSource.exactSums`) takes it from here, so their bits agree.
    public static func meanFactor(scale: Double, count: Int) -> Double { 1 / (scale * Double(count)) }

    /// Writes `sums[i] · (1 / (scale · count))` to `gradients`: the mean over `count` samples,
    /// one Double product (a multiplication rather than a division, which would dominate this
    /// memory-bound pass) rounded to Float32. (NN's `GradientSource.exactSums` reads the sums with
    /// the same arithmetic, so an optimizer step from them has the same bits.)
    public static func writeMean(
        _ gradients: UnsafeMutablePointer<Float>, _ sums: UnsafePointer<Double>,
        scale: Double, count: Int, _ n: Int
    ) {
        let factor = meanFactor(scale: scale, count: count)
        switch KernelPath.current {
        case .avx512:
            #if canImport(KernelsAVX512)
                KernelsAVX512.FixedPointSum.writeMean(gradients, sums, factor: factor, n)
            #else
                preconditionFailure("This build has no AVX-512 kernels.")
            #endif
        case .avx2, .portable:
            KernelsAVX2.FixedPointSum.writeMean(gradients, sums, factor: factor, n)
        }
    }
}
