import Foundation
import NN

/// Options of the gradient check.
public struct GradientCheckConfiguration {
    /// The global batch B (≥ the number of ranks).
    public var globalBatchSize = 24
    /// Optimizer steps K taken both ways before the parameters are compared.
    public var steps = 3
    /// Seeds the parameters, the batch order and the per-sample keys.
    public var seed: UInt64 = 1
    /// The largest error allowed, relative to each tensor's largest magnitude.
    ///
    /// The default, 1e-4, is float32 summation-order noise with margin: a rank sums its slice and
    /// MPI sums the ranks, while the single replica sums the whole batch in one order. Each order
    /// rounds differently, by up to about n·u·Σ|terms| for n terms (u = 6e-8 in float32); with
    /// batches of tens to hundreds and some cancellation that stays around 1e-6–1e-5 of the
    /// tensor's scale, and K small steps add little. Real bugs (a missed 1/B, a wrong slice, a
    /// rank skipping a sample) give errors of order 1.
    public var tolerance = 1e-4
    /// Fast or deterministic reduction on the distributed side.
    public var reduction: ReductionMode = .fast
    /// Deterministic mode: samples per chunk, on both sides (the default 3 cuts the default
    /// batch of 24 into 8 chunks, so P = 1 … 8 all compute some).
    public var chunkSize = 3
    /// Floats per gradient bucket on the distributed side (small values test overlapped buckets).
    public var bucketCapacity = 1 << 20
    /// The wire format on the distributed side (fp16 needs a looser tolerance: see `tolerance(for:)`).
    public var compression: GradientCompression = .none
    /// Dense weights with a bucket of their own travel as their factors (fast mode).
    public var denseFactors = false
    /// Threads each distributed rank computes its slice with (the single replica uses one).
    public var threads = 1

    /// The distributed side's training options.
    public var training: TrainingConfiguration {
        var options = TrainingConfiguration()
        options.globalBatchSize = globalBatchSize
        options.seed = seed
        options.reduction = reduction
        options.chunkSize = chunkSize
        options.bucketCapacity = bucketCapacity
        options.compression = compression
        options.denseFactors = denseFactors
        options.threads = threads
        options.verifiedOptions = [("steps", "\(steps)"), ("tolerance", "\(tolerance)"), ("compression", compression.rawValue)]
        return options
    }

    /// The default tolerance for a wire format.
    ///
    /// Float32: 1e-4 (summation order, above). Float16: 1e-2. Each rank's gradient sum is rounded
    /// to half (11-bit significand: relative error ≤ 2^-11 ≈ 4.9e-4 of the element), and the
    /// reduction rounds again after each of the P − 1 additions, relative to the partial sums,
    /// which can exceed the result when ranks' contributions cancel. With P ≤ 8 that is at most
    /// about 8 · 4.9e-4 ≈ 4e-3 of a tensor's largest magnitude; 1e-2 leaves margin for the K steps
    /// of momentum carrying those errors into the parameters, while bugs still give errors of
    /// order 1.
    public static func tolerance(for compression: GradientCompression) -> Double {
        compression == .fp16 ? 1e-2 : 1e-4
    }

    public init() {}
}

/// The errors of one parameter tensor, distributed against single-replica.
public struct GradientCheckRow: Equatable {
    /// The slot name, e.g. `0.conv2d.weight`.
    public var name: String
    public var shape: [Int]
    /// max |g_dist − g_ref| over the tensor and the K steps.
    public var gradientAbsolute: Double
    /// `gradientAbsolute` divided by the tensor's largest |g_ref|.
    public var gradientRelative: Double
    /// max |p_dist − p_ref| after K steps.
    public var parameterAbsolute: Double
    /// `parameterAbsolute` divided by the tensor's largest |p_ref|.
    public var parameterRelative: Double
}

/// The outcome of a gradient check; `rows` are filled on rank 0 only.
public struct GradientCheckReport {
    public var ranks: Int
    public var configuration: GradientCheckConfiguration
    public var modelName: String
    public var rows: [GradientCheckRow]
    /// Whether every figure is within tolerance (the same on every rank).
    public var passed: Bool

    /// The worst relative figure and where it is.
    public var worst: (value: Double, description: String) {
        var worst = (value: 0.0, description: "none")
        for row in rows {
            if !(row.gradientRelative <= worst.value) { worst = (row.gradientRelative, "\(row.name) gradient") }
            if !(row.parameterRelative <= worst.value) { worst = (row.parameterRelative, "\(row.name) parameters") }
        }
        return worst
    }

    /// A plain-text table, one line per parameter tensor.
    public var table: String {
        let c = configuration
        func e(_ x: Double) -> String { String(format: "%.2e", x) }
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        let nameWidth = max(20, (rows.map(\.name.count).max() ?? 0) + 2)
        var lines = [
            "gradient check: model \(modelName), \(ranks) rank\(ranks == 1 ? "" : "s"), global batch \(c.globalBatchSize), \(c.steps) step\(c.steps == 1 ? "" : "s"), seed \(c.seed), reduction \(c.reduction.rawValue)\(c.reduction == .deterministic ? " (chunks of \(c.chunkSize))" : "")\(c.compression == .fp16 ? ", fp16 wire" : "")\(c.denseFactors ? ", dense factors" : "")",
            "errors of \(ranks)-rank data-parallel vs one replica on the whole batch; relative = abs / the tensor's max |value|; tolerance \(e(c.tolerance)) relative",
            pad("tensor", nameWidth) + pad("shape", 16) + pad("grad abs", 11) + pad("grad rel", 11) + pad("param abs", 11) + "param rel"
        ]
        for r in rows {
            lines.append(
                pad(r.name, nameWidth) + pad("\(r.shape)", 16) + pad(e(r.gradientAbsolute), 11) + pad(e(r.gradientRelative), 11)
                    + pad(e(r.parameterAbsolute), 11) + e(r.parameterRelative))
        }
        let w = worst
        lines.append("\(passed ? "ok" : "FAILED"): worst relative error \(e(w.value)) (\(w.description)), tolerance \(e(c.tolerance))")
        return lines.joined(separator: "\n")
    }
}

