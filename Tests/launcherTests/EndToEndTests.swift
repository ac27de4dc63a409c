import NN
import XCTest

/// Runs the built `ddp` under `mpirun -np P` (and bare) and checks exit codes and output.
final class EndToEndTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
    }

    func testSelftestAllreduceSumsToXTimesP() throws {
        for p in [2, 3, 4] {
            let r = try DDPProcess.mpirun(p, ["selftest", "allreduce"], timeout: 60)
            XCTAssertFalse(r.timedOut, "P=\(p) hung")
            XCTAssertEqual(r.status, 0, "P=\(p): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("selftest allreduce: ok (\(p) ranks"), r.stdout)
        }
    }

    func testEveryRankReturnsMPIErrorsInsteadOfAborting() throws {
        let r = try DDPProcess.mpirun(2, ["selftest", "errors"], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("selftest errors: ok (2 ranks; 0 with an error handler other than MPI_ERRORS_RETURN)"), r.stdout)
    }

    func testGradcheckPassesOnOneToFourRanks() throws {
        for p in [1, 2, 3, 4] {
            for model in ["tiny", "mlp"] {
                let r = try DDPProcess.mpirun(p, ["gradcheck", "--model", model, "--batch", "12", "--steps", "2", "--samples", "36"], timeout: 90)
                XCTAssertFalse(r.timedOut, "P=\(p) \(model) hung")
                XCTAssertEqual(r.status, 0, "P=\(p) \(model): \(r.stdout)\n\(r.stderr)")
                XCTAssertTrue(r.stdout.contains("\(p) rank"), r.stdout)
                XCTAssertTrue(r.stdout.contains("\nok: worst relative error"), r.stdout)
                // One line per parameter tensor, printed by rank 0 only.
                let rows = r.stdout.split(separator: "\n").filter { $0.first?.isNumber == true && $0.contains(".dense.weight") }
                XCTAssertEqual(rows.count, model == "mlp" ? 2 : 1, r.stdout)
            }
        }
    }

    /// Every model the trainer can build (the built-in list grows as layers arrive).
    func testGradcheckPassesForEveryBuiltinModel() throws {
        for model in ModelSpec.builtinNames {
            let r = try DDPProcess.mpirun(
                3,
                [
                    "gradcheck", "--model", model, "--batch", "9", "--steps", "2", "--samples", "18",
                    "--sample-shape", "3,16,16", "--classes", "5"
                ], timeout: 120)
            XCTAssertFalse(r.timedOut, "\(model) hung")
            XCTAssertEqual(r.status, 0, "\(model): \(r.stdout)\n\(r.stderr)")
        }
    }

    func testGradcheckWithSmallOverlappedBucketsAndDeterministicReduction() throws {
        for extra in [["--bucket-floats", "300"], ["--reduction", "deterministic", "--tolerance", "0"]] {
            let r = try DDPProcess.mpirun(3, ["gradcheck", "--model", "mlp", "--batch", "10", "--steps", "2", "--samples", "30"] + extra, timeout: 60)
            XCTAssertFalse(r.timedOut)
            XCTAssertEqual(r.status, 0, "\(extra): \(r.stdout)\n\(r.stderr)")
        }
    }

    func testGradcheckOverToleranceExitsNonZero() throws {
        // Two ranks sum in a different order than one: errors of ~1e-7 exceed a zero tolerance.
        let r = try DDPProcess.mpirun(2, ["gradcheck", "--model", "mlp", "--tolerance", "0"], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("FAILED"), r.stdout)
        XCTAssertTrue(r.stderr.contains("[rank 0/2] error: gradient check failed"), r.stderr)
    }

    func testRanksWithDifferentOptionsEndWithAClearError() throws {
        // MPMD: rank 0 gets --model tiny, rank 1 --model mlp. Synthetic data: the replicas are
        // compared before step 1, so loading Fashion-MNIST on every rank would only add time.
        let synthetic = ["--synthetic-samples", "64"]
        let r = try DDPProcess.mpirun(
            contexts: [(1, ["train", "--model", "tiny"] + synthetic), (1, ["train", "--model", "mlp"] + synthetic)],
            timeout: 30)
        XCTAssertFalse(r.timedOut, "mismatched ranks must not hang")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("error: ranks built different replicas: model: rank 1 has mlp, rank 0 has tiny"), r.stderr)
        XCTAssertTrue(r.stderr.contains("[rank 0/2]") || r.stderr.contains("[rank 1/2]"), r.stderr)

        let lr = try DDPProcess.mpirun(contexts: [(2, ["train", "--lr", "0.1"] + synthetic), (1, ["train", "--lr", "0.2"] + synthetic)], timeout: 30)
        XCTAssertFalse(lr.timedOut)
        XCTAssertNotEqual(lr.status, 0)
        XCTAssertTrue(lr.stderr.contains("option lr: rank 2 has 0.2, rank 0 has 0.1"), lr.stderr)
    }

    func testOneFailingRankBringsTheJobDownWithinSeconds() throws {
        // MPMD: ranks 0 and 2 load the default data, rank 1 a folder that does not exist.
        let r = try DDPProcess.mpirun(
            contexts: [(1, ["train"]), (1, ["train", "--data", "/nonexistent/data"]), (1, ["train"])],
            timeout: 30)
        XCTAssertFalse(r.timedOut, "the other ranks were left blocked in a collective")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertLessThan(r.seconds, 15)
        XCTAssertTrue(r.stderr.contains("[rank 1/3] error: rank 1 could not load its data"), r.stderr)
    }

    func testBareTrainRunsAsOneRank() throws {
        let r = try DDPProcess.bare(["train", "--epochs", "1", "--synthetic-samples", "256", "--batch-size", "32"], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("1 rank, global batch 32"), r.stdout)
        XCTAssertTrue(r.stdout.contains("epoch 1: train loss"), r.stdout)
    }

    func testNpRelaunchesUnderMpirunAndOnlyRankZeroPrints() throws {
        let r = try DDPProcess.bare(["train", "--np", "3", "--synthetic-samples", "256", "--batch-size", "30", "--log-interval", "0"], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("3 ranks, global batch 30 (10 per rank)"), r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "epoch 1: train loss").count - 1, 1, "rank 0 alone prints")
    }

    func testNpWithoutMpirunSaysHowToInstallIt() throws {
        let r = try DDPProcess.bare(["train", "--np", "2"], environment: ["PATH": "/nonexistent"], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("needs mpirun") && r.stderr.contains("openmpi-bin"), r.stderr)
    }

    func testBadOptionFailsBeforeTraining() throws {
        let r = try DDPProcess.mpirun(2, ["train", "--batch-size", "1"], timeout: 30)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("invalid global batch size: 1 is smaller than the 2 ranks"), r.stderr)
    }
}

