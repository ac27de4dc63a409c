import ArgumentParser
import Dist
import Foundation
import NN

/// `ddp train`: data-parallel training on every rank of the job (or one bare rank).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model data-parallel: bare as one rank, under mpirun, or with --np N.",
        discussion: """
        The linear scaling rule (--scale-lr): with k times the global batch, use k times the learning rate. \
        --scale-lr sets lr = --lr x (--batch-size x --accumulate) / --lr-reference-batch, so a rate tuned \
        for a batch of 256 carries over to other batches (Goyal et al.; pair it with a warm-up for large batches).
        """)

    @OptionGroup var launch: LaunchOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var optimizerOptions: OptimizerOptions
    @OptionGroup var commOptions: CommOptions
    @OptionGroup var faultOptions: FaultOptions

    @Option(help: "Passes over the training set.")
    var epochs = 1

    @Option(help: "The global batch size of one forward pass, summed over all ranks (each rank takes B/P, the first B mod P one more).")
    var batchSize = 64

    @Option(help: ArgumentHelp("Gradient accumulation: N micro-batches of --batch-size per optimizer step, reduced once (the step's batch is N x --batch-size).", valueName: "N"))
    var accumulate = 1

    @Option(help: "What to do with the last short batch of an epoch: drop or split.")
    var lastBatch: LastBatchPolicy = .drop

    @Option(help: "Gradient summation: fast, or deterministic (fixed chunks of the global batch summed exactly: bit for bit the same on any number of ranks).")
    var reduction: ReductionMode = .fast

    @Option(help: ArgumentHelp("Deterministic mode: samples per chunk of the global batch (results depend on it, not on the ranks; a rank takes whole chunks).", valueName: "c"))
    var chunkSize = 16

    @Option(help: "Stop each epoch after this many optimizer steps.")
    var maxSteps: Int?

    @Option(help: ArgumentHelp("Stop the run after this many optimizer steps in total (a checkpoint is written there).", valueName: "N"))
    var stopAfter: Int?

    @Option(help: "Print a progress line every this many steps when stdout is not a terminal (0: per epoch only). Under mpirun, DDP_PROGRESS=bar asks for the bar.")
    var logInterval = 50

    @Option(help: ArgumentHelp("Append one JSON object per epoch, and a final one with the test figures, to this file (rank 0).", valueName: "file"))
    var metrics: String?

    @Option(help: ArgumentHelp("Stop when the monitored validation figure has not improved for N epochs (needs --validation-split or --validation-data).", valueName: "N"))
    var earlyStoppingPatience: Int?

    @Option(help: "The validation figure for early stopping and best.safetensors: val_loss or val_accuracy.")
    var monitor: MonitoredMetric = .validationLoss

    @Option(help: "The smallest change of the monitored figure that counts as an improvement.")
    var minDelta = 0.0

    @Option(help: ArgumentHelp("Write TensorBoard scalar event files here (rank 0): DIR/train, DIR/validation (tensorboard --logdir DIR).", valueName: "dir"))
    var tensorboard: String?

    @Option(help: ArgumentHelp("Write checkpoints here (rank 0): step-N.safetensors at each epoch's end and at the end, best.safetensors by --monitor.", valueName: "dir"))
    var checkpointDir: String?

    @Option(help: ArgumentHelp("Also write a checkpoint every N optimizer steps.", valueName: "N"))
    var checkpointEvery = 0

    @Option(help: ArgumentHelp("Keep only the newest K step checkpoints (0: all).", valueName: "K"))
    var keepLast = 0

    @Option(help: ArgumentHelp("Continue from a checkpoint file, or a folder's newest step checkpoint (any number of ranks, the same global batch).", valueName: "path"))
    var resume: String?

    func validate() throws {
        guard epochs > 0 else { throw LaunchError("--epochs must be positive, got \(epochs)") }
        guard batchSize > 0 else { throw LaunchError("--batch-size must be positive, got \(batchSize)") }
        guard accumulate > 0 else { throw LaunchError("--accumulate must be positive, got \(accumulate)") }
        try commOptions.validate(reduction: reduction)
        guard chunkSize > 0 else { throw LaunchError("--chunk-size must be positive, got \(chunkSize)") }
        guard logInterval >= 0 else { throw LaunchError("--log-interval must be 0 or more, got \(logInterval)") }
        if let m = maxSteps, m <= 0 { throw LaunchError("--max-steps must be positive, got \(m)") }
        if let m = stopAfter, m <= 0 { throw LaunchError("--stop-after must be positive, got \(m)") }
        if let p = earlyStoppingPatience {
            guard p > 0 else { throw LaunchError("--early-stopping-patience must be positive, got \(p)") }
            guard dataOptions.hasValidation else {
                throw LaunchError("--early-stopping-patience \(p) needs a validation set; hint: add --validation-split 0.1 or --validation-data test")
            }
        }
        guard minDelta.isFinite, minDelta >= 0 else { throw LaunchError("--min-delta must be a number >= 0, got \(minDelta)") }
        guard checkpointEvery >= 0 else { throw LaunchError("--checkpoint-every must be 0 or more, got \(checkpointEvery)") }
        guard keepLast >= 0 else { throw LaunchError("--keep-last must be 0 or more, got \(keepLast)") }
        if checkpointDir == nil && checkpointEvery > 0 { throw LaunchError("--checkpoint-every \(checkpointEvery) needs --checkpoint-dir") }
        if checkpointDir == nil && keepLast > 0 { throw LaunchError("--keep-last \(keepLast) needs --checkpoint-dir") }
        if let r = resume, !FileManager.default.fileExists(atPath: r) {
            throw LaunchError("--resume \(r): no such file or directory")
        }
    }

    func run() throws {
        if launch.ranks != nil && MPIRelaunch.launcherSize() == nil { TrainingOutput.exportProgressStyle() }
        if try faultOptions.superviseIfRequested(launch: launch, checkpointDir: checkpointDir, metrics: metrics) { return }
        try launch.relaunchIfRequested()
        StopSignals.install { _ in printError("stop requested: stopping after the current step (a second signal stops at once)") }
        RankSession.run(agreeingOnSetup: true) { communicator in
            faultOptions.apply(to: communicator)
            let (train, validation, test) = try dataOptions.load(rank: communicator.rank, seed: modelOptions.seed)
            let spec = try modelOptions.spec(for: train)
            var config = TrainingConfiguration()
            config.epochs = epochs
            config.globalBatchSize = batchSize
            config.accumulationSteps = accumulate
            config.seed = modelOptions.seed
            config.lastBatch = lastBatch
            config.reduction = reduction
            config.chunkSize = chunkSize
            config.maxStepsPerEpoch = maxSteps
            config.stopAfterSteps = stopAfter
            commOptions.apply(to: &config)
            config.augmentation = try dataOptions.augmentation(channels: train.sampleShape[0])
            config.monitor = monitor
            config.earlyStoppingPatience = earlyStoppingPatience
            config.earlyStoppingMinDelta = minDelta
            config.stopRequested = { StopSignals.requested }
            config.checkpoints = checkpointDir.map { CheckpointPolicy(directory: $0, everySteps: checkpointEvery, keepLast: keepLast) }
            let output = try TrainingOutput(isRoot: communicator.isRoot, metricsPath: metrics, epochs: epochs)
            let tensorboardLog = try TrainingTensorBoard(directory: tensorboard, isRoot: communicator.isRoot)
            // A terminal gets a bar redrawn every step; logs and pipes a line every --log-interval steps.
            config.logInterval = output.terminal ? 1 : logInterval
            let stepsPerEpoch = config.optimizerStepsPerEpoch(trainingSamples: train.count)
            let base = optimizerOptions.baseLearningRate(stepBatch: batchSize * accumulate)
            if stepsPerEpoch > 0 {
                config.schedule = try optimizerOptions.schedule(base: base, stepsPerEpoch: stepsPerEpoch, epochs: epochs)
            }
            let optimizer = try optimizerOptions.makeOptimizer(learningRate: base)
            config.verifiedOptions = [("lr", "\(base)"), ("data", dataOptions.source), ("validation split", "\(dataOptions.validationSplit)"),
                                      ("validation data", dataOptions.validationData ?? "none"),
                                      ("augmentation", "\(config.augmentation)")]
            config.recordedOptions = [
                "model": modelOptions.model, "data": dataOptions.source, "validation_split": "\(dataOptions.validationSplit)",
                "validation_data": dataOptions.validationData ?? "",
                "optimizer": optimizerOptions.optimizer, "lr": "\(base)", "schedule": config.schedule.map(\.description) ?? "",
                "epochs": "\(epochs)", "batch_size": "\(batchSize)", "accumulate": "\(accumulate)",
                "augmentation": "\(config.augmentation)", "seed": "\(modelOptions.seed)",
                // What evaluation needs to prepare inputs as training did.
                "normalize_mean": config.augmentation.mean.map { "\($0)" }.joined(separator: ","),
                "normalize_std": config.augmentation.std.map { "\($0)" }.joined(separator: ","),
                // `ddp eval`/`ddp predict` read these two: MEAN..,STD.. as --normalize takes it, and the labels' names.
                "normalize": (config.augmentation.mean + config.augmentation.std).map { "\($0)" }.joined(separator: ","),
                "class_names": String(decoding: try JSONEncoder().encode(train.classNames), as: UTF8.self),
            ]
            let trainer = try DataParallelTrainer(spec: spec, optimizer: optimizer, loss: spec.makeLoss(),
                                                  communicator: communicator, configuration: config)
            output.describe(spec: spec, optimizer: optimizer, schedule: config.schedule, train: train, validation: validation,
                            test: test, batchSize: batchSize, accumulate: accumulate)
            var start = TrainingPosition()
            if let resume {
                let restored = try trainer.restore(from: resume, trainingSamples: train.count)
                start = restored.position
                output.line("resume: \(restored.path) (epoch \(start.epoch + 1), step \(start.stepInEpoch) of the epoch, \(start.step) steps in all)")
            }
            // Everything above is local to this rank; an error there that every rank found is printed once.
            try RankSession.endSetup(communicator)
            trainer.timeline = try commOptions.prepare(communicator)
            let result = try trainer.fit(training: train, validation: validation, test: test, from: start) { event in
                output.handle(event, modelName: spec.name, batchSize: batchSize, accumulate: accumulate, monitor: monitor,
                              patience: earlyStoppingPatience)
                tensorboardLog?.handle(event)
            }
            if result.interrupted {
                let p = result.position
                let saved = checkpointDir.map { "checkpoint written to \($0); continue with --resume \($0)" } ?? "no --checkpoint-dir, nothing saved"
                output.line("stopped by a signal after step \(p.stepInEpoch) of epoch \(p.epoch + 1) (\(p.step) steps in all): \(saved); exit status \(StopSignals.exitCode)")
                throw TrainingStopped(description: "stopped by a signal")
            }
            if let path = try commOptions.save(trainer.timeline), communicator.isRoot {
                output.line("timeline: rank 0 wrote \(path); every rank writes its own")
            }
        }
    }
}
