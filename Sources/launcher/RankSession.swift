import Dist
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The error and exit policy: the only place that ends the process.
///
/// Joins MPI, runs a command's body, and ends the process: exit 0 after finalizing on success;
/// on an error, every rank prints it to stderr prefixed with `[rank r/P]`, then a job of several
/// ranks is brought down with `MPI_Abort` (a rank that exits alone would leave the others blocked
/// in a collective), except for errors every rank raises together, where each rank finalizes and
/// exits 1.
///
/// A command that calls `run(agreeingOnSetup: true)` marks the end of its preparation with
/// `endSetup(_:)`: an error thrown before it is agreed between the ranks (`SetupAgreement`), and
/// one that every rank raised alike is printed once, by rank 0, as `error: …`, every rank
/// finalizing and exiting 1 without `MPI_Abort`.
enum RankSession {
    /// Whether the running command's preparation has yet to be agreed (set by `run`, cleared by `endSetup`).
    private static var setupPending = false

    /// Runs `body` on this rank and ends the process.
    ///
    /// A process that no launcher started (`MPIRelaunch.startedByLauncher()` is false) is one rank on
    /// its own: it runs on an `InProcessCommunicator` and never starts MPI, which would spawn Open
    /// MPI's helper daemon and map its buffers for a job of one. Under `mpirun`, `srun` or any PMI
    /// launcher it joins MPI's world.
    ///
    /// - Parameters:
    ///   - agreeingOnSetup: the body calls `endSetup(_:)` before its first collective, and errors
    ///     thrown before that are agreed between the ranks.
    ///   - body: the command's work; throws to fail.
    static func run(agreeingOnSetup: Bool = false, _ body: (Communicator) throws -> Void) -> Never {
        guard MPIRelaunch.startedByLauncher() else {
            run(communicator: InProcessCommunicator(), agreeingOnSetup: agreeingOnSetup, body)
        }
        runUnderMPI(agreeingOnSetup: agreeingOnSetup, body)
    }

    /// `run`, always joining MPI (one singleton rank when no launcher started the process): for
    /// the commands that check or measure MPI itself.
    static func runUnderMPI(agreeingOnSetup: Bool = false, _ body: (MPICommunicator) throws -> Void) -> Never {
        let communicator: MPICommunicator
        do {
            communicator = try MPICommunicator()
        } catch {
            printError("[rank ?] error: \(describe(error)); hint: check the Open MPI installation (mpirun --version)")
            exit(1)
        }
        run(communicator: communicator, agreeingOnSetup: agreeingOnSetup, body)
    }

    private static func run<C: Communicator>(communicator: C, agreeingOnSetup: Bool, _ body: (C) throws -> Void) -> Never {
        setupPending = agreeingOnSetup
        do {
            try body(communicator)
            try finalize(communicator)
            exit(0)
        } catch is TrainingStopped {
            // Every rank stopped after the same step (a collective decision); the message is printed.
            StopSignals.ending(with: StopSignals.exitCode)
            try? finalize(communicator)
            exit(StopSignals.exitCode)
        } catch {
            StopSignals.ending(with: 1)
            if setupPending {
                setupPending = false
                endAgreed(error: error, message: SetupAgreement.agreedText(error), code: 1, communicator: communicator)
            }
            if error is SetupAgreement.StoppedByOtherRank {
                // The failing ranks print their errors and abort the job; wait for that.
                try? communicator.barrier()
                exit(1)
            }
            let (rank, size) = (communicator.rank, communicator.size)
            printError("[rank \(rank)/\(size)] error: \(describe(error))")
            if size > 1 && !isCollective(error) {
                communicator.abort(code: 1)
            }
            try? finalize(communicator)
            exit(1)
        }
    }

    /// Ends the preparation of a command run with `agreeingOnSetup` (a collective): returns when
    /// every rank prepared without error.
    ///
    /// - Throws: `SetupAgreement.StoppedByOtherRank` when another rank failed; `DistError.mpi`.
    static func endSetup(_ communicator: Communicator) throws {
        guard setupPending else { return }
        setupPending = false
        guard try SetupAgreement.exchange(communicator, failure: nil) == .proceed else {
            throw SetupAgreement.StoppedByOtherRank()
        }
    }

    /// Ends the process after this rank failed before any collective: agrees with the others (who
    /// reach `endSetup` or fail too), then prints the message once and exits `code` when every
    /// rank failed alike, or prints this rank's line and aborts the job otherwise.
    ///
    /// - Parameters:
    ///   - error: the error (printed as this rank's line when the ranks do not agree).
    ///   - message: its rank-independent text (printed once when they do).
    ///   - code: the exit code.
    ///   - communicator: the ranks.
    ///   - printsRaw: print `message` as it is (ArgumentParser's `Error: …` with usage) rather
    ///     than as `error: message`.
    static func endAgreed(
        error: Error, message: String, code: Int32, communicator: Communicator,
        printsRaw: Bool = false
    ) -> Never {
        StopSignals.ending(with: code)
        let (rank, size) = (communicator.rank, communicator.size)
        let verdict = (try? SetupAgreement.exchange(communicator, failure: message)) ?? .failedApart
        if verdict == .failedAlike {
            if rank == 0 { printError(printsRaw ? message : "error: \(message)") }
            try? finalize(communicator)
            exit(code)
        }
        printError("[rank \(rank)/\(size)] error: \(printsRaw ? message : describe(error))")
        if size > 1 { communicator.abort(code: code) }
        try? finalize(communicator)
        exit(code)
    }

    /// Under a launcher of several ranks, ends a command that failed before it started (a bad
    /// option: each rank parsed the same command line) through the agreement, so the message is
    /// printed once; returns when there is no such launcher or MPI cannot start.
    ///
    /// - Parameters:
    ///   - message: ArgumentParser's full message.
    ///   - code: its exit code.
    static func failBeforeStart(message: String, code: Int32) {
        guard let size = MPIRelaunch.launcherSize(), size > 1, let communicator = try? MPICommunicator() else { return }
        endAgreed(error: LaunchError(message), message: message, code: code, communicator: communicator, printsRaw: true)
    }

    /// Ends MPI if this process started it (nothing to end for an in-process rank).
    private static func finalize(_ communicator: Communicator) throws {
        try (communicator as? MPICommunicator)?.finalize()
    }

    /// Errors that every rank raises at the same point, so no rank is left in a collective.
    static func isCollective(_ error: Error) -> Bool {
        switch error as? DistError {
        case .replicaMismatch?, .gradientCheckFailed?, .selftestFailed?, .nonFiniteLoss?, .nonFiniteParameters?: return true
        default: return false
        }
    }

    static func describe(_ error: Error) -> String { String(describing: error) }
}

/// Writes one line to stderr (unbuffered, so it is not lost when MPI aborts the job).
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Writes one line to stdout and flushes it (rank 0's progress).
func printLine(_ line: String) {
    print(line)
    fflush(stdout)
}
