import ArgumentParser
import Dist
import Foundation

/// What `ddp train` does about faults: the stall inspector's timeout, and restarts of a failed job.
struct FaultOptions: ParsableArguments {
    /// The default stall timeout: far longer than any step, checkpoint or evaluation of the
    /// built-in models, short enough that a hung job ends within minutes instead of never.
    static let defaultStallTimeout = 120.0

    @Option(
        help: ArgumentHelp(
            "When a rank has waited this long in one collective, ask the others where they are; if any has not joined, print which ranks are missing from which step's reduction and end the job (0: wait forever).",
            valueName: "seconds"))
    var stallTimeout = FaultOptions.defaultStallTimeout

    @Option(help: ArgumentHelp("With --np N and --checkpoint-dir: relaunch a failed job from its newest complete checkpoint, up to K times.", valueName: "K"))
    var maxRestarts = 0

    func validate() throws {
        guard maxRestarts >= 0 else { throw ValidationError("--max-restarts must be 0 or more, got \(maxRestarts)") }
        guard stallTimeout.isFinite, stallTimeout >= 0 else {
            throw ValidationError("--stall-timeout must be 0 or more seconds, got \(stallTimeout)")
        }
    }

    /// With `--np N` (N > 1) outside any launcher: runs the job under `JobSupervisor` (signals
    /// become a graceful stop, failures a restart, up to `--max-restarts`), which exits with the
    /// job's status and does not return. Returns false when this process is a rank (or runs
    /// bare), so the caller trains.
    ///
    /// - Throws: `LaunchError` when `--max-restarts` lacks `--np` or `--checkpoint-dir`.
    func superviseIfRequested(launch: LaunchOptions, checkpointDir: String?, metrics: String?) throws -> Bool {
        guard MPIRelaunch.launcherSize() == nil else { return false }
        guard let ranks = launch.ranks, ranks > 1 || !launch.mpirunArguments.isEmpty else {
            if maxRestarts > 0 {
                throw LaunchError(
                    "--max-restarts \(maxRestarts) needs --np N, which launches (and relaunches) mpirun; hint: under your own launcher, relaunch with --resume CHECKPOINT_DIR"
                )
            }
            return false
        }
        if maxRestarts > 0 && checkpointDir == nil {
            throw LaunchError("--max-restarts \(maxRestarts) needs --checkpoint-dir, where a restarted job resumes from")
        }
        JobSupervisor.run(
            ranks: ranks, mpirunArguments: launch.mpirunArguments, arguments: Array(CommandLine.arguments.dropFirst()), maxRestarts: maxRestarts,
            checkpointDir: checkpointDir, metrics: metrics)
    }

    /// Arms the communicator's stall inspector (MPI, with more than one rank).
    func apply(to communicator: Communicator) {
        (communicator as? MPICommunicator)?.stallTimeout = stallTimeout > 0 ? stallTimeout : nil
    }
}
