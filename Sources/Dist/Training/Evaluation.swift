import NN

/// Loss and correct-prediction counts over an evaluation set, as sums, so ranks can add them and
/// divide once.
public struct EvaluationTotals: Equatable, Codable {
    /// The loss summed over the samples.
    public var lossSum = 0.0
    /// Samples whose highest logit is at their label (binary models: `logit > 0` equals the label).
    public var correct = 0
    /// Samples whose label is among the `topK` highest logits (0 when `topK` is nil).
    public var topKCorrect = 0
    /// The samples counted.
    public var count = 0

    public init(lossSum: Double = 0, correct: Int = 0, topKCorrect: Int = 0, count: Int = 0) {
        self.lossSum = lossSum
        self.correct = correct
        self.topKCorrect = topKCorrect
        self.count = count
    }

    public static func += (a: inout EvaluationTotals, b: EvaluationTotals) {
        a.lossSum += b.lossSum
        a.correct += b.correct
        a.topKCorrect += b.topKCorrect
        a.count += b.count
    }

    /// Sums the totals over all ranks (a collective). Counts travel as Doubles, exact below 2^53.
    ///
    /// - Throws: `DistError.mpi` when the allreduce fails.
    public func reduced(across communicator: Communicator) throws -> EvaluationTotals {
        var v = [lossSum, Double(correct), Double(topKCorrect), Double(count)]
        try communicator.allreduce(&v, op: .sum)
        return EvaluationTotals(lossSum: v[0], correct: Int(v[1]), topKCorrect: Int(v[2]), count: Int(v[3]))
    }

    /// Sums the totals over all ranks and counts the ranks that vote to stop, in the same one
    /// allreduce (a collective).
    ///
    /// - Parameters:
    ///   - communicator: the ranks.
    ///   - stopVote: whether this rank asks to stop.
    /// - Returns: the summed totals and the number of ranks that voted to stop.
    /// - Throws: `DistError.mpi` when the allreduce fails.
    public func reduced(across communicator: Communicator, stopVote: Bool) throws -> (totals: EvaluationTotals, stopVotes: Int) {
        // Once per training step: the values live on the stack, so the step allocates nothing.
        try withUnsafeTemporaryAllocation(of: Double.self, capacity: 5) { v in
            (v[0], v[1], v[2], v[3], v[4]) = (lossSum, Double(correct), Double(topKCorrect), Double(count), stopVote ? 1 : 0)
            try communicator.allreduce(v, op: .sum)
            return (EvaluationTotals(lossSum: v[0], correct: Int(v[1]), topKCorrect: Int(v[2]), count: Int(v[3])), Int(v[4]))
        }
    }

    /// The mean loss per sample (0 for no samples).
    public var meanLoss: Double { count > 0 ? lossSum / Double(count) : 0 }
    /// The top-1 accuracy (0 for no samples).
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
    /// The top-k accuracy (0 for no samples).
    public var topKAccuracy: Double { count > 0 ? Double(topKCorrect) / Double(count) : 0 }
}

/// Evaluating a trained model on a dataset split across ranks.
///
/// Rank r takes `DistributedSampler.evaluationShard` of the dataset (contiguous; the shards of all
/// ranks cover every sample exactly once, with no padding), runs it forward in inference mode in
/// chunks of `batchSize`, and the sums are reduced over ranks, so P ranks count what one rank
/// counts.
public enum Evaluation {
    /// Evaluates `model` on this rank's shard of `dataset` and sums the totals over all ranks.
    ///
    /// A collective: every rank calls it with the same dataset size and `topK`.
    /// - Parameters:
    ///   - model: this rank's replica (its input shape must equal the dataset's sample shape).
    ///   - loss: the loss to sum (softmax cross-entropy, or sigmoid binary cross-entropy for a
    ///     model with one output).
    ///   - dataset: the evaluation set, the same on every rank.
    ///   - topK: also count labels among the k highest logits (nil: skip).
    ///   - batchSize: samples per forward pass on this rank (> 0); results do not depend on it
    ///     beyond float32 rounding of the loss.
    ///   - communicator: the ranks.
    ///   - preprocessing: a deterministic transformation of each sample (the training's
    ///     normalization); `.none` for plain [0, 1] pixels.
    /// - Returns: the totals over all ranks (the same on every rank).
    /// - Throws: `DistError.mpi` when the reduction fails.
    public static func run(
        model: inout Sequential, loss: Loss, dataset: Dataset, topK: Int?, batchSize: Int,
        communicator: Communicator, preprocessing: Augmentation = .none
    ) throws -> EvaluationTotals {
        let shard = DistributedSampler.evaluationShard(count: dataset.count, rank: communicator.rank, size: communicator.size)
        return try local(
            model: &model, loss: loss, dataset: dataset, indices: shard, topK: topK, batchSize: batchSize,
            preprocessing: preprocessing
        )
        .reduced(across: communicator)
    }

    /// The totals of the samples `indices`, on this rank alone (no communication).
    ///
    /// - Parameters:
    ///   - model: the replica.
    ///   - loss: the loss to sum.
    ///   - dataset: the samples.
    ///   - indices: which samples, in chunks of `batchSize`.
    ///   - topK: also count labels among the k highest logits (nil: skip).
    ///   - batchSize: samples per forward pass (> 0).
    ///   - preprocessing: a deterministic transformation of each sample, or `.none`.
    /// - Returns: the sums over `indices`.
    public static func local(
        model: inout Sequential, loss: Loss, dataset: Dataset, indices: Range<Int>, topK: Int?,
        batchSize: Int, preprocessing: Augmentation = .none
    ) -> EvaluationTotals {
        precondition(batchSize > 0, "Evaluation needs a positive batch size, got \(batchSize).")
        precondition(!preprocessing.isRandom, "Evaluation takes a deterministic preprocessing (no flips, shifts, zooms or shears).")
        precondition(
            model.inputShape == dataset.sampleShape,
            "The model takes samples of shape \(model.inputShape), the dataset has \(dataset.sampleShape).")
        // Top-k ranks classes; a one-output (binary) model has none to rank.
        let ranksClasses = model.outputShape != [1]
        var totals = EvaluationTotals()
        var batch = Tensor(shape: [0])
        var labels: [Int32] = []
        var start = indices.lowerBound
        while start < indices.upperBound {
            let end = min(start + batchSize, indices.upperBound)
            BatchLoader.makeBatch(
                into: &batch, labels: &labels, dataset: dataset, indices: Array(start ..< end), keys: [],
                augmentation: preprocessing)
            let logits = model.forward(batch, context: ForwardContext(training: false))
            totals.lossSum += loss.evaluate(logits: logits, labels: labels).sum
            totals.correct += Metrics.correctPredictions(logits: logits, labels: labels)
            if let k = topK, ranksClasses {
                totals.topKCorrect += Metrics.topKCorrectCount(logits: logits, labels: labels, k: k)
            }
            totals.count += end - start
            start = end
        }
        return totals
    }
}
