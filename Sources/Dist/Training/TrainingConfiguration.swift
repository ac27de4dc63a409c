import NN

/// Everything about a data-parallel run that is not the model, the optimizer or the data.
public struct TrainingConfiguration {
    /// Passes over the training set (> 0).
    public var epochs: Int = 1
    /// The global batch B of one forward pass (one micro-batch), summed over all ranks (≥ the
    /// number of ranks). An optimizer step sees `accumulationSteps · B` samples.
    public var globalBatchSize: Int = 64
    /// Micro-batches per optimizer step (≥ 1): their gradients add up in the arena and are reduced
    /// once, so the step is the exact mean over `accumulationSteps · B` samples.
    public var accumulationSteps = 1
    /// Seeds parameters (on rank 0), the epoch permutations and the per-sample keys.
    public var seed: UInt64 = 1
    /// Shuffle the training set every epoch.
    public var shuffle = true
    /// Drop or split the last short batch of an epoch.
    public var lastBatch: LastBatchPolicy = .drop
    /// Fast or bitwise-reproducible gradient summation.
    public var reduction: ReductionMode = .fast
    /// Deterministic mode: samples per chunk, the unit a rank computes with batched kernels and
    /// whose gradient is summed exactly. Chunks do not depend on the number of ranks, so neither do
    /// the results; they do depend on this size (and so do unsynchronized batch statistics, taken
    /// per chunk). A rank takes whole chunks: a global batch of fewer than P chunks leaves ranks idle.
    public var chunkSize = 16
    /// Threads this rank computes its slice with (fast mode, models without batch norm): the slice
    /// is cut into this many contiguous sub-batches, each run forward and backward on its own
    /// thread with its own copy of the layers and its own gradient buffer, and their gradients are
    /// added in sub-batch order. So one rank can use T cores with one replica and one allreduce
    /// participant. Results depend on T only through float32 rounding (the sum's grouping).
    public var threads = 1
    /// Floats per gradient bucket.
    public var bucketCapacity = 1 << 20
    /// The wire format of the fast reduction (fp16 halves the bytes; needs `reduction` fast).
    public var compression: GradientCompression = .none
    /// Fast mode on several ranks: dense weights alone in their buckets travel as their factors
    /// (each sample's output gradient and input) instead of as gradients, and every rank forms
    /// their summed gradient itself (`FactoredWeight`). Fewer bytes, more compute:
    /// for slow links.
    public var denseFactors = false
    /// Samples per forward pass when evaluating (per rank). Every layer keeps its output for the
    /// batch it last saw, so this bounds the activations' memory: 64 keeps fmnist-cnn's to a
    /// quarter of what 256 takes, at the same speed (convolutions run a sample at a time).
    public var evaluationBatchSize = 64
    /// Report progress every this many optimizer steps (0: only per epoch).
    public var logInterval = 50
    /// Stop each epoch after this many optimizer steps (nil: the whole epoch); for smoke runs.
    public var maxStepsPerEpoch: Int?
    /// Stop the whole run after this many optimizer steps in total (nil: run every epoch). A
    /// checkpoint is written at the stop when checkpoints are on.
    public var stopAfterSteps: Int?
    /// Asked once per step: whether this rank wants the run to stop (a signal arrived). The ranks
    /// vote in the step's loss allreduce, so all stop after the same step, with a checkpoint.
    public var stopRequested: (() -> Bool)?
    /// The learning rate of each step (nil: leave the optimizer's rate as it is).
    public var schedule: LearningRateSchedule?
    /// How training samples are transformed; evaluation applies only its rescale and normalization.
    public var augmentation: Augmentation = .none
    /// The validation figure that picks `best.safetensors` and drives early stopping.
    public var monitor: MonitoredMetric = .validationLoss
    /// Stop when the monitored figure has not improved for this many epochs (nil: never).
    public var earlyStoppingPatience: Int?
    /// The smallest change of the monitored figure that counts as an improvement (≥ 0).
    public var earlyStoppingMinDelta = 0.0
    /// Where and when rank 0 writes checkpoints (nil: never).
    public var checkpoints: CheckpointPolicy?
    /// Options recorded in every checkpoint's `options` JSON (the launcher's view of the run).
    public var recordedOptions: [String: String] = [:]
    /// Other options every rank must agree on (verified with the model), in a fixed order.
    public var verifiedOptions: [(String, String)] = []