/// The harness itself: a job that outlives its timeout is killed, ranks included.
final class DDPProcessTests: XCTestCase {
    override func setUpWithError() throws { try ProcessTestLock.hold(for: self, exclusive: true) }

    func testTimeoutKillsTheWholeJob() throws {
        let marker = "\(Int.random(in: 100_000 ..< 999_999))"
        let r = try DDPProcess.run(
            ["/usr/bin/env", "mpirun"] + DDPProcess.mpirunFlags + ["-np", "2", "/bin/sh", "-c", "sleep 30; echo \(marker)"],
            timeout: 1)
        XCTAssertTrue(r.timedOut)
        XCTAssertLessThan(r.seconds, 10)
        Thread.sleep(forTimeInterval: 0.5)
        let ps = try DDPProcess.run(["/bin/sh", "-c", "ps -eo args | grep -c '[s]leep 30; echo \(marker)' || true"], timeout: 10)
        XCTAssertEqual(ps.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0", "ranks survived the timeout")
    }
}

/// The communication options and benchmarks, end to end under mpirun.
final class CommunicationEndToEndTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
    }

    /// Buckets polled between layers (many small buckets in flight) give the one-rank result.
    func testGradcheckWithTinyBucketsAndPollingPasses() throws {
        for p in [2, 3] {
            for thread in [[], ["--progress-thread", "50"]] {
                let r = try DDPProcess.mpirun(p, ["gradcheck", "--model", "tiny", "--bucket-floats", "16"] + thread, timeout: 90)
                XCTAssertFalse(r.timedOut)
                XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
                XCTAssertTrue(r.stdout.contains("ok: worst relative error"), r.stdout)
            }
        }
    }

    func testGradcheckWithFp16PassesAtItsOwnTolerance() throws {
        for p in [2, 3] {
            let r = try DDPProcess.mpirun(p, ["gradcheck", "--model", "mlp", "--compression", "fp16", "--bucket-floats", "256"], timeout: 90)
            XCTAssertFalse(r.timedOut)
            XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
            XCTAssertTrue(r.stdout.contains("fp16 wire") && r.stdout.contains("tolerance 1.00e-02"), r.stdout)
        }
        // That fp16 needs --reduction fast is checked while parsing: CommandParsingTests.
    }

    /// Each rank writes its own Chrome trace with the phases of every step.
    func testTrainWritesOneTimelinePerRank() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-timeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let template = dir.appendingPathComponent("trace.json").path
        let r = try DDPProcess.mpirun(
            2,
            [
                "train", "--synthetic-samples", "128", "--batch-size", "16", "--max-steps", "3",
                "--bucket-floats", "64", "--progress-thread", "100", "--timeline", template
            ], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        for rank in 0 ..< 2 {
            let data = try Data(contentsOf: dir.appendingPathComponent("trace.rank\(rank).json"))
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            let events = try XCTUnwrap(object?["traceEvents"] as? [[String: Any]])
            let spans = events.filter { $0["ph"] as? String == "X" }
            XCTAssertTrue(spans.allSatisfy { $0["pid"] as? Int == rank && $0["ts"] is Double && $0["dur"] is Double })
            let names = Set(spans.compactMap { ($0["name"] as? String)?.split(separator: " ").prefix(2).joined(separator: " ") })
            for expected in ["forward", "optimizer step", "wait for", "allreduce bucket"] {
                XCTAssertTrue(names.contains(expected), "rank \(rank) lacks \(expected): \(names.sorted())")
            }
            XCTAssertTrue(names.contains { $0.hasPrefix("backward ") }, "\(names)")
            XCTAssertEqual(spans.filter { $0["name"] as? String == "forward" }.count, 3, "one forward per step")
        }
    }

    func testBenchAllreducePrintsATableAndWritesCSV() throws {
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-allreduce-\(UUID().uuidString).csv").path
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let r = try DDPProcess.mpirun(2, ["bench", "allreduce", "--sizes", "4K,64K", "--repeats", "3", "--warmup", "1", "--csv", csv], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("bench allreduce: 2 ranks"), r.stdout)
        XCTAssertTrue(r.stdout.contains("4 KB") && r.stdout.contains("64 KB"), r.stdout)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[0].hasPrefix("ranks,bytes,buckets,plain_ms"))
        XCTAssertTrue(lines[1].hasPrefix("2,4096,"))
    }

    func testScalingScriptWritesItsCSV() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-scaling-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let script = DDPProcess.packageRoot.appendingPathComponent("scripts/bench-scaling.sh").path
        let r = try DDPProcess.run(
            [
                script, "--ranks", "2", "--model", "tiny", "--steps", "2", "--warmup", "1",
                "--per-rank-batch", "8", "--global-batch", "16", "--independent", "--out", out.path,
                "--ddp", DDPProcess.binary, "--", "--sample-shape", "1,12,12"
            ], timeout: 120)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: out.appendingPathComponent("scaling.csv").path, encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(lines[0].hasSuffix(",efficiency"))
        // Independent processes run only up to the core count.
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else {
            XCTAssertEqual(lines.count, 5, "header, weak 1-2, strong 1-2: \(lines)")
            return
        }
        XCTAssertEqual(lines.count, 6, "header, weak 1-2, 2 independent processes, strong 1-2: \(lines)")
        XCTAssertTrue(lines[1].hasPrefix("weak,tiny,1,") && lines[5].hasPrefix("strong,tiny,2,"), "\(lines)")
        // The two independent processes make one row: 2 "ranks", their batches summed, no communication.
        let independent = lines[3].split(separator: ",").map(String.init)
        XCTAssertEqual(independent.count, 20, String(lines[3]))
        XCTAssertEqual(
            Array(independent[0 ..< 3]) + [independent[5], independent[13]], ["independent", "tiny", "2", "16", "0.000"],
            String(lines[3]))
        XCTAssertGreaterThan(Double(independent[19]) ?? 0, 0, "an efficiency against one weak rank")
        XCTAssertTrue(r.stdout.contains("efficiency"), r.stdout)
    }
}