/// Proves that P ranks compute what one rank computes on the same global batch.
///
/// Every rank trains its slice as in real training (shard, backward, allreduce, 1/B); rank 0 also
/// keeps a second replica with the same initial parameters and optimizer state and trains it alone
/// on each whole global batch. Gradients are compared at every step and parameters after K steps.
/// Per-sample randomness (dropout) comes from per-sample keys, so both ways draw the same masks.
public enum GradientCheck {
    /// Runs the check (a collective).
    ///
    /// - Parameters:
    ///   - spec: the model.
    ///   - dataset: the samples (at least one global batch).
    ///   - loss: the loss.
    ///   - makeOptimizer: makes a fresh optimizer; called once per replica.
    ///   - communicator: the ranks.
    ///   - configuration: batch, steps, seed, tolerance.
    /// - Returns: the report; `passed` agrees on every rank.
    /// - Throws: `DistError` for bad options, mismatched replicas or MPI failures.
    public static func run(
        spec: ModelSpec, dataset: Dataset, loss: Loss, makeOptimizer: () throws -> Optimizer,
        communicator: Communicator, configuration c: GradientCheckConfiguration
    ) throws -> GradientCheckReport {
        let options = c.training
        let distributed = try DataParallelTrainer(
            spec: spec, optimizer: makeOptimizer(), loss: loss,
            communicator: communicator, configuration: options)
        try distributed.synchronize(dataset: dataset)
        try options.validate(ranks: communicator.size, trainingSamples: dataset.count)
        try options.validate(layers: distributed.model.layers, ranks: communicator.size, trainingSamples: dataset.count)
        guard c.steps > 0 else { throw DistError.invalidConfiguration(option: "steps", reason: "must be positive, got \(c.steps)") }
        guard c.tolerance >= 0 else { throw DistError.invalidConfiguration(option: "tolerance", reason: "must be non-negative, got \(c.tolerance)") }

        // Rank 0's second replica starts from the broadcast state, on a communicator of its own.
        var reference: DataParallelTrainer?
        if communicator.isRoot {
            var alone = options
            alone.threads = 1
            let single = try DataParallelTrainer(
                spec: spec, optimizer: makeOptimizer(), loss: loss,
                communicator: InProcessCommunicator(), configuration: alone)
            single.model.arena.copyParameters(from: distributed.model.arena)
            single.optimizer.state = distributed.optimizer.state
            reference = single
        }

        let slots = distributed.model.arena.slots
        var gradientErrors = [(absolute: Double, relative: Double)](repeating: (0, 0), count: slots.count)
        let sampler = DistributedSampler(datasetCount: dataset.count, globalBatchSize: c.globalBatchSize, seed: c.seed)
        for k in 0 ..< c.steps {
            let epoch = k / sampler.stepsPerEpoch, step = k % sampler.stepsPerEpoch
            let order = sampler.permutation(epoch: epoch)
            let batch = sampler.globalBatch(step: step, order: order)
            _ = try distributed.computeGradients(globalBatch: batch, epoch: epoch, dataset: dataset)
            try distributed.reduceGradients(globalBatchSize: batch.count)
            if let reference {
                _ = try reference.computeGradients(globalBatch: batch, epoch: epoch, dataset: dataset)
                try reference.reduceGradients(globalBatchSize: batch.count)
                for (i, slot) in slots.enumerated() {
                    let e = relativeError(distributed.model.arena.gradients + slot.offset, reference.model.arena.gradients + slot.offset, slot.count)
                    gradientErrors[i] = (max(gradientErrors[i].absolute, e.absolute), max(gradientErrors[i].relative, e.relative))
                }
                try reference.applyUpdate()
            }
            try distributed.applyUpdate()
        }

        var rows: [GradientCheckRow] = []
        if let reference {
            rows = slots.enumerated().map { i, slot in
                let p = relativeError(distributed.model.arena.parameters + slot.offset, reference.model.arena.parameters + slot.offset, slot.count)
                return GradientCheckRow(
                    name: slot.name, shape: slot.shape, gradientAbsolute: gradientErrors[i].absolute,
                    gradientRelative: gradientErrors[i].relative,
                    parameterAbsolute: p.absolute, parameterRelative: p.relative)
            }
        }
        var report = GradientCheckReport(ranks: communicator.size, configuration: c, modelName: spec.name, rows: rows, passed: true)
        var verdict = [report.worst.value <= c.tolerance ? 1.0 : 0.0]
        try communicator.broadcast(&verdict, from: 0)
        report.passed = verdict[0] == 1
        return report
    }

    /// max |a − b| and that divided by max |b| over `count` elements.
    static func relativeError(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> (absolute: Double, relative: Double) {
        var worst = 0.0, scale = 0.0
        for i in 0 ..< count {
            let d = abs(Double(a[i]) - Double(b[i]))
            worst = d.isNaN ? .infinity : Swift.max(worst, d)
            scale = Swift.max(scale, abs(Double(b[i])))
        }
        return (worst, worst == 0 ? 0 : worst / Swift.max(scale, .leastNormalMagnitude))
    }
}
