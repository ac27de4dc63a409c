import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `--np N`: run this same command on N local ranks by re-executing it under `mpirun`.
struct LaunchOptions: ParsableArguments {
    @Option(
        name: .customLong("np"),
        help: ArgumentHelp(
            "Run on N local ranks by re-executing under mpirun (adds --oversubscribe beyond the core count and --allow-run-as-root as root).", valueName: "N"))
    var ranks: Int?

    /// Arguments for the mpirun that `--np` starts, e.g. a hostfile, so that the relaunch (and
    /// `--max-restarts`) covers jobs across machines too; `scripts/launch-cluster.sh` passes its own.
    @Option(
        name: .customLong("mpirun-arg"), parsing: .unconditionalSingleValue,
        help: ArgumentHelp(
            "With --np: one more argument for mpirun, placed before -np (repeat it, e.g. --mpirun-arg=--hostfile --mpirun-arg=hosts.txt); the placement is then theirs, --oversubscribe is not added.",
            valueName: "arg"))
    var mpirunArguments: [String] = []

    func validate() throws {
        if let n = ranks, n < 1 { throw ValidationError("--np must be at least 1, got \(n)") }
        if !mpirunArguments.isEmpty && ranks == nil {
            throw ValidationError("--mpirun-arg needs --np N, which starts mpirun; hint: under your own mpirun, put the argument on its command line")
        }
    }

    /// Re-executes under mpirun when `--np N` asks for more than one rank and this process was not
    /// started by a launcher; returns otherwise.
    func relaunchIfRequested() throws {
        guard let n = ranks else { return }
        if let size = MPIRelaunch.launcherSize() {
            guard size == n else {
                throw LaunchError(
                    "--np \(n) was given, but this process runs under a launcher with \(size) ranks; hint: use either mpirun -np or --np, not both")
            }
            return
        }
        guard n > 1 || !mpirunArguments.isEmpty else { return }
        try MPIRelaunch.exec(ranks: n, mpirunArguments: mpirunArguments, arguments: Array(CommandLine.arguments.dropFirst()))
    }
}

/// Finding mpirun and replacing this process with `mpirun … -np N <this executable> <arguments>`.
enum MPIRelaunch {
    /// The world size a launcher announced in the environment, if any (Open MPI, PMIx, Hydra).
    static func launcherSize(environment env: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"] {
            if let v = env[key], let n = Int(v) { return n }
        }
        return nil
    }

    /// Whether a launcher started this process, so that MPI must be joined to find the other ranks:
    /// any variable through which Open MPI, PMIx, PMI or a Slurm step (`srun`) wires ranks
    /// together (the world sizes `launcherSize` reads among them). A process started with none of
    /// them is a job of one.
    static func startedByLauncher(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        let prefixes = ["OMPI_COMM_WORLD_", "PMIX_", "PMI_", "SLURM_STEP_"]
        return environment.keys.contains { key in prefixes.contains { key.hasPrefix($0) } }
    }

    /// The first executable `name` on PATH.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// The arguments without `--np N` / `--np=N` and `--mpirun-arg ARG` / `--mpirun-arg=ARG`: what
    /// the launcher itself used.
    static func strippingRanks(_ arguments: [String]) -> [String] {
        removing(options: ["--np", "--mpirun-arg"], from: arguments)
    }

    /// The arguments without each of `options` and its value, given as `--name VALUE` or
    /// `--name=VALUE`.
    static func removing(options: [String], from arguments: [String]) -> [String] {
        var out: [String] = []
        var skip = false
        for a in arguments {
            if skip {
                skip = false
                continue
            }
            if options.contains(a) {
                skip = true
                continue
            }
            if options.contains(where: { a.hasPrefix($0 + "=") }) { continue }
            out.append(a)
        }
        return out
    }

    /// The mpirun command line for `ranks` copies of this executable, with `mpirunArguments`
    /// (`--mpirun-arg`) before `-np`.
    static func commandLine(
        mpirun: String, ranks: Int, mpirunArguments: [String] = [], executable: String,
        arguments: [String], cores: Int, isRoot: Bool
    ) -> [String] {
        // --quiet: Open MPI's own report of ranks that exited non-zero would follow an error every
        // rank agreed on and printed once (`RankSession.endAgreed`); a rank's own error still prints.
        var argv = [mpirun, "--quiet"]
        if isRoot && !mpirunArguments.contains("--allow-run-as-root") { argv.append("--allow-run-as-root") }
        // Only this machine's cores are known here: with a hostfile the slots are mpirun's to count.
        if ranks > cores && mpirunArguments.isEmpty { argv.append("--oversubscribe") }
        // Open MPI binds each of a few ranks to one core: a rank with T threads needs T of them
        // (bound to T cores each where the machine has them, else not bound at all).
        let threads = threadCount(in: arguments)
        if threads > 1 && mpirunArguments.isEmpty {
            argv += ranks * threads <= cores ? ["--map-by", "slot:PE=\(threads)"] : ["--bind-to", "none"]
        }
        argv += mpirunArguments
        argv += ["-np", "\(ranks)", executable] + strippingRanks(arguments)
        return argv
    }

    /// The value of `--threads T` / `--threads=T` among `arguments` (1 when absent or not a number).
    static func threadCount(in arguments: [String]) -> Int {
        var value: String?
        for (i, a) in arguments.enumerated() {
            if a == "--threads", i + 1 < arguments.count { value = arguments[i + 1] }
            if a.hasPrefix("--threads=") { value = String(a.dropFirst("--threads=".count)) }
        }
        return value.flatMap { Int($0) } ?? 1
    }

    /// Replaces this process with mpirun; returns only by throwing.
    static func exec(ranks: Int, mpirunArguments: [String] = [], arguments: [String]) throws -> Never {
        guard let mpirun = which("mpirun") else {
            throw LaunchError(
                "--np \(ranks) needs mpirun, which is not on PATH; hint: install Open MPI (apt-get install openmpi-bin) or run without --np as one rank")
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let argv = commandLine(
            mpirun: mpirun, ranks: ranks, mpirunArguments: mpirunArguments, executable: executable, arguments: arguments,
            cores: ProcessInfo.processInfo.activeProcessorCount, isRoot: getuid() == 0)
        fflush(stdout)
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cArgs.append(nil)
        execv(mpirun, &cArgs)
        throw LaunchError("could not execute \(mpirun): \(String(cString: strerror(errno)))")
    }
}

/// A launch problem found before MPI starts (printed by ArgumentParser as `Error: …`, exit 1).
struct LaunchError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
