import Dist
import NN

/// The deterministic mode's dense-layer kernel beside what the fast mode does for the same layer:
/// the weight gradient of fc1 over one rank's batch as one product (fast), as one product per chunk
/// (the deterministic mode's FMA chains, without integers), and as the deterministic mode computes
/// it on one rank (each chunk's product turned into integers, summed, and the mean written:
/// `ExactSum.denseChunkProducts`).
extension KernelBenchmark {
    public struct ExactDenseResult {
        public let name: String
        public let units: Int, features: Int, batch: Int, chunkSize: Int
        /// Median seconds: the whole batch as one product; one product per chunk; the exact mean.
        public let productSeconds: Double, chunkProductSeconds: Double, exactSeconds: Double
        public var flops: Double { 2 * Double(units) * Double(features) * Double(batch) }
    }

    /// Times each dense layer of the convnet's weight gradient three ways at `batch` samples in
    /// chunks of `chunkSize`, in turn, after checking that the exact mean agrees with a product per
    /// chunk converted element by element (`ExactSum.accumulateReference`) and scaled once.
    ///
    /// - Throws: `BenchmarkError.validationFailed` when a sum differs.
    public static func runExactDense(batch: Int, chunkSize: Int, repeats: Int) throws -> [ExactDenseResult] {
        var results: [ExactDenseResult] = []
        let chunks = DistributedSampler.chunks(count: batch, chunkSize: chunkSize)
        for fc in fashionMNISTDense {
            let (units, features) = (fc.units, fc.features)
            let gy = AlignedValues(randomValues(batch * units, seed: 6)), x = AlignedValues(randomValues(batch * features, seed: 7))
            let product = AlignedValues([Float](repeating: 0, count: units * features))
            let sums = UnsafeMutablePointer<Double>.allocate(capacity: units * features)
            let expected = UnsafeMutablePointer<Double>.allocate(capacity: units * features)
            defer {
                sums.deallocate()
                expected.deallocate()
            }
            // Products of values in [-1, 1) over a chunk stay below chunkSize; 2^30 keeps their
            // integers far inside 2^53.
            let scale = 0x1p30
            let gp = UnsafePointer(gy.buffer.baseAddress!), xp = UnsafePointer(x.buffer.baseAddress!), pp = product.buffer.baseAddress!
            func chunkProduct(_ chunk: Range<Int>) {
                GEMM.multiply(
                    pp, ldc: features, gp + chunk.lowerBound * units, lda: units, transA: true,
                    xp + chunk.lowerBound * features, ldb: features, transB: false, m: units, n: features, k: chunk.count)
            }
            // As a single rank's step computes it: the mean over the batch goes to the product buffer.
            func exact() -> Float {
                ExactSum.denseChunkProducts(
                    sums: sums, first: true, mean: pp, count: batch, gy: gp, ldGy: units, x: xp, ldX: features,
                    units: units, features: features, window: 0 ..< units * features, chunks: chunks, scale: scale)
            }
            guard ExactSum.fusesDenseChunks(chunks, scale: scale) else { continue }
            for (j, chunk) in chunks.enumerated() {
                chunkProduct(chunk)
                _ = ExactSum.accumulateReference(expected, clearing: pp, scale: scale, units * features, first: j == 0, clear: false)
            }
            _ = exact()
            let factor = ExactSum.meanFactor(scale: scale, count: batch)
            var mismatches = 0
            for i in 0 ..< units * features where pp[i] != Float(expected[i] * factor) { mismatches += 1 }
            guard mismatches == 0 else {
                throw BenchmarkError.validationFailed(name: "\(fc.name) exact mean", error: Float(mismatches), tolerance: 0)
            }
            let times = medianSeconds(
                repeats: repeats,
                [
                    {
                        GEMM.multiply(
                            pp, ldc: features, gp, lda: units, transA: true, xp, ldb: features, transB: false,
                            m: units, n: features, k: batch)
                    },
                    { for chunk in chunks { chunkProduct(chunk) } },
                    { blackHole(exact()) }
                ])
            results.append(
                ExactDenseResult(
                    name: "\(fc.name) grad weight", units: units, features: features, batch: batch,
                    chunkSize: chunkSize, productSeconds: times[0], chunkProductSeconds: times[1],
                    exactSeconds: times[2]))
        }
        return results
    }
}
