import Foundation
import NN

/// The epochs and steps of a run (`DataParallelTrainer.fit`), with callbacks at fixed points.
///
/// The loop itself does only what every step needs and every rank must agree on at once: the
/// learning rate of the schedule, the micro-batches, the reduction, the one small allreduce of
/// the step's loss (which carries the ranks' stop votes, so a non-finite loss or a stop request
/// ends every rank at the same step) and the update. Batch-norm averaging, progress reports,
/// early stopping and checkpoints are callbacks (`Callbacks/`), called in that order
/// (`standardCallbacks`) before the caller's own.
///
/// The callbacks read the run's state here; only the loop and the callbacks of this module change it.
public final class TrainingLoop {
    /// The replica, its optimizer and the ranks.
    public let trainer: DataParallelTrainer
    /// The training set (the same on every rank).
    public let training: Dataset
    /// Evaluated after each epoch, when given.
    public let validation: Dataset?
    /// Evaluated once after the last step, when given.
    public let test: Dataset?
    /// The callbacks, in the order they are called: during `run`, the standard ones and then the caller's.
    public private(set) var callbacks: [TrainingCallback]
    /// Optimizer steps in an epoch (set before `trainBegin`).
    public internal(set) var stepsPerEpoch = 0
    /// Where the run stands. Early stopping keeps its `best` and `epochsWithoutImprovement` here,
    /// so checkpoints record them and resuming restores them.
    public internal(set) var position: TrainingPosition
    /// The last step's figures, summed over every rank.
    public internal(set) var stepTotals = BatchTotals()
    /// The figures of this epoch's steps so far, summed over every rank.
    public internal(set) var epochTotals = BatchTotals()
    /// Seconds this epoch's steps took (training only, not evaluation or callbacks after the step).
    public internal(set) var epochTrainingSeconds = 0.0
    /// Steps this epoch has run in this run (fewer than `position.stepInEpoch` after a resume within it).
    public internal(set) var epochStepsRun = 0
    /// The figures of each epoch this run finished.
    public private(set) var history: [EpochMetrics] = []
    /// Whether a callback ended the run after the current epoch, and the event that says why.
    private(set) var stopRequested = false
    private var stopEvent: TrainingEvent?
    private let onEvent: (TrainingEvent) -> Void

    /// A loop over `trainer` (nothing runs before `run()`).
    ///
    /// - Parameters:
    ///   - callbacks: called after the standard ones, in this order.
    ///   - onEvent: receives every event, on every rank (`.checkpoint` on rank 0 only).
    init(
        trainer: DataParallelTrainer, training: Dataset, validation: Dataset?, test: Dataset?, from start: TrainingPosition,
        callbacks: [TrainingCallback], onEvent: @escaping (TrainingEvent) -> Void
    ) {
        self.trainer = trainer
        self.training = training
        self.validation = validation
        self.test = test
        self.callbacks = callbacks
        self.onEvent = onEvent
        position = start
    }

    /// The callbacks every run has: batch-norm averaging, progress, early stopping (which keeps the
    /// best monitored figure even without a patience), then checkpoints when a policy is set.
    /// Progress comes before checkpoints (a step's `.progress` event precedes its checkpoint) and
    /// early stopping before checkpoints (which record its state and write `best.safetensors`
    /// when it saw an improvement).
    ///
    /// - Throws: `CheckpointError` on rank 0 when the checkpoint folder cannot be created.
    static func standardCallbacks(_ configuration: TrainingConfiguration, isRoot: Bool) throws -> [TrainingCallback] {
        let earlyStopping = EarlyStopping(
            monitor: configuration.monitor, patience: configuration.earlyStoppingPatience,
            minDelta: configuration.earlyStoppingMinDelta)
        var callbacks: [TrainingCallback] = [BatchNormAveraging(), ProgressReporter(interval: configuration.logInterval), earlyStopping]
        if let policy = configuration.checkpoints {
            callbacks.append(try Checkpointing(policy: policy, isRoot: isRoot, best: earlyStopping))
        }
        return callbacks
    }

    /// Hands an event to the caller of `fit` (on this rank), then to every callback's `eventReported`.
    public func report(_ event: TrainingEvent) {
        onEvent(event)
        for callback in callbacks { callback.eventReported(self, event: event) }
    }

    /// Ends the run after the current epoch: after its `.epoch` event, the loop reports `event`
    /// (early stopping's `.stoppedEarly`) and goes on with `trainEnd`. Ask on every rank alike.
    public func requestStop(reporting event: TrainingEvent? = nil) {
        stopRequested = true
        stopEvent = stopEvent ?? event
    }

    /// Runs every callback's `modelWillBeRead`: call it before reading the model at a point where
    /// the loop does not (a checkpoint after a step). A collective when a callback's hook is one.
    public func prepareModelForReading() throws {
        for callback in callbacks { try callback.modelWillBeRead(self) }
    }

