import ArgumentParser
import Dist
import Foundation

/// How gradients are bucketed and sent, and where the timeline goes: shared by `train`, and the
/// communication benchmarks.
struct CommOptions: ParsableArguments {
    /// The default bucket size: 4 MB, not PyTorch's 25 MB. The built-in models hold 0.1–13 MB of
    /// gradients (fmnist-cnn: 13 MB, 12.8 MB of it in the first dense layer's weights); with 25 MB
    /// the whole model would be one bucket that starts only when backward ends, so nothing would
    /// overlap. At 4 MB every large tensor gets its own bucket and starts as soon as its layer's
    /// backward is done (fmnist-cnn's dense weights before the two convolutions' backward, the
    /// bulk of backward's work), while the small tensors are fused so per-message latency (tens
    /// of µs per allreduce in shared memory) stays negligible.
    static let defaultBucketMegabytes = 4.0

    @Option(
        name: .customLong("bucket-mb"),
        help:
            "Megabytes (2^20 bytes) of float32 gradients per bucket; each bucket's allreduce starts as soon as backward finishes it (a larger tensor gets a bucket of its own)."
    )
    var bucketMegabytes = CommOptions.defaultBucketMegabytes

    @Option(help: "Floats per gradient bucket (overrides --bucket-mb; small values exercise many overlapped buckets).")
    var bucketFloats: Int?

    @Option(help: "Gradient wire format of the fast reduction: none (float32) or fp16 (half the bytes, about 3 significant digits).")
    var compression: GradientCompression = .none

    @Flag(
        name: .customLong("dense-factors"),
        help:
            "Send each dense weight that has a bucket of its own as its factors (every sample's output gradient and input: fc1 4160 floats a sample instead of a 3.2 M-float gradient); every rank forms the summed gradient itself, multiplying P times its own samples. For links slower than the cores (fast reduction, one micro-batch a step, one thread a rank)."
    )
    var denseFactors = false

    @Option(
        help: ArgumentHelp(
            "Write a Chrome trace (chrome://tracing, Perfetto) of each rank's steps to FILE with the rank inserted: trace.json -> trace.rank0.json, trace.rank1.json, ...",
            valueName: "file"))
    var timeline: String?

    @Option(
        help: ArgumentHelp(
            "Also poll the reductions in flight from a helper thread every N microseconds, so they advance during long layers (0: only between layers).",
            valueName: "N"))
    var progressThread = 0

    func validate() throws {
        guard progressThread >= 0 else { throw ValidationError("--progress-thread must be non-negative, got \(progressThread)") }
        guard bucketMegabytes > 0, bucketMegabytes.isFinite else { throw ValidationError("--bucket-mb must be positive, got \(bucketMegabytes)") }
        if let t = timeline {
            guard !t.isEmpty else { throw ValidationError("--timeline needs a file name") }
            // Fail now rather than after training when the traces cannot be written.
            let dir = t.contains("/") ? String(t[..<t.lastIndex(of: "/")!]) : "."
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir.isEmpty ? "/" : dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--timeline \(t): no such directory \(dir)")
            }
        }
    }

    /// Floats per bucket.
    var bucketCapacity: Int { bucketFloats ?? max(1, Int(bucketMegabytes * 1_048_576 / 4)) }

    /// Copies the bucket size, compression and dense factors into a training configuration (the
    /// last two are also verified across ranks).
    func apply(to config: inout TrainingConfiguration) {
        config.bucketCapacity = bucketCapacity
        config.compression = compression
        config.denseFactors = denseFactors
        config.verifiedOptions.append(("compression", compression.rawValue))
        config.verifiedOptions.append(("dense-factors", "\(denseFactors)"))
    }

    /// Starts the progress thread when asked for (MPI, several ranks).
    func startProgressThread(_ communicator: Communicator) throws {
        if progressThread > 0, let mpi = communicator as? MPICommunicator, mpi.size > 1 {
            try mpi.startProgressThread(interval: Double(progressThread) / 1e6)
        }
    }

    /// The callback that records and writes the timeline of a training run, when `--timeline` was given.
    func timelineRecording() -> TimelineRecording? {
        timeline.map { TimelineRecording(template: $0) }
    }

    /// A timeline whose clock starts after a barrier (a collective), when `--timeline` was given.
    func makeTimeline(_ communicator: Communicator) throws -> Timeline? {
        guard timeline != nil else { return nil }
        return try Timeline.synchronized(across: communicator)
    }

    /// Writes this rank's trace, when there is one.
    ///
    /// - Returns: the path written.
    @discardableResult
    func save(_ recorded: Timeline?) throws -> String? {
        guard let recorded, let template = timeline else { return nil }
        return try recorded.write(rankFileFor: template)
    }
}

extension GradientCompression: ExpressibleByArgument {}
