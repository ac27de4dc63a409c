import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the built `ddp` binary, bare or under `mpirun`, with a timeout after which the whole
/// process group (mpirun and its ranks) is killed, so a hang fails the test instead of blocking it.
struct DDPProcess {
    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
        var timedOut: Bool
    }

    /// The package root, from this file's path (Tests/launcherTests/DDPProcess.swift).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `ddp` binary the tests run: the one built beside this test bundle (same build folder and
    /// configuration, so `swift test --scratch-path X` tests X's binary), else `.build/release/ddp`.
    static let binary: String = {
        let besideBundle = Bundle.main.bundleURL.appendingPathComponent("ddp").path
        if FileManager.default.isExecutableFile(atPath: besideBundle) { return besideBundle }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            let candidate = bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("ddp").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return packageRoot.appendingPathComponent(".build/release/ddp").path
    }()

    /// `mpirun` options every multi-rank test needs: root in containers, more ranks than cores.
    static let mpirunFlags = ["--allow-run-as-root", "--oversubscribe"]

    /// Fails the test unless the binary exists.
    static func requireBinary(file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            XCTFail("\(binary) is missing; hint: run scripts/test.sh, which builds it first", file: file, line: line)
            throw XCTSkip("no binary")
        }
    }

    /// `ddp <arguments>` on `ranks` ranks under mpirun.
    static func mpirun(_ ranks: Int, _ arguments: [String], timeout: Double = 60) throws -> Outcome {
        try run(["/usr/bin/env", "mpirun"] + mpirunFlags + ["-np", "\(ranks)", binary] + arguments, timeout: timeout)
    }

    /// Several app contexts under one mpirun (MPMD: `mpirun -np 1 a : -np 1 b`), each with its own
    /// ranks and arguments.
    static func mpirun(contexts: [(ranks: Int, arguments: [String])], timeout: Double = 60) throws -> Outcome {
        var argv = ["/usr/bin/env", "mpirun"] + mpirunFlags
        for (i, c) in contexts.enumerated() {
            if i > 0 { argv.append(":") }
            argv += ["-np", "\(c.ranks)", binary] + c.arguments
        }
        return try run(argv, timeout: timeout)
    }

    /// `ddp <arguments>` with no launcher.
    static func bare(_ arguments: [String], environment: [String: String]? = nil, timeout: Double = 60) throws -> Outcome {
        try run([binary] + arguments, environment: environment, timeout: timeout)
    }

    /// Runs `argv` as the leader of its own process group (Foundation's `Process` starts children
    /// that way on Linux), so the group (mpirun and its ranks) can be killed as a whole.
    static func run(_ argv: [String], environment: [String: String]? = nil, timeout: Double) throws -> Outcome {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        var env = environment ?? ProcessInfo.processInfo.environment
        // Never inherit a launcher's identity from the test runner.
        for key in env.keys where key.hasPrefix("OMPI_COMM_WORLD") || key.hasPrefix("PMIX_") { env[key] = nil }
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        let started = Date()
        try process.run()
        let deadline = started.addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                kill(-process.processIdentifier, SIGTERM)
                Thread.sleep(forTimeInterval: 2)
                kill(-process.processIdentifier, SIGKILL)
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
            seconds: Date().timeIntervalSince(started), timedOut: timedOut)
    }
}
