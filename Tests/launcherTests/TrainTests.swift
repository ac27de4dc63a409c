import Foundation
import NN
import XCTest

/// `ddp train` end to end: options, schedules, early stopping, metrics, checkpoints, resume and
/// the non-finite loss stop, on tiny models and synthetic data (seconds each).
final class TrainTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
    }

    /// A fresh folder under the temporary directory, removed after the test.
    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-train-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// A quick synthetic run: 256 samples, an mlp, 8 steps of 32 per epoch.
    let quick = ["train", "--synthetic-samples", "256", "--model", "mlp", "--batch-size", "32", "--log-interval", "0"]

    /// The metrics file's objects.
    func metricsLines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// The trainable and non-trainable tensors of a checkpoint (optimizer buffers left out).
    func parameters(_ path: String) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.read(from: path)
        var out: [String: [Float]] = [:]
        for name in checkpoint.names where !name.hasPrefix("optimizer.") { out[name] = checkpoint.tensors[name]!.storage }
        return out
    }

    /// The process side of an option refused while parsing: a non-zero exit, the line on stderr,
    /// nothing trained. Each option's own check and message: `CommandParsingTests`, in process.
    func testInvalidOptionFailsBeforeTrainingWithOneLineNamingTheOption() throws {
        let r = try DDPProcess.bare(quick + ["--optimizer", "rmsprop"], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--optimizer rmsprop"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.contains("rmsprop") }.count, 1, r.stderr)
        XCTAssertFalse(r.stdout.contains("epoch 1"), "trained: \(r.stdout)")
    }

    func testCosineWarmupScheduleTooLongIsRejectedBeforeStepOne() throws {
        let r = try DDPProcess.bare(quick + ["--lr-schedule", "cosine", "--warmup-epochs", "1"], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--lr-schedule cosine: the 8 warm-up steps leave none"), r.stderr)
    }

    func testModelFileWhoseInputDisagreesWithTheDataIsRejected() throws {
        let dir = try temporaryDirectory()
        let file = dir + "/wide.json"
        try #"{"input": [3, 12, 12], "layers": [{"type": "flatten"}, {"type": "dense", "units": "classes"}]}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let r = try DDPProcess.bare(quick + ["--model", file], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("input shape [3, 12, 12] differs from the data's sample shape [1, 12, 12]"), r.stderr)
    }

    /// --scale-lr: 0.1 x (32 x 2) / 256 = 0.025.
    func testLinearScalingRuleScalesTheLearningRate() throws {
        let r = try DDPProcess.bare(quick + ["--lr", "0.1", "--scale-lr", "--accumulate", "2", "--max-steps", "1"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("lr constant(base=0.025)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("2 micro-batches of 32 per step (64 samples)"), r.stdout)
    }

    func testMetricsFileHasOneObjectPerEpochAndAFinalOne() throws {
        let dir = try temporaryDirectory()
        let r = try DDPProcess.mpirun(
            2,
            quick + [
                "--epochs", "2", "--validation-split", "0.25", "--metrics", dir + "/m.jsonl",
                "--lr-schedule", "cosine", "--warmup-steps", "2"
            ], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try metricsLines(dir + "/m.jsonl")
        XCTAssertEqual(lines.map { $0["kind"] as? String }, ["epoch", "epoch", "final"])
        XCTAssertEqual(lines.map { $0["epoch"] as? Int }, [1, 2, 2])
        for line in lines {
            for key in ["trainLoss", "trainAccuracy", "validationLoss", "validationAccuracy", "learningRate", "samplesPerSecond", "seconds", "step"] {
                XCTAssertNotNil(line[key], "\(key) missing in \(line)")
            }
        }
        XCTAssertEqual(lines[0]["trainSamples"] as? Int, 192, "6 steps of 32 over 192 training samples")
        XCTAssertEqual(lines[0]["validationSamples"] as? Int, 64, "the validation set is counted once over 2 ranks")
        XCTAssertEqual(lines[2]["testSamples"] as? Int, 64)
        XCTAssertNil(lines[0]["testLoss"])
        XCTAssertNotNil(lines[2]["testAccuracy"])
        // Cosine: the last step's rate is far below the peak.
        XCTAssertLessThan(try XCTUnwrap(lines[1]["learningRate"] as? Double), 1e-4)
        XCTAssertEqual(r.stdout.components(separatedBy: "epoch 2: train loss").count - 1, 1, "rank 0 alone prints")
    }

    func testEarlyStoppingStopsWhenTheMonitoredFigureStalls() throws {
        let dir = try temporaryDirectory()
        // A min delta of 100 lets no epoch after the first improve: patience 2 stops after epoch 3.
        let r = try DDPProcess.bare(
            quick + [
                "--epochs", "6", "--validation-split", "0.25", "--early-stopping-patience", "2",
                "--min-delta", "100", "--metrics", dir + "/m.jsonl", "--checkpoint-dir", dir + "/ck"
            ], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("early stopping after epoch 3: val_loss has not improved for 2 epochs"), r.stdout)
        XCTAssertEqual(try metricsLines(dir + "/m.jsonl").filter { $0["kind"] as? String == "epoch" }.count, 3)
        // best.safetensors is the first epoch's state.
        XCTAssertEqual(try Checkpoint.read(from: dir + "/ck/best.safetensors").metadata["step"], "6")
    }

    func testCheckpointEveryNStepsKeepsTheLastK() throws {
        let dir = try temporaryDirectory()
        let r = try DDPProcess.mpirun(2, quick + ["--epochs", "2", "--checkpoint-dir", dir, "--checkpoint-every", "3", "--keep-last", "2"], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        // Written at steps 3, 6, 8 (epoch end), 9, 12, 15, 16 (epoch end); the newest two are kept.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertEqual(files, ["step-00000015.safetensors", "step-00000016.safetensors"])
        let last = try Checkpoint.read(from: dir + "/step-00000016.safetensors")
        XCTAssertEqual(last.metadata["epoch"], "2")
        XCTAssertEqual(last.metadata["optimizer_buffers"], "m,v")
        XCTAssertTrue(last.metadata["model_spec"]?.contains("dense") ?? false)
        XCTAssertTrue(last.metadata["options"]?.contains("\"globalBatch\":32") ?? false, last.metadata["options"] ?? "")
    }

    /// K steps in one run equal K/2 steps, a stop, and K/2 more after --resume (mid-epoch):
    /// bit for bit on one rank; a 2-rank first half resumed on one rank differs only in float
    /// summation order (1e-5 relative).
    func testResumeContinuesExactlyAlsoOnAnotherNumberOfRanks() throws {
        let dir = try temporaryDirectory()
        let run = quick + ["--epochs", "2", "--optimizer", "sgd", "--lr", "0.05"]
        let whole = try DDPProcess.bare(run + ["--checkpoint-dir", dir + "/whole"], timeout: 60)
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let reference = try parameters(dir + "/whole/step-00000016.safetensors")

        for firstRanks in [1, 2] {
            let split = dir + "/split\(firstRanks)"
            let first = try DDPProcess.mpirun(firstRanks, run + ["--checkpoint-dir", split, "--stop-after", "5"], timeout: 60)
            XCTAssertEqual(first.status, 0, first.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: split + "/step-00000005.safetensors"))
            let second = try DDPProcess.bare(run + ["--checkpoint-dir", split, "--resume", split], timeout: 60)
            XCTAssertEqual(second.status, 0, second.stderr)
            XCTAssertTrue(second.stdout.contains("resume: \(split)/step-00000005.safetensors (epoch 1, step 5"), second.stdout)
            let resumed = try parameters(split + "/step-00000016.safetensors")
            XCTAssertEqual(Set(resumed.keys), Set(reference.keys))
            for (name, values) in reference {
                let other = try XCTUnwrap(resumed[name])
                if firstRanks == 1 {
                    XCTAssertEqual(other, values, "\(name) differs after resume on the same ranks")
                } else {
                    let worst = zip(other, values).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst, 1e-5, name)
                }
            }
        }
    }

    func testResumeWithAnotherModelOrOptimizerNamesTheDifference() throws {
        let dir = try temporaryDirectory()
        let first = try DDPProcess.bare(quick + ["--checkpoint-dir", dir, "--stop-after", "2"], timeout: 60)
        XCTAssertEqual(first.status, 0, first.stderr)
        let model = try DDPProcess.bare(quick.map { $0 == "mlp" ? "tiny" : $0 } + ["--resume", dir], timeout: 60)
        XCTAssertNotEqual(model.status, 0)
        XCTAssertTrue(model.stderr.contains("cannot resume from \(dir)/step-00000002.safetensors: the model differs: layer 0"), model.stderr)
        let optimizer = try DDPProcess.bare(quick + ["--optimizer", "sgd", "--resume", dir], timeout: 60)
        XCTAssertNotEqual(optimizer.status, 0)
        XCTAssertTrue(optimizer.stderr.contains("the optimizer differs: the checkpoint has adam("), optimizer.stderr)
        let batch = try DDPProcess.bare(quick + ["--batch-size", "16", "--resume", dir], timeout: 60)
        XCTAssertTrue(batch.stderr.contains("the global batch differs"), batch.stderr)
    }

    func testNonFiniteLossStopsEveryRankAndKeepsEarlierCheckpoints() throws {
        let dir = try temporaryDirectory()
        let r = try DDPProcess.mpirun(
            2,
            quick + [
                "--optimizer", "sgd", "--lr", "1e9", "--epochs", "3",
                "--checkpoint-dir", dir, "--checkpoint-every", "1"
            ], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        for rank in 0 ..< 2 {
            XCTAssertTrue(r.stderr.contains("[rank \(rank)/2] error: loss became"), r.stderr)
        }
        XCTAssertTrue(r.stderr.contains("hint: lower --lr"), r.stderr)
        // Every checkpoint left is complete and finite (none was written from the broken state).
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertFalse(files.contains { $0.hasSuffix(".tmp") }, "\(files)")
        for file in files {
            for (name, values) in try parameters(dir + "/" + file) {
                XCTAssertTrue(values.allSatisfy(\.isFinite), "\(file) \(name)")
            }
        }
    }

    /// Augmentation draws come from per-sample keys (seed, epoch, index), not from ranks: one rank
    /// and three ranks train to the same parameters up to float summation order.
    func testAugmentedTrainingDoesNotDependOnTheNumberOfRanks() throws {
        let dir = try temporaryDirectory()
        let run = quick + ["--optimizer", "sgd", "--flip", "--shift", "2", "--zoom", "0.1", "--normalize", "0.5,0.25"]
        var results: [[String: [Float]]] = []
        for ranks in [1, 3] {
            let r = try DDPProcess.mpirun(ranks, run + ["--checkpoint-dir", dir + "/p\(ranks)"], timeout: 60)
            XCTAssertEqual(r.status, 0, r.stderr)
            results.append(try parameters(dir + "/p\(ranks)/step-00000008.safetensors"))
        }
        for (name, values) in results[0] {
            let worst = zip(try XCTUnwrap(results[1][name]), values).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5, name)
        }
    }

    /// `DDP_PROGRESS` picks the bar or plain lines (mpirun gives ranks a pseudo-terminal, so the
    /// ranks cannot tell by themselves).
    func testProgressStyleFollowsTheEnvironment() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["DDP_PROGRESS"] = "bar"
        let bar = try DDPProcess.bare(quick, environment: environment, timeout: 30)
        XCTAssertTrue(bar.stdout.contains("\r\u{1B}[K["), bar.stdout)
        XCTAssertTrue(bar.stdout.contains("ETA"), bar.stdout)
        environment["DDP_PROGRESS"] = "lines"
        let lines = try DDPProcess.bare(quick + ["--log-interval", "4"], environment: environment, timeout: 30)
        XCTAssertFalse(lines.stdout.contains("\r"), lines.stdout)
        XCTAssertTrue(lines.stdout.contains("epoch 1/1 step 4/8 loss"), lines.stdout)
    }

    func testFashionMNISTSmokeRun() throws {
        let data = "/usr/share/datasets/fashion-mnist"
        guard FileManager.default.fileExists(atPath: data + "/train-images-idx3-ubyte.gz") else { throw XCTSkip("no Fashion-MNIST at \(data)") }
        let r = try DDPProcess.mpirun(
            2,
            [
                "train", "--data", data, "--model", "tiny", "--batch-size", "64", "--max-steps", "5",
                "--validation-split", "0.05", "--shift", "2", "--normalize", "0.286,0.353", "--log-interval", "0"
            ],
            timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("data: 57000 training samples of shape [1, 28, 28], 10 classes, 3000 validation, 10000 test"), r.stdout)
        XCTAssertTrue(r.stdout.contains("test: loss"), r.stdout)
        XCTAssertTrue(r.stdout.contains("(10000 samples) after 5 steps"), r.stdout)
    }
}
