import Foundation
import NN

/// One parameter tensor's rounding errors: the mean gradient of each way of summing, against a
/// float64 sum of the same per-sample float32 gradients.
public struct RoundingCheckRow: Equatable {
    /// The slot name, e.g. `7.dense.weight`.
    public var name: String
    /// Per way (`RoundingCheckReport.ways`): max |g − ref| / max |ref| over the tensor.
    public var maxRelative: [Double]
    /// Per way: ‖g − ref‖₂ / ‖ref‖₂ over the tensor.
    public var normRelative: [Double]
}

/// The outcome of a rounding check.
public struct RoundingCheckReport {
    public var modelName: String
    public var globalBatchSize: Int
    public var chunkSize: Int
    /// The ways of summing compared, in column order.
    public var ways: [String]
    public var rows: [RoundingCheckRow]

    /// A plain-text table: one line per tensor, two columns per way.
    public var table: String {
        func e(_ x: Double) -> String { String(format: "%.2e", x) }
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        let nameWidth = max(20, (rows.map(\.name.count).max() ?? 0) + 2)
        var lines = [
            "rounding check: model \(modelName), global batch \(globalBatchSize), deterministic chunks of \(chunkSize)",
            "mean gradient vs a float64 sum of the same per-sample float32 gradients; per way: max |err| / max |ref|, ‖err‖ / ‖ref‖",
            pad("tensor", nameWidth) + ways.map { pad($0, 26) }.joined()
        ]
        for r in rows {
            lines.append(pad(r.name, nameWidth) + zip(r.maxRelative, r.normRelative).map { pad(e($0) + " " + e($1), 26) }.joined())
        }
        return lines.joined(separator: "\n")
    }
}

/// Measures the rounding of gradient sums: the fast mode's float32 sums (each rank's slice summed
/// by the kernels, then the ranks' sums added in float32 as an allreduce would) and the
/// deterministic mode's exact sums of chunk gradients, each against the float64 sum of the
/// per-sample gradients (computed one sample at a time in float32, then added in Double). Runs on
/// one process; models with batch statistics are refused (one sample alone has other statistics).
public enum RoundingCheck {
    /// Runs the check on the first global batch of epoch 0.
    ///
    /// - Parameters:
    ///   - spec: the model (no batch norm).
    ///   - dataset: the samples (at least `globalBatchSize`).
    ///   - globalBatchSize: B.
    ///   - ranks: the fast mode's rank counts to emulate, e.g. [1, 2, 8].
    ///   - chunkSize: the deterministic mode's chunk size.
    ///   - seed: parameters, order and per-sample keys.
    /// - Throws: `DistError.invalidConfiguration` for a model with batch statistics or a batch
    ///   larger than the data.
    public static func run(
        spec: ModelSpec, dataset: Dataset, globalBatchSize: Int, ranks: [Int], chunkSize: Int,
        seed: UInt64
    ) throws -> RoundingCheckReport {
        guard !spec.layers.contains(where: { if case .batchNorm2d = $0 { return true } else { return false } }) else {
            throw DistError.invalidConfiguration(
                option: "model", reason: "\(spec.name) has batch statistics, which differ for one sample alone; hint: use fmnist-cnn, lenet5, mlp or tiny")
        }
        guard globalBatchSize > 0, globalBatchSize <= dataset.count else {
            throw DistError.invalidConfiguration(option: "batch", reason: "\(globalBatchSize) must be in 1...\(dataset.count)")
        }
        func trainer(_ mode: ReductionMode) throws -> DataParallelTrainer {
            var options = TrainingConfiguration()
            options.globalBatchSize = globalBatchSize
            options.seed = seed
            options.reduction = mode
            options.chunkSize = chunkSize
            return try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 0), loss: SoftmaxCrossEntropy(),
                communicator: InProcessCommunicator(), configuration: options)
        }
        let fast = try trainer(.fast), exact = try trainer(.deterministic)
        let arena = fast.model.arena, n = arena.count
        let sampler = DistributedSampler(datasetCount: dataset.count, globalBatchSize: globalBatchSize, seed: seed)
        let batch = Array(sampler.globalBatch(step: 0, order: sampler.permutation(epoch: 0)))
        let b = Double(batch.count)

        var reference = [Double](repeating: 0, count: n)
        for index in batch {
            _ = try fast.computeGradients(indices: [index], epoch: 0, dataset: dataset)
            for i in 0 ..< n { reference[i] += Double(arena.gradients[i]) }
        }
        for i in 0 ..< n { reference[i] /= b }

        var means: [[Float]] = []
        for p in ranks {
            var total = [Float](repeating: 0, count: n)
            for r in 0 ..< p {
                let slice = DistributedSampler.slice(count: batch.count, rank: r, size: p)
                _ = try fast.computeGradients(indices: batch[slice], epoch: 0, dataset: dataset)
                for i in 0 ..< n { total[i] += arena.gradients[i] }
            }
            let scale = Float(1 / b)
            means.append(total.map { $0 * scale })
        }
        _ = try exact.computeGradients(globalBatch: batch, epoch: 0, dataset: dataset)
        try exact.reduceGradients(globalBatchSize: batch.count)
        means.append(exact.model.arena.gradientSnapshot())

        let rows = arena.slots.filter(\.trainable).map { slot -> RoundingCheckRow in
            var row = RoundingCheckRow(name: slot.name, maxRelative: [], normRelative: [])
            let ref = reference[slot.range]
            let scale = ref.map(abs).max() ?? 0, norm = ref.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for g in means {
                var worst = 0.0, squares = 0.0
                for i in slot.range {
                    let d = abs(Double(g[i]) - reference[i])
                    worst = max(worst, d)
                    squares += d * d
                }
                row.maxRelative.append(scale > 0 ? worst / scale : worst)
                row.normRelative.append(norm > 0 ? squares.squareRoot() / norm : squares.squareRoot())
            }
            return row
        }
        return RoundingCheckReport(
            modelName: spec.name, globalBatchSize: batch.count, chunkSize: chunkSize,
            ways: ranks.map { "fast \($0) rank\($0 == 1 ? "" : "s")" } + ["deterministic"], rows: rows)
    }
}
