import Foundation
import NN

#if canImport(Glibc)
    import Glibc
#endif

/// `ddp train --np N`: runs `mpirun` as a child process and watches it, instead of becoming it.
///
/// - A Ctrl-C or SIGTERM to this process becomes a SIGUSR1 to mpirun, which forwards it to every
///   rank: the ranks stop at the next step boundary with a checkpoint (`StopSignals`). A second
///   signal sends SIGTERM, which ends the job at once. mpirun runs in its own process group, so a
///   terminal's Ctrl-C reaches only this process (mpirun would kill the ranks on SIGINT).
/// - With `--max-restarts K`, a job that fails (any status but 0 and `StopSignals.exitCode`) is
///   started again from the newest checkpoint of `--checkpoint-dir` that loads, up to K times,
///   saying why; lines the failed attempt appended to `--metrics` past that checkpoint's epoch are
///   dropped, so the file keeps one line per epoch.
enum JobSupervisor {
    private static let lock = NSLock()
    private static var child: pid_t = 0

    /// Runs the job (and its restarts) and exits with its status.
    ///
    /// - Parameters:
    ///   - ranks: N.
    ///   - mpirunArguments: `--mpirun-arg`s (a hostfile, placement), given to every mpirun.
    ///   - arguments: this process's arguments (`--np N` is removed for the ranks).
    ///   - maxRestarts: K.
    ///   - checkpointDir: where restarts resume from.
    ///   - metrics: the metrics file to keep at one line per epoch.
    static func run(ranks: Int, mpirunArguments: [String] = [], arguments: [String], maxRestarts: Int, checkpointDir: String?, metrics: String?) -> Never {
        guard let mpirun = MPIRelaunch.which("mpirun") else {
            printError(
                "error: --np \(ranks) needs mpirun, which is not on PATH; hint: install Open MPI (apt-get install openmpi-bin) or run without --np as one rank")
            exit(1)
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        StopSignals.install(
            onFirst: { _ in
                printError("stop requested: the ranks stop after the current step and write a checkpoint (a second signal stops at once)")
                signalChild(SIGUSR1)
            },
            onSecond: { _ in
                printError("stopping at once (a second signal)")
                signalChild(SIGTERM)
            })
        let metricsStart = metrics.flatMap { try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int } ?? 0
        var args = arguments
        var restarts = 0
        while true {
            var argv = MPIRelaunch.commandLine(
                mpirun: mpirun, ranks: ranks, mpirunArguments: mpirunArguments,
                executable: executable, arguments: args,
                cores: ProcessInfo.processInfo.activeProcessorCount, isRoot: getuid() == 0)
            argv.insert(contentsOf: ["--stdin", "none"], at: 1)
            fflush(stdout)
            let status = spawnAndWait(argv)
            if status == 0 || status == StopSignals.exitCode || StopSignals.requested { exit(status) }
            guard restarts < maxRestarts, let directory = checkpointDir else {
                if maxRestarts > 0 {
                    printError(
                        "ddp: the job failed with exit status \(status) after \(restarts) restart\(restarts == 1 ? "" : "s"); giving up (--max-restarts \(maxRestarts))"
                    )
                }
                exit(status)
            }
            restarts += 1
            removeStaleTemporaries(in: directory)
            if let (path, epochs) = newestCheckpoint(in: directory) {
                printError("ddp: restart \(restarts) of \(maxRestarts): the job ended with exit status \(status); resuming from \(path)")
                if let metrics { trimMetrics(metrics, from: metricsStart, keepingEpochs: epochs) }
                args = replacingResume(in: args, with: path)
            } else {
                printError("ddp: restart \(restarts) of \(maxRestarts): the job ended with exit status \(status) before its first checkpoint; starting again")
                if let metrics { trimMetrics(metrics, from: metricsStart, keepingEpochs: 0) }
                args = replacingResume(in: args, with: nil)
            }
        }
    }

    /// Sends a signal to the running mpirun, if any.
    private static func signalChild(_ number: Int32) {
        lock.lock()
        let pid = child
        lock.unlock()
        if pid > 0 { kill(pid, number) }
    }

    /// Starts `argv` in its own process group with default signal actions, waits for it, and
    /// returns its exit status (128 + the signal's number when a signal ended it).
    static func spawnAndWait(_ argv: [String]) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in StopSignals.signals { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], nil, &attributes, cArgs, environ)
        guard spawned == 0 else {
            printError("error: could not start \(argv[0]): \(String(cString: strerror(spawned)))")
            return 1
        }
        lock.lock()
        child = pid
        lock.unlock()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        lock.lock()
        child = 0
        lock.unlock()
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// The newest `step-*.safetensors` in `directory` that reads as a whole, and the epochs it
    /// completed; nil when none does.
    static func newestCheckpoint(in directory: String) -> (path: String, epochs: Int)? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let steps = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"), let step = Int(name.dropFirst(5).dropLast(12)) else { return nil }
            return (step, name)
        }.sorted { $0.0 > $1.0 }
        for (_, name) in steps {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let checkpoint = try? Checkpoint.read(from: path) else {
                printError("ddp: skipping \(path): it does not load")
                continue
            }
            return (path, checkpoint.metadata["epoch"].flatMap { Int($0) } ?? 0)
        }
        return nil
    }

    /// Deletes `*.tmp` files a killed writer left (a checkpoint is only ever a renamed, complete file).
    static func removeStaleTemporaries(in directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
        }
    }

    /// The arguments with `--resume` set to `path` (or removed for nil).
    static func replacingResume(in arguments: [String], with path: String?) -> [String] {
        var out = MPIRelaunch.removing(options: ["--resume"], from: arguments)
        if let path { out += ["--resume", path] }
        return out
    }

    /// Drops the lines appended since byte `start` whose epoch is past `epochs` (and any `final`
    /// line among them), so the resumed job's lines for those epochs are the only ones.
    static func trimMetrics(_ path: String, from start: Int, keepingEpochs epochs: Int) {
        guard let data = FileManager.default.contents(atPath: path), data.count > start else { return }
        let head = data.prefix(start)
        let lines = String(decoding: data.dropFirst(start), as: UTF8.self).split(separator: "\n")
        let kept = lines.filter { line in
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return true }
            if object["kind"] as? String == "final" { return false }
            return (object["epoch"] as? Int).map { $0 <= epochs } ?? true
        }
        var out = Data(head)
        for line in kept { out.append(Data((line + "\n").utf8)) }
        try? out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
