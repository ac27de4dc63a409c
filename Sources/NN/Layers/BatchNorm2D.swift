#if canImport(Glibc)
    import Glibc
#else
    import Foundation
#endif

/// Batch normalization per channel over the batch and spatial positions (N, H, W).
///
/// Input `[N, C, H, W]` (or `[N, C]`), output the same shape:
/// `y = gamma · (x − mean) / sqrt(var + epsilon) + beta`, with parameters `gamma`, `beta` `[C]`.
/// In training, mean and (biased) variance are the batch's, and the non-trainable running
/// statistics `running_mean`, `running_var` `[C]` move toward them with `momentum` (PyTorch:
/// `running = (1 − momentum) · running + momentum · batch`, the unbiased variance for
/// `running_var`). At inference the running statistics are used.
///
/// With `synchronized`, the batch statistics are those of the global batch: forward sums the
/// per-channel count, sum and sum of squares through `ForwardContext.statisticsReducer`, and
/// backward sums its two per-channel reductions the same way, so P replicas compute what one
/// would on the concatenated batch. The gamma/beta gradients added to the arena stay local
/// (the gradient allreduce sums them).
public struct BatchNorm2D: Layer {
    /// The running statistics' update factor, in [0, 1].
    public let momentum: Double
    /// Added to the variance before the square root (> 0).
    public let epsilon: Double
    /// Whether batch statistics are summed across replicas.
    public let synchronized: Bool

    private var gammaSlot: ParameterSlot?
    private var betaSlot: ParameterSlot?
    private var runningMeanSlot: ParameterSlot?
    private var runningVarSlot: ParameterSlot?
    // Cached for backward: the normalized input, each channel's 1/sqrt(var + eps), the (global)
    // element count per channel, and whether batch statistics were used.
    private var normalized = Tensor(shape: [0])
    private var inverseStd: [Double] = []
    private var count = 0
    private var usedBatchStatistics = false
    private var reducer: (any StatisticsReducer)?
    // Buffers kept across steps, so that a steady step allocates nothing: the batch's count, sum
    // and sum of squares per channel, its mean and variance (kept for `lastBatchStatistics`), the
    // mean forward subtracts (the batch's or the running one), the output, backward's two sums
    // per channel and the input gradient.
    private var statistics: [Double] = []
    private var batchMean: [Double] = []
    private var batchVariance: [Double] = []
    private var hasBatchStatistics = false
    private var shift: [Double] = []
    private var output = Tensor(shape: [0])
    private var sums: [Double] = []
    private var gradInput = Tensor(shape: [0])

    /// - Parameters:
    ///   - momentum: running-statistics factor (PyTorch default 0.1).
    ///   - epsilon: variance offset (default 1e-5).
    ///   - synchronized: sum statistics across replicas when the context has a reducer.
    public init(momentum: Double = 0.1, epsilon: Double = 1e-5, synchronized: Bool = false) {
        precondition(momentum >= 0 && momentum <= 1, "BatchNorm2D momentum must be in [0, 1], got \(momentum).")
        precondition(epsilon > 0, "BatchNorm2D epsilon must be positive, got \(epsilon).")
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
    }

    public var usesBatchStatistics: Bool { true }
    public var isSynchronized: Bool { synchronized }

