import ArgumentParser
import Benchmarks
import Dist
import Foundation
import NN

/// `ddp bench steps`: training steps on synthetic data, timed: throughput and where each step's
/// time goes (compute, communication, the part of it hidden behind backward).
struct BenchSteps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steps",
        abstract: "Time data-parallel training steps on synthetic data: samples/s, compute, communication, blocked and hidden time.",
        discussion: """
            Runs --warmup untimed then --steps timed steps of the real trainer (forward, backward with \
            buckets started and polled between layers, reduction, SGD step) on this job's ranks. Per \
            step and rank: compute = forward + backward; comm = first bucket's start to last bucket's \
            observed completion; blocked = waiting for reductions after backward; hidden = comm − \
            blocked (communication overlapped with backward); in MPI = time inside MPI calls that start \
            and poll the buckets during backward (part of compute: the communication work that the overlap \
            does not hide from this rank's cores); cpu = the process's CPU time per step (all of its threads: \
            on a shared machine it leaves out other processes' time slices, which the wall-clock figures \
            include). Prints rank means and appends a CSV row \
            with --csv (scripts/bench-scaling.sh runs it over 1..N ranks). A benchmark, not a test.
            """)

    @OptionGroup(title: "Launch") var launch: LaunchOptions
    @OptionGroup(title: "Communication") var commOptions: CommOptions
    @OptionGroup(title: "Compute") var threadOptions: ThreadOptions

    @Option(help: ArgumentHelp("A built-in model (\(ModelSpec.builtinNames.joined(separator: ", "))) or a model file (.json, .yaml).", valueName: "name|file"))
    var model = "fmnist-cnn"

    @Option(help: "Samples per rank per step (weak scaling: the global batch grows with the ranks). Default 32 unless --batch-size is given.")
    var perRankBatch: Int?

    @Option(help: "The global batch, split over the ranks (strong scaling).")
    var batchSize: Int?

    @Option(help: "Gradient summation: fast or deterministic (fixed chunks summed exactly).")
    var reduction: ReductionMode = .fast

    @Option(help: ArgumentHelp("Deterministic mode: samples per chunk of the global batch.", valueName: "c"))
    var chunkSize = 16

    @Option(help: "Timed steps.")
    var steps = 20

    @Option(help: "Untimed steps first.")
    var warmup = 3

    @Option(help: ArgumentHelp("The synthetic samples' shape C,H,W.", valueName: "C,H,W"))
    var sampleShape = "1,28,28"

    @Option(help: "Classes of the synthetic data.")
    var classes = 10

    @Option(help: "A tag written in the CSV's first column (e.g. weak, strong).")
    var label = "run"

    @Option(help: ArgumentHelp("Append one CSV row to this file (rank 0; a header first when the file is new).", valueName: "file"))
    var csv: String?

    /// `--sample-shape` as [C, H, W].
    var parsedShape: [Int]? { SampleShapeOption.parse(sampleShape) }

    func validate() throws {
        guard perRankBatch == nil || batchSize == nil else { throw ValidationError("give --per-rank-batch or --batch-size, not both") }
        if let b = perRankBatch, b <= 0 { throw ValidationError("--per-rank-batch must be positive, got \(b)") }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be non-negative, got \(warmup)") }
        try SampleShapeOption.validate(sampleShape)
        guard classes > 1 else { throw ValidationError("--classes must be at least 2, got \(classes)") }
        try ConfigurationCheck.validate(configuration(globalBatch: batchSize ?? perRankBatch ?? 32))
    }

    /// The training options of the command line for a global batch.
    func configuration(globalBatch: Int) -> TrainingConfiguration {
        var config = TrainingConfiguration()
        config.globalBatchSize = globalBatch
        config.reduction = reduction
        config.chunkSize = chunkSize
        commOptions.apply(to: &config)
        threadOptions.apply(to: &config)
        return config
    }

    func run() throws {
        try launch.relaunchIfRequested()
        RankSession.run { communicator in
            let p = communicator.size
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let globalBatch = batchSize ?? (perRankBatch ?? 32) * p
            let data = SyntheticPatterns.make(count: globalBatch * 4, shape: parsedShape!, classes: classes, seed: 7)
            let spec = try ModelSpec.resolve(model, inputShape: data.sampleShape, classes: data.classCount)
            let config = configuration(globalBatch: globalBatch)
            try config.validate(ranks: p, trainingSamples: data.count)
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: try SGD(learningRate: 0.01, momentum: 0.9),
                loss: SoftmaxCrossEntropy(), communicator: communicator, configuration: config)
            try trainer.synchronize(dataset: data)
            try commOptions.startProgressThread(communicator)
            let f = try StepBenchmark.run(trainer: trainer, data: data, globalBatch: globalBatch, warmup: warmup, steps: steps) {
                trainer.timeline = try commOptions.makeTimeline(communicator)
            }
            try commOptions.save(trainer.timeline)
            let result = StepBenchResult(
                label: label, model: model, ranks: p, threads: threadOptions.threads, cores: cores, globalBatch: globalBatch,
                steps: steps, compression: commOptions.compression.rawValue,
                bucketMegabytes: Double(commOptions.bucketCapacity) * 4 / 1_048_576,
                samplesPerSecond: Double(globalBatch * steps) / f.wallSeconds,
                stepSeconds: f.wallSeconds / Double(steps), computeSeconds: f.computeSeconds,
                commSeconds: f.commSeconds, blockedSeconds: f.blockedSeconds, hiddenSeconds: f.hiddenSeconds,
                conversionSeconds: f.conversionSeconds, mpiCallSeconds: f.mpiCallSeconds, cpuSeconds: f.cpuSeconds,
                reduction: reduction == .deterministic
                    ? "deterministic (chunks of \(chunkSize), \(f.redoneSteps) of \(steps) steps redone\(f.factorBuckets > 0 ? ", \(f.factorBuckets) dense weight\(f.factorBuckets == 1 ? "" : "s") from gathered factors" : ""))"
                    : "fast\(f.factorBuckets > 0 ? " (\(f.factorBuckets) dense weight\(f.factorBuckets == 1 ? "" : "s") as factors: \(trainer.ddp.reducer.factorSizes.weightFloats) weight floats, \(trainer.ddp.reducer.factorSizes.floatsPerSample) floats a sample, formed in \(String(format: "%.2f", f.factorSeconds * 1000)) ms)" : "")",
                gradientFloats: trainer.ddp.reducer.buckets.reduce(0) { $0 + $1.count },
                bucketFloats: trainer.ddp.reducer.buckets.map(\.count),
                medianStepSeconds: f.medianStepSeconds, medianComputeSeconds: f.medianComputeSeconds)
            if communicator.isRoot {
                printLine(result.summary)
                if let csv { try result.append(to: csv) }
            }
        }
    }
}

