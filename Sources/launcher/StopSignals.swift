import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Graceful stop: SIGINT, SIGTERM or SIGUSR1 asks the run to stop at the next step boundary,
/// where every rank agrees (the request rides on the step's loss allreduce), rank 0 writes a
/// checkpoint and every rank exits with `exitCode`; a second signal ends the process at once.
///
/// SIGUSR1 is there for `mpirun`, which forwards it to every rank (SIGINT and SIGTERM make mpirun
/// kill the ranks instead); `ddp train --np N` turns a Ctrl-C or SIGTERM into a SIGUSR1 to mpirun.
enum StopSignals {
    /// The exit status of a run stopped by a signal after its checkpoint (EX_TEMPFAIL: try again
    /// later, with `--resume`).
    static let exitCode: Int32 = 75
    /// The signals that ask for a stop.
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGUSR1]

    private static let lock = NSLock()
    private static var received = 0
    private static var endingCode: Int32?
    private static var sources: [DispatchSourceSignal] = []

    /// Whether a stop was asked for.
    static var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return received > 0
    }

    /// Starts handling the signals: the first is recorded (and `onFirst` runs), the second ends
    /// the process with status 128 + the signal's number.
    ///
    /// - Parameter onFirst: what to do at the first signal (print a line, forward it).
    static func install(onFirst: @escaping (Int32) -> Void = { _ in }, onSecond: ((Int32) -> Void)? = nil) {
        // A file-size limit (ulimit -f) must make a checkpoint write fail with EFBIG and a message,
        // not end the process silently with SIGXFSZ.
        signal(SIGXFSZ, SIG_IGN)
        for number in signals {
            // Dispatch sees the signal only when its default action (ending the process) is off.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                lock.lock()
                received += 1
                let count = received, ending = endingCode
                lock.unlock()
                if let ending {
                    // The process is already ending (an error it reported, or a stop): a signal
                    // now, such as mpirun's SIGTERM after another rank exited, ends it quietly.
                    _exit(ending)
                } else if count == 1 {
                    onFirst(number)
                } else if let onSecond {
                    onSecond(number)
                } else {
                    printError("stopping at once (a second signal)")
                    _exit(128 + number)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

extension StopSignals {
    /// Marks the process as ending with `code`: from now on a signal ends it at once with that
    /// status and prints nothing, so a rank still finalizing when `mpirun` terminates the job
    /// does not add a "stop requested" line to an error already reported.
    static func ending(with code: Int32) {
        lock.lock()
        endingCode = code
        lock.unlock()
    }
}

/// Thrown on every rank when a stop request ended training at a step boundary; `RankSession`
/// finalizes and exits with `StopSignals.exitCode`.
struct TrainingStopped: Error, CustomStringConvertible {
    let description: String
}
