import ArgumentParser
import Dist
import Foundation

/// Where `ddp train` writes checkpoints, how often and how many it keeps, and what it resumes from.
struct CheckpointOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Write checkpoints here (rank 0): step-N.safetensors at each epoch's end and at the end, best.safetensors by --monitor.", valueName: "dir"))
    var checkpointDir: String?

    @Option(help: ArgumentHelp("Also write a checkpoint every N optimizer steps.", valueName: "N"))
    var checkpointEvery = 0

    @Option(help: ArgumentHelp("Keep only the newest K step checkpoints (0: all).", valueName: "K"))
    var keepLast = 0

    @Option(
        help: ArgumentHelp(
            "Continue from a checkpoint file, or a folder's newest step checkpoint (any number of ranks, the same global batch).", valueName: "path"))
    var resume: String?

    func validate() throws {
        guard checkpointEvery >= 0 else { throw LaunchError("--checkpoint-every must be 0 or more, got \(checkpointEvery)") }
        guard keepLast >= 0 else { throw LaunchError("--keep-last must be 0 or more, got \(keepLast)") }
        if checkpointDir == nil && checkpointEvery > 0 { throw LaunchError("--checkpoint-every \(checkpointEvery) needs --checkpoint-dir") }
        if checkpointDir == nil && keepLast > 0 { throw LaunchError("--keep-last \(keepLast) needs --checkpoint-dir") }
        if let r = resume, !FileManager.default.fileExists(atPath: r) {
            throw LaunchError("--resume \(r): no such file or directory")
        }
    }

    /// The checkpoint policy of the configuration, or nil without `--checkpoint-dir`.
    var policy: CheckpointPolicy? {
        checkpointDir.map { CheckpointPolicy(directory: $0, everySteps: checkpointEvery, keepLast: keepLast) }
    }
}
