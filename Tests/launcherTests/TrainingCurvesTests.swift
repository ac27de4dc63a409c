import Foundation
import XCTest

/// Training curves: `ddp plot` draws a metrics file with gnuplot, and `--tensorboard` event files
/// read back with TensorBoard's own event reader (from PyPI, in `.venv-tensorboard`).
final class TrainingCurvesTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
        dir = InferenceFixtures.makeDirectory(name)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    let quick = ["train", "--synthetic-samples", "256", "--model", "mlp", "--batch-size", "32", "--validation-split", "0.25"]

    func testPlotDrawsLossAndAccuracyAsAPNG() throws {
        guard MPIRelaunchProbe.onPath("gnuplot") else { throw XCTSkip("gnuplot is not installed (apt-get install gnuplot-nox)") }
        let metrics = "\(dir)/metrics.jsonl"
        let train = try DDPProcess.bare(quick + ["--epochs", "3", "--metrics", metrics, "--log-interval", "0"], timeout: 120)
        XCTAssertEqual(train.status, 0, train.stderr)
        let png = "\(dir)/curves.png"
        let r = try DDPProcess.bare(["plot", metrics, "-o", png], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "plot: 3 epochs from \(metrics) -> \(png)\n")
        let bytes = InferenceFixtures.bytes(png)
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "a PNG signature")
        XCTAssertGreaterThan(bytes.count, 5000)
    }

    func testPlotRefusesAFileWithoutEpochs() throws {
        let metrics = InferenceFixtures.write("{\"kind\": \"final\"}\n", to: "\(dir)/m.jsonl")
        let r = try DDPProcess.bare(["plot", metrics], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("no epoch lines"), r.stderr)
    }

    func testTensorBoardEventsReadBackWithTensorBoardsReader() throws {
        let logs = "\(dir)/tb", metrics = "\(dir)/metrics.jsonl"
        let train = try DDPProcess.mpirun(
            2,
            quick + [
                "--epochs", "2", "--tensorboard", logs, "--metrics", metrics,
                "--log-interval", "3"
            ], timeout: 120)
        XCTAssertEqual(train.status, 0, train.stderr)
        let python = try PythonTools.python(venv: ".venv-tensorboard", packages: ["tensorboard"])
        let scalars = try PythonTools.run(python, script: "tensorboard-scalars.py", [logs])
        func series(_ run: String, _ tag: String) -> [(step: Int, value: Double)] {
            scalars.filter { $0["run"] as? String == run && $0["tag"] as? String == tag }
                .map { ($0["step"] as! Int, $0["value"] as! Double) }
        }
        XCTAssertEqual(
            scalars.filter { $0["file_version"] as? String == "brain.Event:2" }.compactMap { $0["run"] as? String },
            ["test", "train", "validation"], "one file per run folder")
        let epochs = InferenceFixtures.jsonObjects(try String(contentsOfFile: metrics, encoding: .utf8)).filter { $0["kind"] as? String == "epoch" }
        for (run, key) in [("train", "trainLoss"), ("validation", "validationLoss")] {
            let loss = series(run, "epoch_loss")
            XCTAssertEqual(loss.map(\.step), [1, 2], run)
            for (point, epoch) in zip(loss, epochs) {
                // TensorBoard stores float32.
                XCTAssertEqual(point.value, epoch[key] as! Double, accuracy: 1e-6 * max(1, abs(point.value)), run)
            }
        }
        XCTAssertEqual(series("validation", "epoch_accuracy").count, 2)
        XCTAssertEqual(series("train", "epoch_learning_rate").count, 2)
        XCTAssertEqual(series("train", "epoch_samples_per_second").count, 2)
        // 192 training samples / 32 = 6 steps an epoch: reports after steps 3 and 6 of each.
        XCTAssertEqual(series("train", "batch_loss").map(\.step), [3, 6, 9, 12])
        XCTAssertEqual(series("test", "test_accuracy").map(\.step), [12])
    }
}

/// Whether a program is on PATH (the tests do not link the launcher's MPIRelaunch).
enum MPIRelaunchProbe {
    static func onPath(_ name: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/\(name)")
        }
    }
}
