import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `scripts/sim-cluster.sh` (network-namespace hosts on a private switch, `mpirun` over TCP
/// between them) for the tests, and decides once whether this machine can make such hosts.
enum SimulatedCluster {
    /// The script, from the package root.
    static let script = DDPProcess.packageRoot.appendingPathComponent("scripts/sim-cluster.sh").path

    /// Why the simulated cluster cannot run here, or nil when it can: not root, or namespaces,
    /// veth links or `mpirun` refused (e.g. an unprivileged container). Probed once, with one host.
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "the simulated cluster needs root (network namespaces, veth links); run the tests as root" }
        guard let probe = try? DDPProcess.run(["/usr/bin/env", "bash", script, "--hosts", "1", "--quiet", "--exec", "true"], timeout: 60) else {
            return "cannot run \(script)"
        }
        if probe.status == 0 { return nil }
        let line = probe.stderr.split(separator: "\n").first.map(String.init) ?? "exit status \(probe.status)"
        return "the simulated cluster cannot be made here: \(line)"
    }()

    /// Skips the calling test, printing the reason, when the cluster cannot be made.
    static func requireAvailable() throws {
        if let reason = unavailableReason {
            print("skipped: \(reason)")
            throw XCTSkip(reason)
        }
    }

    /// `sim-cluster.sh OPTIONS -- ddp-arguments` with this test build's `ddp` as the binary and
    /// `environment` added (it reaches `launch-cluster.sh` and, through mpirun, every rank).
    static func run(
        _ options: [String], _ arguments: [String], environment: [String: String] = [:],
        timeout: Double = 120
    ) throws -> DDPProcess.Outcome {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        env["DDP"] = DDPProcess.binary
        return try DDPProcess.run(["/usr/bin/env", "bash", script] + options + ["--"] + arguments, environment: env, timeout: timeout)
    }

    /// The bytes each host sent over its link, from the script's closing lines
    /// ("sim-cluster: node1 (10.77.0.2) sent N bytes, received M bytes over its link").
    static func bytesSent(_ stderr: String) -> [String: Int] {
        var sent: [String: Int] = [:]
        for line in stderr.split(separator: "\n") where line.hasPrefix("sim-cluster: node") && line.contains(" sent ") {
            let words = line.split(separator: " ")
            guard let host = words.dropFirst().first, let i = words.firstIndex(of: "sent"), i + 1 < words.count,
                let n = Int(words[i + 1])
            else { continue }
            sent[String(host)] = n
        }
        return sent
    }

    /// The host of each rank, from Open MPI's `--report-bindings` lines ("[node1:123] MCW rank 2 ...").
    static func rankHosts(_ stderr: String) -> [Int: String] {
        var hosts: [Int: String] = [:]
        for line in stderr.split(separator: "\n") {
            guard line.hasPrefix("["), let colon = line.firstIndex(of: ":"), let r = line.range(of: "MCW rank ") else { continue }
            let host = String(line[line.index(after: line.startIndex) ..< colon])
            if let rank = Int(line[r.upperBound...].prefix { $0.isNumber }) { hosts[rank] = host }
        }
        return hosts
    }
}