    public init() {}

    /// The items replica verification compares, this configuration's own first.
    public var fingerprintOptions: [(String, String)] {
        [
            ("epochs", "\(epochs)"), ("global batch", "\(globalBatchSize)"), ("accumulate", "\(accumulationSteps)"),
            ("seed", "\(seed)"), ("shuffle", "\(shuffle)"), ("last batch", lastBatch.rawValue), ("reduction", reduction.rawValue),
            ("chunk size", "\(chunkSize)"),
            ("max steps per epoch", maxStepsPerEpoch.map(String.init) ?? "all")
        ] + verifiedOptions
            + [("schedule", schedule.map(\.description) ?? "none")]
    }

    /// Optimizer steps per epoch for a training set of `trainingSamples` (before `maxStepsPerEpoch`):
    /// the sampler's micro-batches grouped by `accumulationSteps` (a short group at the end is kept
    /// with `split`, dropped with `drop`).
    public func optimizerStepsPerEpoch(trainingSamples: Int) -> Int {
        let sampler = DistributedSampler(
            datasetCount: trainingSamples, globalBatchSize: globalBatchSize, seed: seed,
            shuffle: shuffle, lastBatch: lastBatch)
        let micro = sampler.stepsPerEpoch, n = max(accumulationSteps, 1)
        let steps = lastBatch == .split ? (micro + n - 1) / n : micro / n
        return min(steps, maxStepsPerEpoch ?? .max)
    }

    /// Checks the values that do not depend on the ranks or the data, each alone or against
    /// another (a launcher calls it while parsing its command line, before any rank starts).
    ///
    /// - Throws: `DistError.invalidConfiguration` naming the option.
    public func validateOptions() throws {
        func positive(_ value: Int, _ option: String) throws {
            guard value > 0 else { throw DistError.invalidConfiguration(option: option, reason: "must be positive, got \(value)") }
        }
        try positive(epochs, "epochs")
        try positive(globalBatchSize, "global batch size")
        try positive(accumulationSteps, "accumulate")
        try positive(evaluationBatchSize, "evaluation batch size")
        try positive(chunkSize, "chunk size")
        guard (1 ... 256).contains(threads) else {
            throw DistError.invalidConfiguration(option: "threads", reason: "must be 1 to 256, got \(threads)")
        }
        if denseFactors && reduction == .deterministic {
            throw DistError.invalidConfiguration(
                option: "dense-factors",
                reason: "needs --reduction fast; hint: the deterministic reduction gathers dense factors by itself")
        }
        if denseFactors && threads > 1 {
            throw DistError.invalidConfiguration(option: "dense-factors", reason: "cannot run with \(threads) threads a rank yet; hint: drop --threads")
        }
        if denseFactors && accumulationSteps > 1 {
            throw DistError.invalidConfiguration(
                option: "dense-factors",
                reason: "needs one micro-batch a step, got --accumulate \(accumulationSteps); hint: drop --accumulate")
        }
        if compression != .none && reduction == .deterministic {
            throw DistError.invalidConfiguration(
                option: "compression",
                reason: "\(compression) needs --reduction fast; hint: the deterministic reduction sums exactly (its terms travel as float32 or float64)")
        }
        try positive(bucketCapacity, "bucket capacity")
        if let m = maxStepsPerEpoch { try positive(m, "max steps per epoch") }
        if let m = stopAfterSteps { try positive(m, "stop after steps") }
        if let p = earlyStoppingPatience { try positive(p, "early stopping patience") }
        guard earlyStoppingMinDelta >= 0, earlyStoppingMinDelta.isFinite else {
            throw DistError.invalidConfiguration(option: "min delta", reason: "must be a number >= 0, got \(earlyStoppingMinDelta)")
        }
        if let c = checkpoints {
            guard c.everySteps >= 0 else { throw DistError.invalidConfiguration(option: "checkpoint every", reason: "must be 0 or more, got \(c.everySteps)") }
            guard c.keepLast >= 0 else { throw DistError.invalidConfiguration(option: "keep last", reason: "must be 0 or more, got \(c.keepLast)") }
        }
    }