    /// The whole run: verify replicas and options, then the epochs, then the test set.
    ///
    /// - Returns: the figures of each epoch and of the test set (the same on every rank).
    /// - Throws: what `DataParallelTrainer.fit` documents, and what a callback throws.
    func run() throws -> TrainingResult {
        let configuration = trainer.configuration, size = trainer.communicator.size
        let digest = try trainer.synchronize(dataset: training)
        try configuration.validate(ranks: size, trainingSamples: training.count)
        try configuration.validate(layers: trainer.model.layers, ranks: size, trainingSamples: training.count)
        let sampler = DistributedSampler(
            datasetCount: training.count, globalBatchSize: configuration.globalBatchSize,
            seed: configuration.seed, shuffle: configuration.shuffle, lastBatch: configuration.lastBatch)
        stepsPerEpoch = configuration.optimizerStepsPerEpoch(trainingSamples: training.count)
        callbacks = try TrainingLoop.standardCallbacks(configuration, isRoot: trainer.communicator.isRoot) + callbacks
        trainer.trainingSamples = training.count
        report(.ready(parameters: trainer.model.arena.parameterCount, fingerprint: digest, ranks: size, stepsPerEpoch: stepsPerEpoch))
        if position != TrainingPosition() { report(.resumed(position)) }
        for callback in callbacks { try callback.trainBegin(self) }

        var interrupted = false
        epochs: while position.epoch < configuration.epochs {
            let started = Date()
            let order = sampler.permutation(epoch: position.epoch)
            epochTotals = BatchTotals()
            epochTrainingSeconds = 0
            epochStepsRun = 0
            for callback in callbacks { try callback.epochBegin(self) }
            while position.stepInEpoch < stepsPerEpoch {
                if let stop = configuration.stopAfterSteps, position.step >= stop { break epochs }
                let stepStarted = Date()
                let stopVotes = try step(sampler: sampler, order: order)
                // Checkpointed at the end, like `stopAfterSteps`; at an epoch's last step the epoch ends first.
                if stopVotes > 0 && position.stepInEpoch < stepsPerEpoch {
                    interrupted = true
                    break epochs
                }
                epochTotals += stepTotals
                epochStepsRun += 1
                epochTrainingSeconds += Date().timeIntervalSince(stepStarted)
                for callback in callbacks { try callback.stepEnd(self) }
            }
            try endEpoch(started: started)
            if stopRequested {
                if let stopEvent { report(stopEvent) }
                break
            }
        }
        try prepareModelForReading()
        for callback in callbacks { try callback.trainEnd(self) }
        if interrupted {
            return TrainingResult(epochs: history, test: nil, stoppedEarly: false, interrupted: true, position: position)
        }
        let testTotals = try test.map { try trainer.evaluate($0) }
        var final =
            history.last
            ?? EpochMetrics(
                epoch: position.epoch, step: position.step, trainLoss: 0, trainAccuracy: 0,
                trainSamples: 0, seconds: 0)
        final.step = position.step
        final.testLoss = testTotals?.meanLoss
        final.testAccuracy = testTotals?.accuracy
        final.testSamples = testTotals?.count
        report(.finished(final))
        return TrainingResult(epochs: history, test: testTotals, stoppedEarly: stopRequested, position: position)
    }

    /// One optimizer step {schedule, micro-batches, reduce, the global loss and its check, update}.
    ///
    /// - Returns: how many ranks asked to stop (`TrainingConfiguration.stopRequested`).
    /// - Throws: `DistError.nonFiniteLoss` on every rank, before the update; `DistError.mpi`.
    private func step(sampler: DistributedSampler, order: [Int]) throws -> Int {
        let configuration = trainer.configuration
        let epoch = position.epoch, step = position.stepInEpoch, microPerStep = configuration.accumulationSteps
        (trainer.communicator as? MPICommunicator)?.phase = "epoch \(epoch + 1) step \(step + 1)"  // for stall messages
        if let schedule = configuration.schedule { trainer.optimizer.learningRate = schedule.learningRate(at: position.step) }
        // The step's micro-batches: sampler batches step·N ..< (step+1)·N (fewer at a split end).
        let micro = step * microPerStep ..< min((step + 1) * microPerStep, sampler.stepsPerEpoch)
        let globalCount = micro.reduce(0) { $0 + sampler.globalBatch(step: $1, order: order).count }
        var totals = BatchTotals()
        for (m, s) in micro.enumerated() {
            totals += try trainer.computeGradients(
                globalBatch: sampler.globalBatch(step: s, order: order), epoch: epoch, dataset: training,
                accumulating: m > 0, final: m == micro.count - 1)
        }
        try trainer.reduceGradients(globalBatchSize: globalCount, scalingInUpdate: true)
        // One small allreduce per step: the global loss, so every rank sees a NaN at once.
        let (reduced, stopVotes) = try totals.reduced(across: trainer.communicator, stopVote: configuration.stopRequested?() == true)
        guard reduced.lossSum.isFinite else {
            throw DistError.nonFiniteLoss(epoch: epoch, step: step + 1, value: reduced.lossSum)
        }
        try trainer.applyUpdate()
        position.stepInEpoch += 1
        position.step += 1
        stepTotals = reduced
        return stopVotes
    }

    /// An epoch's end: the model made readable, the validation pass, `epochEnd`, the `.epoch` event.
    private func endEpoch(started: Date) throws {
        let epoch = position.epoch
        position.epoch += 1
        position.stepInEpoch = 0
        try prepareModelForReading()
        let evaluation = try validation.map { try trainer.evaluate($0) }
        var metrics = EpochMetrics(
            epoch: epoch, step: position.step, trainLoss: epochTotals.meanLoss,
            trainAccuracy: epochTotals.accuracy, trainSamples: epochTotals.count,
            validationLoss: evaluation?.meanLoss, validationAccuracy: evaluation?.accuracy,
            validationSamples: evaluation?.count, learningRate: Double(trainer.optimizer.learningRate),
            samplesPerSecond: Double(epochTotals.count) / max(epochTrainingSeconds, 1e-9), seconds: 0)
        for callback in callbacks { try callback.epochEnd(self, metrics: metrics) }
        metrics.seconds = Date().timeIntervalSince(started)
        history.append(metrics)
        report(.epoch(metrics))
    }
}
