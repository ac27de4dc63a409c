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

    @OptionGroup(title: "Launch") var launch: LaunchOptions
    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data and augmentation") var dataOptions: DataOptions
    @OptionGroup(title: "Optimization and schedule") var optimizerOptions: OptimizerOptions
    @OptionGroup(title: "Training loop and stopping") var loop: TrainingLoopOptions
    @OptionGroup(title: "Checkpoints and resume") var checkpoints: CheckpointOptions
    @OptionGroup(title: "Communication") var reductionOptions: ReductionOptions
    @OptionGroup(title: "Communication") var commOptions: CommOptions
    @OptionGroup(title: "Compute") var threadOptions: ThreadOptions
    @OptionGroup(title: "Faults") var faultOptions: FaultOptions
    @OptionGroup(title: "Output") var output: OutputOptions

    /// Checks what needs two groups; each group checks the forms of its own options, and the
    /// library the training options' values (`ConfigurationCheck`).
    func validate() throws {
        try ConfigurationCheck.validate(configuration())
        if let p = loop.earlyStoppingPatience, !dataOptions.hasValidation {
            throw LaunchError("--early-stopping-patience \(p) needs a validation set; hint: add --validation-split 0.1 or --validation-data test")
        }
    }

    /// The training options of the command line (without the data's: augmentation, schedule).
    func configuration() -> TrainingConfiguration {
        var config = TrainingConfiguration()
        loop.apply(to: &config)
        config.seed = modelOptions.seed
        reductionOptions.apply(to: &config)
        commOptions.apply(to: &config)
        threadOptions.apply(to: &config)
        config.checkpoints = checkpoints.policy
        return config
    }

    func run() throws {
        if launch.ranks != nil && MPIRelaunch.launcherSize() == nil { TrainingOutput.exportProgressStyle() }
        if try faultOptions.superviseIfRequested(launch: launch, checkpointDir: checkpoints.checkpointDir, metrics: output.metrics) { return }
        try launch.relaunchIfRequested()
        StopSignals.install(onFirst: { _ in printError("stop requested: stopping after the current step (a second signal stops at once)") })
        RankSession.run(agreeingOnSetup: true) { communicator in
            faultOptions.apply(to: communicator)
            let (train, validation, test) = try dataOptions.load(rank: communicator.rank, seed: modelOptions.seed)
            let spec = try modelOptions.spec(for: train)
            var config = configuration()
            config.augmentation = try dataOptions.augmentation(channels: train.sampleShape[0])
            config.stopRequested = { StopSignals.requested }
            let epochs = loop.epochs, batchSize = loop.batchSize, accumulate = loop.accumulate
            let output = TrainingOutput(isRoot: communicator.isRoot, epochs: epochs)
            let metricsLog = try self.output.metrics.map { path in
                do { return try MetricsLog(path: path, isRoot: communicator.isRoot) } catch let DistError.cannotWrite(_, reason) {
                    throw LaunchError("--metrics \(path): \(reason)")
                }
            }
            let tensorboardLog = try TrainingTensorBoard(directory: self.output.tensorboard, isRoot: communicator.isRoot)
            // A terminal gets a bar redrawn every step; logs and pipes a line every --log-interval steps.
            config.logInterval = output.terminal ? 1 : self.output.logInterval
            let stepsPerEpoch = config.optimizerStepsPerEpoch(trainingSamples: train.count)
            let base = optimizerOptions.baseLearningRate(stepBatch: batchSize * accumulate)
            if stepsPerEpoch > 0 {
                config.schedule = try optimizerOptions.schedule(base: base, stepsPerEpoch: stepsPerEpoch, epochs: epochs)
            }
            let optimizer = try optimizerOptions.makeOptimizer(learningRate: base)
            config.verifiedOptions = [
                ("lr", "\(base)"), ("data", dataOptions.source), ("validation split", "\(dataOptions.validationSplit)"),
                ("validation data", dataOptions.validationData ?? "none"),
                ("augmentation", "\(config.augmentation)")
            ]
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
                "class_names": String(decoding: try JSONEncoder().encode(train.classNames), as: UTF8.self)
            ]
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: optimizer, loss: spec.makeLoss(),
                communicator: communicator, configuration: config)
            output.describe(
                spec: spec, optimizer: optimizer, schedule: config.schedule, train: train, validation: validation,
                test: test, batchSize: batchSize, accumulate: accumulate)
            var start = TrainingPosition()
            if let resume = checkpoints.resume {
                let restored = try trainer.restore(from: resume, trainingSamples: train.count)
                start = restored.position
                output.line("resume: \(restored.path) (epoch \(start.epoch + 1), step \(start.stepInEpoch) of the epoch, \(start.step) steps in all)")
            }
            // Everything above is local to this rank; an error there that every rank found is printed once.
            try RankSession.endSetup(communicator)
            try commOptions.startProgressThread(communicator)
            let timelineRecording = commOptions.timelineRecording()
            let callbacks = [metricsLog as TrainingCallback?, timelineRecording].compactMap { $0 }
            let result = try trainer.fit(
                training: train, validation: validation, test: test, from: start,
                callbacks: callbacks
            ) { event in
                output.handle(
                    event, modelName: spec.name, batchSize: batchSize, accumulate: accumulate, monitor: loop.monitor,
                    patience: loop.earlyStoppingPatience)
                tensorboardLog?.handle(event)
            }
            if let path = timelineRecording?.writtenPath, communicator.isRoot {
                output.line("timeline: rank 0 wrote \(path); every rank writes its own")
            }
            if result.interrupted {
                let p = result.position
                let saved =
                    checkpoints.checkpointDir.map { "checkpoint written to \($0); continue with --resume \($0)" } ?? "no --checkpoint-dir, nothing saved"
                output.line(
                    "stopped by a signal after step \(p.stepInEpoch) of epoch \(p.epoch + 1) (\(p.step) steps in all): \(saved); exit status \(StopSignals.exitCode)"
                )
                throw TrainingStopped(description: "stopped by a signal")
            }
        }
    }
}