    /// Checks the values (`validateOptions`), then against the number of ranks and the training
    /// set size.
    ///
    /// - Throws: `DistError.invalidConfiguration` naming the option.
    public func validate(ranks: Int, trainingSamples: Int) throws {
        try validateOptions()
        guard globalBatchSize >= ranks else {
            throw DistError.invalidConfiguration(
                option: "global batch size",
                reason: "\(globalBatchSize) is smaller than the \(ranks) ranks; hint: every rank needs at least one sample per step")
        }
        guard globalBatchSize <= trainingSamples else {
            throw DistError.invalidConfiguration(
                option: "global batch size",
                reason: "\(globalBatchSize) is larger than the \(trainingSamples) training samples")
        }
        guard optimizerStepsPerEpoch(trainingSamples: trainingSamples) > 0 else {
            throw DistError.invalidConfiguration(
                option: "accumulate",
                reason:
                    "\(accumulationSteps) micro-batches of \(globalBatchSize) need more than the \(trainingSamples) training samples; hint: lower --accumulate or --batch-size"
            )
        }
    }

    /// Checks the options against the model's layers.
    ///
    /// In fast mode, synchronized layers (`Layer.isSynchronized`) make forward a collective, so no rank may have
    /// an empty slice, which a split last batch smaller than the ranks would give. (Deterministic
    /// mode runs every rank through every layer, with or without chunks.)
    /// - Throws: `DistError.invalidConfiguration` naming the option.
    public func validate(layers: [any Layer], ranks: Int, trainingSamples: Int) throws {
        guard reduction == .fast else { return }
        let remainder = trainingSamples % globalBatchSize
        if let layer = layers.first(where: \.isSynchronized)?.summary, lastBatch == .split, remainder > 0, remainder < ranks {
            throw DistError.invalidConfiguration(
                option: "last batch",
                reason:
                    "split gives a last batch of \(remainder) samples for \(ranks) ranks, and \(layer) needs every rank in forward; hint: drop the last batch or change the batch size"
            )
        }
    }
}

/// The validation figure that picks the best checkpoint and drives early stopping.
public enum MonitoredMetric: String, CaseIterable {
    /// Lower is better.
    case validationLoss = "val_loss"
    /// Higher is better.
    case validationAccuracy = "val_accuracy"

    /// The figure of an epoch (nil without a validation set).
    public func value(of metrics: EpochMetrics) -> Double? {
        self == .validationLoss ? metrics.validationLoss : metrics.validationAccuracy
    }

    /// Whether `value` beats `best` by more than `minDelta`.
    public func improves(_ value: Double, on best: Double?, minDelta: Double) -> Bool {
        guard let best else { return true }
        return self == .validationLoss ? value < best - minDelta : value > best + minDelta
    }
}

/// Where and when rank 0 writes checkpoints.
public struct CheckpointPolicy: Equatable {
    /// The folder (created when missing).
    public var directory: String
    /// Also write one every this many optimizer steps (0: only at epoch ends and the end).
    public var everySteps: Int
    /// Keep only the newest this many `step-*.safetensors` (0: keep all); `best.safetensors` stays.
    public var keepLast: Int

    public init(directory: String, everySteps: Int = 0, keepLast: Int = 0) {
        self.directory = directory
        self.everySteps = everySteps
        self.keepLast = keepLast
    }
}

/// One epoch's figures, reduced over all ranks.
public struct EpochMetrics: Codable, Equatable {
    public var epoch: Int
    /// Optimizer steps taken since the start of the run (after this epoch).
    public var step: Int = 0
    /// Mean training loss over the epoch's samples.
    public var trainLoss: Double
    /// Fraction of training samples classified correctly (during training, before each step).
    public var trainAccuracy: Double
    public var trainSamples: Int
    /// Mean validation loss, when a validation set was given.
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    public var validationSamples: Int?
    /// Test figures: only in the final record of a run.
    public var testLoss: Double?
    public var testAccuracy: Double?
    public var testSamples: Int?
    /// The learning rate of the epoch's last step.
    public var learningRate: Double = 0
    /// Training samples per second over all ranks (training steps only, not evaluation).
    public var samplesPerSecond: Double = 0
    /// Wall-clock seconds of the epoch (training and evaluation) on rank 0.
    public var seconds: Double

