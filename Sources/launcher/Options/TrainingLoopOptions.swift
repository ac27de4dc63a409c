import ArgumentParser
import Dist

/// How long `ddp train` runs and how it splits the data into steps: epochs, the global batch,
/// accumulation, the last short batch, step limits and early stopping.
struct TrainingLoopOptions: ParsableArguments {
    @Option(help: "Passes over the training set.")
    var epochs = 1

    @Option(help: "The global batch size of one forward pass, summed over all ranks (each rank takes B/P, the first B mod P one more).")
    var batchSize = 64

    @Option(
        help: ArgumentHelp(
            "Gradient accumulation: N micro-batches of --batch-size per optimizer step, reduced once (the step's batch is N x --batch-size).", valueName: "N"))
    var accumulate = 1

    @Option(help: "What to do with the last short batch of an epoch: drop or split.")
    var lastBatch: LastBatchPolicy = .drop

    @Option(help: "Stop each epoch after this many optimizer steps.")
    var maxSteps: Int?

    @Option(help: ArgumentHelp("Stop the run after this many optimizer steps in total (a checkpoint is written there).", valueName: "N"))
    var stopAfter: Int?

    @Option(
        help: ArgumentHelp(
            "Stop when the monitored validation figure has not improved for N epochs (needs --validation-split or --validation-data).", valueName: "N"))
    var earlyStoppingPatience: Int?

    @Option(help: "The validation figure for early stopping and best.safetensors: val_loss or val_accuracy.")
    var monitor: MonitoredMetric = .validationLoss

    @Option(help: "The smallest change of the monitored figure that counts as an improvement.")
    var minDelta = 0.0

    /// Copies the loop's settings into a training configuration.
    func apply(to config: inout TrainingConfiguration) {
        config.epochs = epochs
        config.globalBatchSize = batchSize
        config.accumulationSteps = accumulate
        config.lastBatch = lastBatch
        config.maxStepsPerEpoch = maxSteps
        config.stopAfterSteps = stopAfter
        config.monitor = monitor
        config.earlyStoppingPatience = earlyStoppingPatience
        config.earlyStoppingMinDelta = minDelta
    }
}
