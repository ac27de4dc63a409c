#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Dist
import Foundation
import NN

/// `ddp train`: data-parallel training on every rank of the job (or one bare rank).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model data-parallel: bare as one rank, under mpirun, or with --np N.")

    @OptionGroup var launch: LaunchOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var commOptions: CommOptions

    @Option(help: "Passes over the training set.")
    var epochs = 1

    @Option(help: "The global batch size, summed over all ranks (each rank takes B/P, the first B mod P one more).")
    var batchSize = 64

    @Option(name: .customLong("lr"), help: "The learning rate.")
    var learningRate: Float = 0.05

    @Option(help: "The optimizer: sgd.")
    var optimizer = "sgd"

    @Option(help: "Momentum for sgd, in [0, 1).")
    var momentum: Float = 0.9

    @Option(help: "What to do with the last short batch of an epoch: drop or split.")
    var lastBatch: LastBatchPolicy = .drop

    @Option(help: "Gradient summation: fast, or deterministic (exact per-sample sums: bit for bit what one rank computes; about 2x the compute).")
    var reduction: ReductionMode = .fast

    @Option(help: "Stop each epoch after this many steps.")
    var maxSteps: Int?

    @Option(help: "Print the global loss every this many steps (0: per epoch only).")
    var logInterval = 50

    @Option(help: ArgumentHelp("Append each epoch's metrics as a JSON line to this file (rank 0).", valueName: "file"))
    var metrics: String?

    func validate() throws {
        guard epochs > 0 else { throw ValidationError("--epochs must be positive, got \(epochs)") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard optimizer == "sgd" else { throw ValidationError("--optimizer \(optimizer) is not available; hint: use sgd") }
        try commOptions.validate(reduction: reduction)
        guard logInterval >= 0 else { throw ValidationError("--log-interval must be non-negative, got \(logInterval)") }
    }

    func run() throws {
        try launch.relaunchIfRequested()
        RankSession.run { communicator in
            let (train, test) = try dataOptions.load(rank: communicator.rank)
            let spec = try modelOptions.spec(for: train)
            var config = TrainingConfiguration()
            config.epochs = epochs
            config.globalBatchSize = batchSize
            config.seed = modelOptions.seed
            config.lastBatch = lastBatch
            config.reduction = reduction
            config.maxStepsPerEpoch = maxSteps
            config.logInterval = logInterval
            config.verifiedOptions = [("lr", "\(learningRate)"), ("data", dataOptions.data ?? "synthetic \(dataOptions.syntheticSamples)")]
            commOptions.apply(to: &config)
            let trainer = try DataParallelTrainer(spec: spec, optimizer: PlainSGD(learningRate: learningRate, momentum: momentum),
                                                  loss: SoftmaxCrossEntropy(), communicator: communicator, configuration: config)
            trainer.timeline = try commOptions.prepare(communicator)
            let metricsFile = try communicator.isRoot ? metrics.map(MetricsLog.init(path:)) : nil
            // On a terminal, progress rewrites one line; in logs and pipes, one line per report.
            let terminal = isatty(STDOUT_FILENO) == 1
            try trainer.fit(training: train, test: test) { event in
                guard communicator.isRoot else { return }
                switch event {
                case let .ready(parameters, fingerprint, ranks, steps):
                    let per = batchSize / ranks
                    printLine("train: model \(spec.name), \(parameters) parameters, \(ranks) rank\(ranks == 1 ? "" : "s"), global batch \(batchSize) (\(per)\(batchSize % ranks == 0 ? "" : "-\(per + 1)") per rank), \(steps) steps/epoch; replicas verified (fingerprint \(String(fingerprint, radix: 16)))")
                case let .progress(epoch, step, steps, loss, accuracy):
                    let line = String(format: "epoch %d step %d/%d loss %.4f acc %.3f", epoch + 1, step, steps, loss, accuracy)
                    if terminal {
                        let width = 24, done = width * step / max(steps, 1)
                        print("\r[" + String(repeating: "#", count: done) + String(repeating: ".", count: width - done) + "] " + line, terminator: "")
                        fflush(stdout)
                    } else {
                        printLine(line)
                    }
                case let .epoch(m):
                    if terminal { print("\r", terminator: "") }
                    var line = String(format: "epoch %d: train loss %.4f acc %.3f (%d samples)", m.epoch + 1, m.trainLoss, m.trainAccuracy, m.trainSamples)
                    if let l = m.testLoss, let a = m.testAccuracy { line += String(format: " | test loss %.4f acc %.3f (%d samples)", l, a, m.testSamples ?? 0) }
                    line += String(format: " | %.2f s", m.seconds) + (terminal ? String(repeating: " ", count: 20) : "")
                    printLine(line)
                    metricsFile?.append(m)
                }
            }
            if let path = try commOptions.save(trainer.timeline), communicator.isRoot { printLine("timeline: rank 0 wrote \(path); every rank writes its own") }
        }
    }
}

/// Rank 0's JSON-lines metrics file.
final class MetricsLog {
    let handle: FileHandle

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw ValidationError("--metrics \(path): cannot create the file")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw ValidationError("--metrics \(path): cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    func append(_ metrics: EpochMetrics) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        if let data = try? encoder.encode(metrics) { handle.write(data + Data("\n".utf8)) }
    }
}
