import ArgumentParser
import Dist
import NN

/// `ddp gradcheck`: proves that P ranks compute what one rank computes on the same global batch.
struct Gradcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare P-rank data-parallel gradients and parameters with one replica on the whole batch.",
        discussion: """
            Every rank computes its slice's gradient and the allreduced mean; rank 0 also computes the \
            whole global batch alone on a second replica. Both take K optimizer steps. Prints, per \
            parameter tensor, the largest absolute and relative (to the tensor's largest magnitude) \
            errors of the gradients (worst over the K steps) and of the parameters after K steps, and \
            exits 1 when one exceeds --tolerance. The default tolerance, 1e-4, allows float32 \
            summation-order noise (each way adds the batch in a different order) with margin; bugs \
            give errors of order 1. With --compression fp16 the default is 1e-2: each rank's sum is \
            rounded to half precision (11-bit significand, relative error 2^-11 ≈ 4.9e-4) and the \
            reduction rounds again after each addition of a rank. Uses synthetic data, so it needs no \
            files. With --reduction deterministic the global batch is cut into chunks of --chunk-size \
            samples on both sides, and --tolerance 0 holds for any P. --rounding prints instead (rank \
            0) how far the fast mode's float32 sums (emulating 1, 2 and 8 ranks) and the deterministic \
            mode's exact sums lie from a float64 sum of the per-sample gradients.
            """)

    @OptionGroup(title: "Launch") var launch: LaunchOptions
    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Compute") var threadOptions: ThreadOptions

    @Option(name: .customLong("batch"), help: "The global batch size B (at least the number of ranks).")
    var batch = 24

    @Option(help: "Optimizer steps K taken both ways.")
    var steps = 3

    @Option(help: "Largest allowed error, relative to each tensor's largest magnitude (default 1e-4; 1e-2 with --compression fp16).")
    var tolerance: Double?

    @Option(name: .customLong("lr"), help: "The learning rate of the K steps.")
    var learningRate: Float = 0.05

    @Option(help: "SGD momentum, in [0, 1) (exercises the optimizer-state broadcast).")
    var momentum: Float = 0.9

    @Option(help: "Gradient summation on the distributed side: fast or deterministic.")
    var reduction: ReductionMode = .fast

    @Option(
        help: ArgumentHelp(
            "Deterministic mode: samples per chunk of the global batch (the default 3 gives the default batch of 24 eight chunks: P = 1..8 all compute).",
            valueName: "c"))
    var chunkSize = 3

    @Flag(help: "Print the rounding errors of the fast and deterministic sums against a float64 sum of per-sample gradients instead (no batch norm).")
    var rounding = false

    @Option(help: "Floats per gradient bucket (small values exercise reductions overlapped with backward).")
    var bucketFloats = 1 << 20

    @Option(help: "Gradient wire format on the distributed side: none (float32) or fp16.")
    var compression: GradientCompression = .none

    @Flag(name: .customLong("dense-factors"), help: "Send dense weights that have a bucket of their own as their factors (fast reduction; see train --help).")
    var denseFactors = false

    @Option(help: ArgumentHelp("Also poll reductions in flight from a helper thread every N microseconds (0: only between layers).", valueName: "N"))
    var progressThread = 0

    /// The tolerance in force: the option, or the wire format's default.
    var effectiveTolerance: Double { tolerance ?? GradientCheckConfiguration.tolerance(for: compression) }

    @Option(help: "Samples in the synthetic dataset (at least one global batch).")
    var samples = 96

    @Option(help: ArgumentHelp("The synthetic samples' shape C,H,W.", valueName: "C,H,W"))
    var sampleShape = "1,12,12"

    @Option(help: "Classes of the synthetic dataset.")
    var classes = 4

    /// `--sample-shape` as [C, H, W].
    var parsedShape: [Int]? { SampleShapeOption.parse(sampleShape) }

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard progressThread >= 0 else { throw ValidationError("--progress-thread must be non-negative, got \(progressThread)") }
        if let t = tolerance, !(t >= 0) { throw ValidationError("--tolerance must be non-negative, got \(t)") }
        try SampleShapeOption.validate(sampleShape)
        guard classes > 1 else { throw ValidationError("--classes must be at least 2, got \(classes)") }
        guard samples >= batch else { throw ValidationError("--samples \(samples) is smaller than --batch \(batch)") }
        try ConfigurationCheck.validate(configuration().training, renamed: ["global batch size": "--batch"])
    }

    /// The check's options from the command line.
    func configuration() -> GradientCheckConfiguration {
        var config = GradientCheckConfiguration()
        config.globalBatchSize = batch
        config.steps = steps
        config.seed = modelOptions.seed
        config.tolerance = effectiveTolerance
        config.compression = compression
        config.denseFactors = denseFactors
        config.reduction = reduction
        config.chunkSize = chunkSize
        config.bucketCapacity = bucketFloats
        config.threads = threadOptions.threads
        return config
    }

    func run() throws {
        try launch.relaunchIfRequested()
        RankSession.run { communicator in
            if progressThread > 0, communicator.size > 1, let mpi = communicator as? MPICommunicator {
                try mpi.startProgressThread(interval: Double(progressThread) / 1e6)
            }
            let data = SyntheticPatterns.make(count: samples, shape: parsedShape!, classes: classes, seed: modelOptions.seed &+ 7)
            let spec = try modelOptions.spec(for: data)
            if rounding {
                guard communicator.isRoot else { return }
                let report = try RoundingCheck.run(
                    spec: spec, dataset: data, globalBatchSize: batch, ranks: [1, 2, 8],
                    chunkSize: chunkSize, seed: modelOptions.seed)
                printLine(report.table)
                return
            }
            let report = try GradientCheck.run(
                spec: spec, dataset: data, loss: SoftmaxCrossEntropy(),
                makeOptimizer: { try SGD(learningRate: learningRate, momentum: momentum) },
                communicator: communicator, configuration: configuration())
            if communicator.isRoot { printLine(report.table) }
            guard report.passed else {
                let w = report.worst
                throw DistError.gradientCheckFailed(
                    worst: communicator.isRoot ? "relative error \(w.value) in \(w.description) exceeds \(effectiveTolerance)" : "see rank 0's table")
            }
        }
    }
}