    public init(
        epoch: Int, step: Int = 0, trainLoss: Double, trainAccuracy: Double, trainSamples: Int,
        validationLoss: Double? = nil, validationAccuracy: Double? = nil, validationSamples: Int? = nil,
        testLoss: Double? = nil, testAccuracy: Double? = nil, testSamples: Int? = nil,
        learningRate: Double = 0, samplesPerSecond: Double = 0, seconds: Double
    ) {
        self.epoch = epoch
        self.step = step
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.trainSamples = trainSamples
        self.validationLoss = validationLoss
        self.validationAccuracy = validationAccuracy
        self.validationSamples = validationSamples
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
        self.testSamples = testSamples
        self.learningRate = learningRate
        self.samplesPerSecond = samplesPerSecond
        self.seconds = seconds
    }
}

/// What `fit` hands back: every epoch's figures and the final test evaluation.
public struct TrainingResult {
    /// The epochs run by this call (a resumed run lists only its own).
    public var epochs: [EpochMetrics]
    /// The test set's totals after the last step (nil without a test set).
    public var test: BatchTotals?
    /// Whether a callback ended the run after an epoch (early stopping, `TrainingLoop.requestStop`).
    public var stoppedEarly: Bool
    /// Whether a stop request (`TrainingConfiguration.stopRequested`) ended the run at a step boundary.
    public var interrupted = false
    /// Where the run stands at its end.
    public var position: TrainingPosition
}

/// Where a run stands: what a checkpoint records to continue exactly.
public struct TrainingPosition: Equatable, Codable {
    /// The epoch in progress (or about to start when `stepInEpoch` is 0).
    public var epoch = 0
    /// Optimizer steps already taken in that epoch.
    public var stepInEpoch = 0
    /// Optimizer steps taken since the start of the run (the schedule's step index).
    public var step = 0
    /// The best monitored validation figure so far.
    public var best: Double?
    /// Epochs since the monitored figure last improved.
    public var epochsWithoutImprovement = 0

    public init(epoch: Int = 0, stepInEpoch: Int = 0, step: Int = 0, best: Double? = nil, epochsWithoutImprovement: Int = 0) {
        self.epoch = epoch
        self.stepInEpoch = stepInEpoch
        self.step = step
        self.best = best
        self.epochsWithoutImprovement = epochsWithoutImprovement
    }
}

/// Totals of loss, correct predictions and samples (summed over a rank's batches, then ranks):
/// the training loop and evaluation count with the same type.
public typealias BatchTotals = EvaluationTotals

/// One progress report: the global figures of the steps since the last report.
public struct StepProgress: Equatable {
    public var epoch: Int
    /// Optimizer steps done in this epoch, and how many it has.
    public var step: Int
    public var steps: Int
    /// Optimizer steps since the start of the run.
    public var globalStep: Int
    /// Mean loss and accuracy over the samples since the last report.
    public var loss: Double
    public var accuracy: Double
    /// The learning rate of the last step.
    public var learningRate: Double
    /// Training samples per second over all ranks since the epoch started.
    public var samplesPerSecond: Double
    /// Seconds left in this epoch at that pace.
    public var secondsLeft: Double
}

/// What the trainer reports as it goes; the launcher decides what to print (on rank 0).
public enum TrainingEvent {
    /// Every rank built the same replica and rank 0's state was broadcast.
    case ready(parameters: Int, fingerprint: UInt64, ranks: Int, stepsPerEpoch: Int)
    /// Training continues from a checkpoint at this position.
    case resumed(TrainingPosition)
    /// Progress within an epoch, every `logInterval` steps and at its end.
    case progress(StepProgress)
    /// An epoch ended.
    case epoch(EpochMetrics)
    /// Rank 0 wrote a checkpoint (reported on rank 0 only).
    case checkpoint(path: String)
    /// The monitored figure has not improved for `patience` epochs.
    case stoppedEarly(epoch: Int, best: Double)
    /// The run ended; the test set (if any) was evaluated.
    case finished(EpochMetrics)
}
