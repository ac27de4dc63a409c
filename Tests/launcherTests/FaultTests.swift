import Foundation
import NN
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Faults a long distributed run meets: a rank that hangs (the stall inspector names it and the
/// job ends), a signal (every rank stops after the same step with a checkpoint, and `--resume`
/// continues bit for bit), a rank killed mid-run (`--max-restarts` resumes from the newest
/// checkpoint, and the result equals an uninterrupted run's bit for bit), and kills or a full disk
/// while checkpoints are written. Runs use the deterministic reduction, so 2 and 4 ranks give the
/// same bits as one.
final class FaultTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self, exclusive: true)
    }

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-faults-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// 2 epochs of 8 steps (256 synthetic samples, batch 32) of an mlp, deterministic reduction.
    let run = [
        "train", "--synthetic-samples", "256", "--model", "mlp", "--batch-size", "32", "--log-interval", "0",
        "--epochs", "2", "--reduction", "deterministic", "--optimizer", "sgd", "--lr", "0.05"
    ]

    /// `mpirun -np ranks ddp <arguments>` with extra environment variables for the ranks.
    func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String], timeout: Double) throws -> DDPProcess.Outcome {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        return try DDPProcess.run(
            ["/usr/bin/env", "mpirun"] + DDPProcess.mpirunFlags + ["-np", "\(ranks)", DDPProcess.binary] + arguments,
            environment: env, timeout: timeout)
    }

    /// `ddp <arguments>` with extra environment variables.
    func ddp(_ arguments: [String], environment: [String: String] = [:], timeout: Double) throws -> DDPProcess.Outcome {
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        return try DDPProcess.bare(arguments, environment: env, timeout: timeout)
    }

    /// The model's tensors in a checkpoint (optimizer buffers included: they must match too).
    func tensors(_ path: String) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.read(from: path)
        return checkpoint.tensors.mapValues(\.storage)
    }

    /// Processes whose command line contains `marker` (a unique path of the test).
    func processes(containing marker: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.filter { Int($0) != nil }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(marker) ? "\(pid): \(line)" : nil
        }
    }

    /// The reference: the whole run uninterrupted on one rank.
    func reference(in dir: String) throws -> [String: [Float]] {
        let whole = try DDPProcess.bare(run + ["--checkpoint-dir", dir + "/whole"], timeout: 120)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        return try tensors(dir + "/whole/step-00000016.safetensors")
    }

    // MARK: stall inspector

    func testStalledRankIsNamedAndTheJobEndsWithoutLeavingProcesses() throws {
        let dir = try temporaryDirectory()
        let r = try mpirun(
            2, run + ["--stall-timeout", "2", "--checkpoint-dir", dir + "/ck"],
            environment: ["DDP_TEST_STALL": "1:epoch 1 step 3"], timeout: 90)
        XCTAssertFalse(r.timedOut, "the job hung: \(r.stderr)")
        XCTAssertNotEqual(r.status, 0)
        let message = InferenceFixtures.errorLines(r.stderr).first { $0.contains("stall:") } ?? r.stderr
        XCTAssertTrue(message.contains("stall: rank 0 waited"), message)
        XCTAssertTrue(message.contains("of epoch 1 step 3"), message)
        XCTAssertTrue(message.contains("rank 1 of 2 missing: rank 1 did not answer"), message)
        XCTAssertTrue(message.contains("--stall-timeout (now 2.0 s)"), message)
        // 2 s of waiting, up to 2 s of asking, the abort: well under the 90 s limit.
        XCTAssertLessThan(r.seconds, 45, "took \(r.seconds) s")
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(processes(containing: dir), [], "processes left behind")
    }

    // MARK: graceful stop

    func testSignalStopsEveryRankAtAStepBoundaryAndResumeIsBitForBit() throws {
        let dir = try temporaryDirectory()
        let expected = try reference(in: dir)
        // Rank 1 gets SIGTERM at step 3: both ranks stop after the same step, rank 0 checkpoints.
        let ck = dir + "/stopped"
        let stopped = try mpirun(2, run + ["--checkpoint-dir", ck], environment: ["DDP_TEST_SIGNAL": "1:epoch 1 step 3"], timeout: 120)
        XCTAssertEqual(stopped.status, 75, "documented exit status of a graceful stop: \(stopped.stderr)")
        XCTAssertTrue(stopped.stdout.contains("stopped by a signal after step"), stopped.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: ck).filter { $0.hasPrefix("step-") }
        XCTAssertEqual(files.count, 1, "one checkpoint, at the stop: \(files)")
        let resumed = try mpirun(2, run + ["--checkpoint-dir", ck, "--resume", ck], environment: [:], timeout: 120)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try tensors(ck + "/step-00000016.safetensors"), expected, "resumed run differs from the uninterrupted one")
    }

    // MARK: restarts

    /// Kills rank `victim` of `ranks` with SIGKILL at a random step; `--max-restarts` resumes from
    /// the newest checkpoint and the final tensors equal the uninterrupted run's bit for bit.
    func checkRestart(ranks: Int, victim: Int, expected: [String: [Float]], dir: String) throws {
        let step = Int.random(in: 2 ... 14)
        let phase = "epoch \(step <= 8 ? 1 : 2) step \(step <= 8 ? step : step - 8)"
        let ck = dir + "/restart\(ranks)", metrics = dir + "/metrics\(ranks).jsonl"
        let r = try ddp(
            run + [
                "--np", "\(ranks)", "--max-restarts", "2", "--checkpoint-dir", ck, "--checkpoint-every", "3",
                "--metrics", metrics
            ],
            environment: ["DDP_TEST_KILL": "\(victim):\(phase):\(dir)/killed\(ranks)"], timeout: 240)
        let context = "ranks \(ranks), rank \(victim) killed at \(phase)\n\(r.stderr)"
        XCTAssertEqual(r.status, 0, context)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/killed\(ranks)"), "the kill did not happen: \(context)")
        XCTAssertTrue(r.stderr.contains("ddp: restart 1 of 2: the job ended with exit status"), context)
        XCTAssertEqual(try tensors(ck + "/step-00000016.safetensors"), expected, "final tensors differ: \(context)")
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        XCTAssertEqual(lines.filter { $0["kind"] as? String == "epoch" }.compactMap { $0["epoch"] as? Int }, [1, 2], context)
        XCTAssertEqual(lines.filter { $0["kind"] as? String == "final" }.count, 1, context)
    }

    func testKilledRankIsRestartedFromTheNewestCheckpointBitForBitOn2And4Ranks() throws {
        let dir = try temporaryDirectory()
        let expected = try reference(in: dir)
        try checkRestart(ranks: 2, victim: 1, expected: expected, dir: dir)
        try checkRestart(ranks: 4, victim: Int.random(in: 0 ... 3), expected: expected, dir: dir)
    }

    func testMaxRestartsNeedsNpAndACheckpointDirectory() throws {
        let bare = try DDPProcess.bare(run + ["--max-restarts", "1"], timeout: 30)
        XCTAssertNotEqual(bare.status, 0)
        XCTAssertTrue(bare.stderr.contains("--max-restarts 1 needs --np N"), bare.stderr)
        let noDir = try DDPProcess.bare(run + ["--np", "2", "--max-restarts", "1"], timeout: 30)
        XCTAssertNotEqual(noDir.status, 0)
        XCTAssertTrue(noDir.stderr.contains("--max-restarts 1 needs --checkpoint-dir"), noDir.stderr)
        let noNp = try DDPProcess.bare(run + ["--mpirun-arg=--hostfile", "--mpirun-arg=hosts.txt"], timeout: 30)
        XCTAssertNotEqual(noNp.status, 0)
        XCTAssertTrue(noNp.stderr.contains("--mpirun-arg needs --np N"), noNp.stderr)
    }

    /// `MAX_RESTARTS=K scripts/launch-cluster.sh` hands the job to `ddp train --np N --max-restarts K`
    /// with the script's own mpirun arguments (the run itself: `SimulatedClusterTests`).
    func testClusterScriptRestartsThroughTheSupervisor() throws {
        let dir = try temporaryDirectory()
        let hostfile = dir + "/hosts"
        try "node0 slots=2\nnode1 slots=2\n".write(toFile: hostfile, atomically: true, encoding: .utf8)
        let script = DDPProcess.packageRoot.appendingPathComponent("scripts/launch-cluster.sh").path
        var env = ProcessInfo.processInfo.environment
        env.merge(["DDP": DDPProcess.binary, "DRY_RUN": "1", "MAX_RESTARTS": "3"]) { $1 }
        let r = try DDPProcess.run(
            ["/usr/bin/env", "bash", script, hostfile, "4", "--model", "mlp", "--checkpoint-dir", dir],
            environment: env, timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        let words = r.stdout.split(separator: " ").map(String.init)
        XCTAssertTrue(words.first?.hasSuffix("/ddp") == true, r.stdout)  // the binary, its path resolved by the script
        XCTAssertEqual(Array(words.dropFirst().prefix(5)), ["train", "--np", "4", "--max-restarts", "3"], r.stdout)
        XCTAssertTrue(words.contains("--mpirun-arg=--hostfile") && words.contains("--mpirun-arg=\(hostfile)"), r.stdout)
        XCTAssertFalse(words.contains("mpirun") || words.contains("-np"), "the supervisor starts mpirun, not the script: \(r.stdout)")
        env["MAX_RESTARTS"] = "2"
        let gradcheck = try DDPProcess.run(["/usr/bin/env", "bash", script, hostfile, "4", "gradcheck"], environment: env, timeout: 30)
        XCTAssertNotEqual(gradcheck.status, 0)
        XCTAssertTrue(gradcheck.stderr.contains("MAX_RESTARTS restarts train jobs only"), gradcheck.stderr)
    }

    // MARK: checkpoint crash-safety

    /// Kills a bare run that writes a checkpoint every step with SIGKILL, resuming each time: the
    /// newest step file always loads, a stale `.tmp` is never taken for a checkpoint and is removed
    /// by the next run.
    ///
    /// The kill moments are what the test varies, so they are a seeded, stratified set rather than
    /// many random draws: each run is killed once it has finished a checkpoint of its own (so the
    /// start-up, which holds no write, is not where the kills go), after a delay from its own slice
    /// of `window`, which spans several write cycles (open, write, fsync, rename, removal of the
    /// oldest file). Sixteen slices reach every phase of the cycle (kills inside a write, which
    /// leave a `.tmp`, and kills between writes); more kills would repeat phases already reached.
    func testCheckpointsSurviveKillsOfTheWriterSpreadOverTheWriteCycle() throws {
        let dir = try temporaryDirectory()
        let ck = dir + "/ck"
        // Epochs enough that no run of the loop reaches the end, however fast the machine writes.
        let long = run.map { $0 == "2" ? "100000" : $0 } + ["--checkpoint-dir", ck, "--checkpoint-every", "1", "--keep-last", "3"]
        let kills = 16, window = 0.06, seed: UInt64 = 0x4B11
        var generator = SplitMix64(seed: seed)
        // One delay from each slice of the window, the slices in a shuffled order.
        let delays = (0 ..< kills).map { (Double($0) + Double.random(in: 0 ..< 1, using: &generator)) * window / Double(kills) }
            .shuffled(using: &generator)
        var staleSeen = 0
        func stepFiles() -> Set<String> {
            Set(((try? FileManager.default.contentsOfDirectory(atPath: ck)) ?? []).filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") })
        }
        for (index, delay) in delays.enumerated() {
            let before = stepFiles()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: DDPProcess.binary)
            process.arguments = long + (before.isEmpty ? [] : ["--resume", ck])
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let context = "kill \(index) (seed \(seed), \(Int(delay * 1000)) ms after its first checkpoint)"
            // Wait for a checkpoint this run wrote.
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning && stepFiles().isSubset(of: before) && Date() < deadline { usleep(1000) }
            guard process.isRunning else {
                process.waitUntilExit()
                XCTFail("\(context): the run ended by itself with status \(process.terminationStatus)")
                return
            }
            guard Date() < deadline else {
                Glibc.kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                XCTFail("\(context): no checkpoint written within 60 s")
                return
            }
            Thread.sleep(forTimeInterval: delay)
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let names = (try? FileManager.default.contentsOfDirectory(atPath: ck)) ?? []
            if names.contains(where: { $0.hasSuffix(".tmp") }) { staleSeen += 1 }
            let newest = try XCTUnwrap(stepFiles().sorted().last, "\(context): no step file")
            XCTAssertNoThrow(try Checkpoint.read(from: ck + "/" + newest), "\(context): \(newest) does not load")
        }
        // The next run resumes from the newest file and removes any stale temporary file.
        let final = try DDPProcess.bare(long + ["--resume", ck, "--stop-after", "1"], timeout: 60)
        XCTAssertEqual(final.status, 0, final.stderr)
        let left = try FileManager.default.contentsOfDirectory(atPath: ck)
        XCTAssertFalse(left.contains { $0.hasSuffix(".tmp") }, "stale temporary files left: \(left)")
        print("checkpoint kills survived: \(kills); a stale .tmp was present after \(staleSeen) of them")
    }

    /// A full disk (a small tmpfs that holds one checkpoint and a half) while a checkpoint is
    /// written: one clear error, the older checkpoint unchanged, no temporary file left, and every
    /// rank ends. Needs root (mount); skips with the reason elsewhere.
    func testFullDiskGivesOneErrorKeepsOlderCheckpointsAndEndsEveryRank() throws {
        let dir = try temporaryDirectory()
        let first = try DDPProcess.bare(run + ["--checkpoint-dir", dir + "/ck", "--stop-after", "4"], timeout: 60)
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = InferenceFixtures.bytes(dir + "/ck/step-00000004.safetensors")
        XCTAssertFalse(before.isEmpty)
        let disk = dir + "/disk"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let size = (before.count * 3 / 2 + 4095) / 4096 * 4096
        let mount = try DDPProcess.run(["/bin/mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", disk], timeout: 30)
        guard mount.status == 0 else {
            throw XCTSkip("cannot mount a small tmpfs as a full disk (needs root): \(mount.stderr)")
        }
        addTeardownBlock { _ = try? DDPProcess.run(["/bin/umount", disk], timeout: 30) }
        let older = disk + "/step-00000004.safetensors"
        FileManager.default.createFile(atPath: older, contents: Data(before))
        for ranks in [1, 2] {
            let arguments = run + ["--checkpoint-dir", disk, "--resume", disk, "--checkpoint-every", "1"]
            let r = ranks == 1 ? try DDPProcess.bare(arguments, timeout: 90) : try DDPProcess.mpirun(ranks, arguments, timeout: 90)
            XCTAssertFalse(r.timedOut, "a rank was left running: \(r.stderr)")
            XCTAssertNotEqual(r.status, 0)
            let errors = InferenceFixtures.errorLines(r.stderr)
            XCTAssertEqual(errors.count, 1, r.stderr)
            XCTAssertTrue(
                errors.first?.contains("cannot write checkpoint \(disk)/step-00000005.safetensors.tmp: write failed: No space left on device") == true, r.stderr
            )
            XCTAssertEqual(InferenceFixtures.bytes(older), before, "the older checkpoint changed")
            let names = try FileManager.default.contentsOfDirectory(atPath: disk)
            XCTAssertEqual(names, ["step-00000004.safetensors"], "P=\(ranks)")
        }
    }

    // MARK: data read errors

    /// Class folders where one listed image cannot be read when its turn comes (a dangling link:
    /// the file went away after the listing; a folder named like an image): every rank's error
    /// names the file, and the job ends.
    func testUnreadableImageInAFolderIsNamedOnEveryRank() throws {
        let dir = try temporaryDirectory()
        for (k, name) in ["a", "b"].enumerated() {
            let folder = "\(dir)/data/\(name)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for i in 0 ..< 6 {
                _ = InferenceFixtures.write(
                    InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: UInt8(40 * k + i), count: 64)),
                    to: "\(folder)/\(i).pgm")
            }
        }
        let gone = "\(dir)/data/a/gone.pgm", folderImage = "\(dir)/data/b/folder.pgm"
        try FileManager.default.createSymbolicLink(atPath: gone, withDestinationPath: "\(dir)/nowhere.pgm")
        for (bad, message) in [(gone, "dataset file not found: \(gone)"), (folderImage, "cannot read \(folderImage): it is a directory")] {
            if bad == folderImage {
                try FileManager.default.removeItem(atPath: gone)
                try FileManager.default.createDirectory(atPath: folderImage, withIntermediateDirectories: true)
            }
            for ranks in [1, 2] {
                let arguments = ["train", "--data", "\(dir)/data", "--model", "mlp", "--batch-size", "4", "--epochs", "1", "--log-interval", "0"]
                let r = ranks == 1 ? try DDPProcess.bare(arguments, timeout: 60) : try DDPProcess.mpirun(ranks, arguments, timeout: 60)
                XCTAssertFalse(r.timedOut, "a rank was left running: \(r.stderr)")
                XCTAssertNotEqual(r.status, 0)
                let errors = InferenceFixtures.errorLines(r.stderr)
                XCTAssertTrue((1 ... ranks).contains(errors.count), r.stderr)
                for line in errors { XCTAssertTrue(line.contains(message), "P=\(ranks): \(line)") }
            }
        }
    }
}