/// The figures of one `bench steps` run.
struct StepBenchResult {
    var label: String
    var model: String
    var ranks: Int
    /// Threads per rank (`--threads`).
    var threads = 1
    var cores: Int
    var globalBatch: Int
    var steps: Int
    var compression: String
    var bucketMegabytes: Double
    var samplesPerSecond: Double
    var stepSeconds: Double
    var computeSeconds: Double
    var commSeconds: Double
    var blockedSeconds: Double
    var hiddenSeconds: Double
    var conversionSeconds: Double
    var mpiCallSeconds: Double
    /// Process CPU seconds per step (rank mean).
    var cpuSeconds: Double
    /// The summation mode, in words (the deterministic mode's conversion time is the integer
    /// accumulation's, and its blocked time the wait for the sums).
    var reduction = "fast"
    /// Floats of gradient reduced each step, and the buckets they travel in (the scaling model's input).
    var gradientFloats = 0
    /// The floats of each bucket, in the order they are reduced.
    var bucketFloats: [Int] = []
    var buckets: Int { bucketFloats.count }
    /// Medians over the timed steps (see `StepBenchmark.Figures`).
    var medianStepSeconds = 0.0
    var medianComputeSeconds = 0.0

    var oversubscribed: Bool { ranks * threads > cores }
    var hiddenPercent: Double { commSeconds > 0 ? 100 * hiddenSeconds / commSeconds : 0 }

    var summary: String {
        String(
            format:
                "bench steps: %@ %@, %d rank%@%@%@, global batch %d, reduction %@, %d steps: %.1f samples/s, step %.2f ms | per step: compute %.2f ms (in MPI %.2f ms), comm %.2f ms, blocked %.2f ms, hidden %.2f ms (%.0f%%), %@ conversion %.2f ms, cpu %.2f ms | %d gradient floats in %d bucket%@ (floats: %@) | median step %.2f ms, median compute %.2f ms",
            label, model, ranks, ranks == 1 ? "" : "s", threads > 1 ? " × \(threads) threads" : "", oversubscribed ? " (oversubscribed)" : "", globalBatch,
            reduction, steps,
            samplesPerSecond, stepSeconds * 1000, computeSeconds * 1000, mpiCallSeconds * 1000, commSeconds * 1000,
            blockedSeconds * 1000, hiddenSeconds * 1000, hiddenPercent, reduction.hasPrefix("fast") ? "fp16" : "integer", conversionSeconds * 1000,
            cpuSeconds * 1000,
            gradientFloats, buckets, buckets == 1 ? "" : "s", bucketFloats.map(String.init).joined(separator: " "),
            medianStepSeconds * 1000, medianComputeSeconds * 1000)
    }

    static let csvHeader =
        "label,model,ranks,cores,oversubscribed,global_batch,per_rank_batch,steps,compression,bucket_mb,samples_per_s,step_ms,compute_ms,comm_ms,blocked_ms,hidden_ms,hidden_pct,conversion_ms,cpu_ms"

    var csvRow: String {
        func f(_ x: Double) -> String { String(format: "%.3f", x) }
        return [
            label, model, "\(ranks)", "\(cores)", oversubscribed ? "yes" : "no", "\(globalBatch)",
            String(format: "%.2f", Double(globalBatch) / Double(ranks)), "\(steps)", compression, f(bucketMegabytes),
            f(samplesPerSecond), f(stepSeconds * 1000), f(computeSeconds * 1000), f(commSeconds * 1000),
            f(blockedSeconds * 1000), f(hiddenSeconds * 1000), String(format: "%.1f", hiddenPercent),
            f(conversionSeconds * 1000), f(cpuSeconds * 1000)
        ].joined(separator: ",")
    }

    /// Appends the row to `path`, with the header first when the file is new or empty.
    func append(to path: String) throws {
        let fresh = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) == 0
        let text = (fresh ? StepBenchResult.csvHeader + "\n" : "") + csvRow + "\n"
        if fresh {
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
                throw DistError.invalidConfiguration(option: "csv", reason: "cannot create \(path)")
            }
            return
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw DistError.invalidConfiguration(option: "csv", reason: "cannot open \(path) for writing")
        }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        handle.closeFile()
    }
}
