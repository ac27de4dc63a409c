#if canImport(Glibc)
import Glibc
#endif
import Dist
import Foundation

/// The error and exit policy: the only place that ends the process.
///
/// Joins MPI, runs a command's body, and ends the process: exit 0 after finalizing on success;
/// on an error, every rank prints it to stderr prefixed with `[rank r/P]`, then a job of several
/// ranks is brought down with `MPI_Abort` (a rank that exits alone would leave the others blocked
/// in a collective), except for errors every rank raises together, where each rank finalizes and
/// exits 1.
enum RankSession {
    /// Runs `body` on this rank and ends the process.
    ///
    /// - Parameter body: the command's work; throws to fail.
    static func run(_ body: (MPICommunicator) throws -> Void) -> Never {
        let communicator: MPICommunicator
        do {
            communicator = try MPICommunicator()
        } catch {
            printError("[rank ?] error: \(describe(error)); hint: check the Open MPI installation (mpirun --version)")
            exit(1)
        }
        do {
            try body(communicator)
            try communicator.finalize()
            exit(0)
        } catch is TrainingStopped {
            // Every rank stopped after the same step (a collective decision); the message is printed.
            try? communicator.finalize()
            exit(StopSignals.exitCode)
        } catch {
            let (rank, size) = (communicator.rank, communicator.size)
            printError("[rank \(rank)/\(size)] error: \(describe(error))")
            if size > 1 && !isCollective(error) {
                communicator.abort(code: 1)
            }
            try? communicator.finalize()
            exit(1)
        }
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