    public var summary: String {
        "batchnorm2d(m\(momentum),eps\(epsilon)\(synchronized ? ",sync" : ""))"
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard inputShape.count == 3 || inputShape.count == 1, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.shapeMismatch(
                layer: summary, index: -1, inputShape: inputShape,
                reason: "expects a per-sample shape [C, H, W] or [C]")
        }
        return inputShape
    }

    public func parameterSpecs(for inputShape: [Int]) -> [ParameterSpec] {
        let c = [inputShape.first ?? 1]
        return [
            ParameterSpec(name: "gamma", shape: c, initializer: .ones),
            ParameterSpec(name: "beta", shape: c, initializer: .zeros),
            ParameterSpec(name: "running_mean", shape: c, initializer: .zeros, trainable: false),
            ParameterSpec(name: "running_var", shape: c, initializer: .ones, trainable: false)
        ]
    }

    public mutating func bind(slots: [ParameterSlot]) {
        (gammaSlot, betaSlot, runningMeanSlot, runningVarSlot) = (slots[0], slots[1], slots[2], slots[3])
    }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        guard let gamma = gammaSlot, let beta = betaSlot, let rMean = runningMeanSlot, let rVar = runningVarSlot else {
            preconditionFailure("BatchNorm2D.forward called before the layer was bound to an arena.")
        }
        let c = gamma.count, n = input.batchSize
        precondition(
            (input.shape.count == 4 || input.shape.count == 2) && input.shape[1] == c,
            "BatchNorm2D expects input [N, \(c), H, W] or [N, \(c)], got \(input.shape).")
        let spatial = input.shape.dropFirst(2).reduce(1, *)
        usedBatchStatistics = context.training
        let reducer = synchronized ? context.statisticsReducer : nil
        self.reducer = reducer
        BatchNorm2D.reserve(&shift, c)
        BatchNorm2D.reserve(&inverseStd, c)
        if context.training {
            // Per-channel count, sum and sum of squares, summed across replicas when synchronized.
            BatchNorm2D.reserve(&statistics, 3 * c)
            statistics.withUnsafeMutableBufferPointer { stats in
                BatchNorm2D.accumulateStatistics(of: input, into: stats)
                if let reducer { reducer.sumAcrossReplicas(stats) }
            }
            count = Int(statistics[0].rounded())
            precondition(count > 0, "BatchNorm2D needs at least one element per channel in training, got input \(input.shape).")
            BatchNorm2D.reserve(&batchMean, c)
            BatchNorm2D.reserve(&batchVariance, c)
            BatchNorm2D.meanAndVariance(statistics: statistics, mean: &batchMean, variance: &batchVariance)
            hasBatchStatistics = true
            updateRunningStatistics(mean: batchMean, variance: batchVariance, count: count, arena: arena)
            for k in 0 ..< c {
                shift[k] = batchMean[k]
                inverseStd[k] = 1 / (batchVariance[k] + epsilon).squareRoot()
            }
        } else {
            for k in 0 ..< c {
                shift[k] = Double(arena.parameters[rMean.offset + k])
                inverseStd[k] = 1 / (Double(arena.parameters[rVar.offset + k]) + epsilon).squareRoot()
            }
        }
        // Every element of both is written below, so their old contents do not matter.
        normalized.resize(to: input.shape)
        output.resize(to: input.shape)
        let g = arena.parameters + gamma.offset, b = arena.parameters + beta.offset
        let mean = shift, inverseStd = self.inverseStd
        input.storage.withUnsafeBufferPointer { x in
            normalized.storage.withUnsafeMutableBufferPointer { xh in
                output.storage.withUnsafeMutableBufferPointer { y in
                    for i in 0 ..< n {
                        for k in 0 ..< c {
                            let base = (i * c + k) * spatial
                            let mk = Float(mean[k]), sk = Float(inverseStd[k])
                            for j in base ..< base + spatial {
                                xh[j] = (x[j] - mk) * sk
                                y[j] = g[k] * xh[j] + b[k]
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    /// The batch statistics of the last training forward: per-channel mean and biased variance
    /// (the global batch's when synchronized), and the element count per channel; nil before one.
    public var lastBatchStatistics: (mean: [Double], variance: [Double], count: Int)? {
        hasBatchStatistics ? (batchMean, batchVariance, count) : nil
    }

    /// Per-channel element count, sum and sum of squares of a batch, in this order (`3·C` values,
    /// summed in Double over samples then positions, in index order): what training forward
    /// normalizes with, before any sum across replicas.
    ///
    /// - Parameter input: `[N, C, H, W]` or `[N, C]`.
    public func batchStatistics(of input: Tensor) -> [Double] {
        var stats = [Double](repeating: 0, count: 3 * input.shape[1])
        stats.withUnsafeMutableBufferPointer { BatchNorm2D.accumulateStatistics(of: input, into: $0) }
        return stats
    }

    /// `batchStatistics(of:)` into a buffer the caller keeps (`3·C` values, overwritten).
    public func batchStatistics(of input: Tensor, into stats: UnsafeMutableBufferPointer<Double>) {
        BatchNorm2D.accumulateStatistics(of: input, into: stats)
    }

    /// Writes `batchStatistics(of:)` into `stats` (`3·C` values).
    static func accumulateStatistics(of input: Tensor, into stats: UnsafeMutableBufferPointer<Double>) {
        let c = input.shape[1], n = input.batchSize
        let spatial = input.shape.dropFirst(2).reduce(1, *)
        precondition(stats.count == 3 * c, "BatchNorm2D statistics of \(c) channels need \(3 * c) values, got \(stats.count).")
        stats.update(repeating: 0)
        input.storage.withUnsafeBufferPointer { x in
            for i in 0 ..< n {
                for k in 0 ..< c {
                    let base = (i * c + k) * spatial
                    var s = 0.0, s2 = 0.0
                    for j in base ..< base + spatial {
                        let v = Double(x[j])
                        s += v
                        s2 += v * v
                    }
                    stats[c + k] += s
                    stats[2 * c + k] += s2
                }
            }
        }
        for k in 0 ..< c { stats[k] = Double(n * spatial) }
    }

    /// Per-channel mean and biased variance from `batchStatistics(of:)`-style values (count, sum,
    /// sum of squares; possibly summed over replicas or chunks): what training forward normalizes with.
    public static func meanAndVariance(statistics stats: [Double]) -> (mean: [Double], variance: [Double]) {
        let c = stats.count / 3
        var mean = [Double](repeating: 0, count: c), variance = [Double](repeating: 0, count: c)
        meanAndVariance(statistics: stats, mean: &mean, variance: &variance)
        return (mean, variance)
    }

    /// Writes `meanAndVariance(statistics:)` into `mean` and `variance` (`C` values each).
    public static func meanAndVariance(statistics stats: [Double], mean: inout [Double], variance: inout [Double]) {
        let c = stats.count / 3
        precondition(mean.count == c && variance.count == c, "BatchNorm2D needs \(c) means and variances, got \(mean.count) and \(variance.count).")
        let m = Double(Int(stats[0].rounded()))
        for k in 0 ..< c {
            mean[k] = stats[c + k] / m
            variance[k] = max(stats[2 * c + k] / m - mean[k] * mean[k], 0)
        }
    }

    /// Makes `buffer` hold `count` values, reusing it when it already does (contents unspecified).
    private static func reserve(_ buffer: inout [Double], _ count: Int) {
        if buffer.count != count { buffer = [Double](repeating: 0, count: count) }
    }

    /// Moves the running statistics toward a batch's: `running = (1 − momentum) · running +
    /// momentum · batch`, the unbiased variance (`variance · count / (count − 1)`) for `running_var`.
    ///
    /// - Parameters:
    ///   - mean: per-channel batch mean.
    ///   - variance: per-channel biased batch variance.
    ///   - count: elements per channel the statistics were taken over.
    ///   - arena: where the running statistics live.
    public func updateRunningStatistics(mean: [Double], variance: [Double], count: Int, arena: ParameterArena) {
        mean.withUnsafeBufferPointer { mean in
            variance.withUnsafeBufferPointer { variance in
                updateRunningStatistics(mean: mean, variance: variance, count: count, arena: arena)
            }
        }
    }

    /// `updateRunningStatistics(mean:variance:count:arena:)` from buffers the caller keeps (`C`
    /// values each, read).
    public func updateRunningStatistics(
        mean: UnsafeBufferPointer<Double>, variance: UnsafeBufferPointer<Double>, count: Int, arena: ParameterArena
    ) {
        guard let rMean = runningMeanSlot, let rVar = runningVarSlot else {
            preconditionFailure("BatchNorm2D.updateRunningStatistics called before the layer was bound to an arena.")
        }
        precondition(
            mean.count >= rMean.count && variance.count >= rMean.count,
            "BatchNorm2D running statistics of \(rMean.count) channels need as many means and variances, got \(mean.count) and \(variance.count).")
        let m = Double(count)
        let rm = arena.parameters + rMean.offset, rv = arena.parameters + rVar.offset
        for k in 0 ..< rMean.count {
            let unbiased = count > 1 ? variance[k] * m / (m - 1) : variance[k]
            rm[k] = Float((1 - momentum) * Double(rm[k]) + momentum * mean[k])
            rv[k] = Float((1 - momentum) * Double(rv[k]) + momentum * unbiased)
        }
    }

    /// Backward's two per-channel sums over a batch's output gradient: `Σ gy` (first `C`), then
    /// `Σ gy · x̂` (next `C`), with x̂ the normalized input of the last forward; before any sum
    /// across replicas.
    ///
    /// - Parameter gradOutput: the gradient of the last forward's output.
    public func backwardSums(of gradOutput: Tensor) -> [Double] {
        var sums = [Double](repeating: 0, count: 2 * gradOutput.shape[1])
        sums.withUnsafeMutableBufferPointer { backwardSums(of: gradOutput, into: $0) }
        return sums
    }

    /// Writes `backwardSums(of:)` into `sums` (`2·C` values).
    public func backwardSums(of gradOutput: Tensor, into sums: UnsafeMutableBufferPointer<Double>) {
        precondition(
            gradOutput.shape == normalized.shape,
            "BatchNorm2D.backward expects a gradient of shape \(normalized.shape), got \(gradOutput.shape).")
        let c = gradOutput.shape[1], n = gradOutput.batchSize
        let spatial = gradOutput.shape.dropFirst(2).reduce(1, *)
        sums.update(repeating: 0)
        gradOutput.storage.withUnsafeBufferPointer { gy in
            normalized.storage.withUnsafeBufferPointer { xh in
                for i in 0 ..< n {
                    for k in 0 ..< c {
                        let base = (i * c + k) * spatial
                        var s = 0.0, sx = 0.0
                        for j in base ..< base + spatial {
                            s += Double(gy[j])
                            sx += Double(gy[j]) * Double(xh[j])
                        }
                        sums[k] += s
                        sums[c + k] += sx
                    }
                }
            }
        }
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        guard let gamma = gammaSlot, let beta = betaSlot, !inverseStd.isEmpty else {
            preconditionFailure("BatchNorm2D.backward called before forward.")
        }
        precondition(
            gradOutput.shape == normalized.shape,
            "BatchNorm2D.backward expects a gradient of shape \(normalized.shape), got \(gradOutput.shape).")
        let c = gamma.count, n = gradOutput.batchSize
        let spatial = gradOutput.shape.dropFirst(2).reduce(1, *)
        // sums[k] = Σ gy, sums[c + k] = Σ gy · x̂ over the channel's elements.
        BatchNorm2D.reserve(&sums, 2 * c)
        var sums = self.sums
        self.sums = []
        defer { self.sums = sums }
        sums.withUnsafeMutableBufferPointer { backwardSums(of: gradOutput, into: $0) }
        // The parameter gradients stay local: the data-parallel reduction sums them over ranks.
        let gGamma = arena.gradients + gamma.offset, gBeta = arena.gradients + beta.offset
        for k in 0 ..< c {
            gBeta[k] += Float(sums[k])
            gGamma[k] += Float(sums[c + k])
        }
        // Every element is written below, so the old contents do not matter.
        gradInput.resize(to: gradOutput.shape)
        let g = arena.parameters + gamma.offset
        let normalized = self.normalized, inverseStd = self.inverseStd, reducer = self.reducer
        if usedBatchStatistics {
            if let reducer { sums.withUnsafeMutableBufferPointer { reducer.sumAcrossReplicas($0) } }
            // gx = gamma · invstd · (gy − mean(gy) − x̂ · mean(gy · x̂)), means over the (global) batch.
            let m = Double(count)
            gradOutput.storage.withUnsafeBufferPointer { gy in
                normalized.storage.withUnsafeBufferPointer { xh in
                    gradInput.storage.withUnsafeMutableBufferPointer { gx in
                        for i in 0 ..< n {
                            for k in 0 ..< c {
                                let base = (i * c + k) * spatial
                                let scale = Float(Double(g[k]) * inverseStd[k])
                                let meanGy = Float(sums[k] / m), meanGyXh = Float(sums[c + k] / m)
                                for j in base ..< base + spatial { gx[j] = scale * (gy[j] - meanGy - xh[j] * meanGyXh) }
                            }
                        }
                    }
                }
            }
        } else {
            // Inference statistics are constants: the layer is a per-channel affine map.
            gradOutput.storage.withUnsafeBufferPointer { gy in
                gradInput.storage.withUnsafeMutableBufferPointer { gx in
                    for i in 0 ..< n {
                        for k in 0 ..< c {
                            let base = (i * c + k) * spatial
                            let scale = Float(Double(g[k]) * inverseStd[k])
                            for j in base ..< base + spatial { gx[j] = scale * gy[j] }
                        }
                    }
                }
            }
        }
        return gradInput
    }
}
