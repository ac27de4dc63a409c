import NN

/// Everything about a data-parallel run that is not the model, the optimizer or the data.
public struct TrainingConfiguration {
    /// Passes over the training set (> 0).
    public var epochs: Int = 1
    /// The global batch B, summed over all ranks (≥ the number of ranks).
    public var globalBatchSize: Int = 64
    /// Seeds parameters (on rank 0), the epoch permutations and the per-sample keys.
    public var seed: UInt64 = 1
    /// Shuffle the training set every epoch.
    public var shuffle = true
    /// Drop or split the last short batch of an epoch.
    public var lastBatch: LastBatchPolicy = .drop
    /// Fast or bitwise-reproducible gradient summation.
    public var reduction: ReductionMode = .fast
    /// Floats per gradient bucket.
    public var bucketCapacity = 1 << 20
    /// The wire format of the fast reduction (fp16 halves the bytes; needs `reduction` fast).
    public var compression: GradientCompression = .none
    /// Samples per forward pass when evaluating (per rank).
    public var evaluationBatchSize = 256
    /// Report the global loss every this many steps (0: only per epoch). Costs one small allreduce.
    public var logInterval = 50
    /// Stop each epoch after this many steps (nil: the whole epoch); for smoke runs.
    public var maxStepsPerEpoch: Int?
    /// Other options every rank must agree on (verified with the model), in a fixed order.
    public var verifiedOptions: [(String, String)] = []

    public init() {}

    /// The items replica verification compares, this configuration's own first.
    public var fingerprintOptions: [(String, String)] {
        [("epochs", "\(epochs)"), ("global batch", "\(globalBatchSize)"), ("seed", "\(seed)"),
         ("shuffle", "\(shuffle)"), ("last batch", lastBatch.rawValue), ("reduction", reduction.rawValue),
         ("max steps per epoch", maxStepsPerEpoch.map(String.init) ?? "all")] + verifiedOptions
    }

    /// Checks the values against the number of ranks and the training set size.
    ///
    /// - Throws: `DistError.invalidConfiguration` naming the option.
    public func validate(ranks: Int, trainingSamples: Int) throws {
        guard epochs > 0 else { throw DistError.invalidConfiguration(option: "epochs", reason: "must be positive, got \(epochs)") }
        guard globalBatchSize >= ranks else {
            throw DistError.invalidConfiguration(option: "global batch size",
                                                 reason: "\(globalBatchSize) is smaller than the \(ranks) ranks; hint: every rank needs at least one sample per step")
        }
        guard globalBatchSize <= trainingSamples else {
            throw DistError.invalidConfiguration(option: "global batch size",
                                                 reason: "\(globalBatchSize) is larger than the \(trainingSamples) training samples")
        }
        guard evaluationBatchSize > 0 else {
            throw DistError.invalidConfiguration(option: "evaluation batch size", reason: "must be positive, got \(evaluationBatchSize)")
        }
        guard bucketCapacity > 0 else {
            throw DistError.invalidConfiguration(option: "bucket capacity", reason: "must be positive, got \(bucketCapacity)")
        }
        if let m = maxStepsPerEpoch, m <= 0 {
            throw DistError.invalidConfiguration(option: "max steps per epoch", reason: "must be positive, got \(m)")
        }
    }

    /// Checks the options against the model's layers (by their summaries).
    ///
    /// Batch statistics (`batchnorm…`) change when samples run one at a time, as deterministic
    /// mode does; synchronized layers (`…,sync…`) make forward a collective, so no rank may have
    /// an empty slice, which a split last batch smaller than the ranks would give.
    /// - Throws: `DistError.invalidConfiguration` naming the option.
    public func validate(layerSummaries: [String], ranks: Int, trainingSamples: Int) throws {
        let batchStatistics = layerSummaries.first { $0.hasPrefix("batchnorm") }
        if let layer = batchStatistics, reduction == .deterministic {
            throw DistError.invalidConfiguration(option: "reduction",
                                                 reason: "deterministic mode runs samples one at a time, which changes the batch statistics of \(layer); hint: use the fast reduction")
        }
        let remainder = trainingSamples % globalBatchSize
        if let layer = layerSummaries.first(where: { $0.contains(",sync") }), lastBatch == .split, remainder > 0, remainder < ranks {
            throw DistError.invalidConfiguration(option: "last batch",
                                                 reason: "split gives a last batch of \(remainder) samples for \(ranks) ranks, and \(layer) needs every rank in forward; hint: drop the last batch or change the batch size")
        }
    }
}

/// One epoch's figures, reduced over all ranks.
public struct EpochMetrics: Codable, Equatable {
    public var epoch: Int
    /// Mean training loss over the epoch's samples.
    public var trainLoss: Double
    /// Fraction of training samples classified correctly (during training, before each step).
    public var trainAccuracy: Double
    public var trainSamples: Int
    /// Mean test loss, when a test set was given.
    public var testLoss: Double?
    public var testAccuracy: Double?
    public var testSamples: Int?
    /// Wall-clock seconds of the epoch (training and evaluation) on rank 0.
    public var seconds: Double
}

/// Totals of loss, correct predictions and samples (summed over a rank's batches, then ranks).
public struct BatchTotals: Equatable {
    public var lossSum = 0.0
    public var correct = 0
    public var count = 0

    public init(lossSum: Double = 0, correct: Int = 0, count: Int = 0) {
        self.lossSum = lossSum
        self.correct = correct
        self.count = count
    }

    public static func += (a: inout BatchTotals, b: BatchTotals) {
        a.lossSum += b.lossSum
        a.correct += b.correct
        a.count += b.count
    }

    /// Sums the totals over all ranks (a collective).
    public func reduced(across communicator: Communicator) throws -> BatchTotals {
        var v = [lossSum, Double(correct), Double(count)]
        try communicator.allreduce(&v, op: .sum)
        return BatchTotals(lossSum: v[0], correct: Int(v[1]), count: Int(v[2]))
    }

    public var meanLoss: Double { count > 0 ? lossSum / Double(count) : 0 }
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
}

/// What the trainer reports as it goes; the launcher decides what to print (on rank 0).
public enum TrainingEvent {
    /// Every rank built the same replica and rank 0's state was broadcast.
    case ready(parameters: Int, fingerprint: UInt64, ranks: Int, stepsPerEpoch: Int)
    /// The global mean loss and accuracy of the last `logInterval` steps.
    case progress(epoch: Int, step: Int, steps: Int, loss: Double, accuracy: Double)
    /// An epoch ended.
    case epoch(EpochMetrics)
}
