import Foundation
import XCTest

/// `--validation-data test|DIR`: the test split (or another dataset) validated each epoch, for
/// early stopping and best.safetensors, and the test split not evaluated again unless asked.
final class ValidationDataTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
        dir = InferenceFixtures.makeDirectory(name)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    let quick = ["train", "--synthetic-samples", "256", "--model", "mlp", "--batch-size", "32", "--log-interval", "0"]

    func testTheTestSplitIsValidatedEachEpochAndNotEvaluatedAgain() throws {
        let metrics = "\(dir)/metrics.jsonl"
        let r = try DDPProcess.mpirun(
            2,
            quick + [
                "--epochs", "2", "--validation-data", "test", "--monitor", "val_accuracy",
                "--metrics", metrics, "--checkpoint-dir", "\(dir)/ck"
            ], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("classes, 64 validation\n"), "the test split validates and is no test set: \(r.stdout)")
        XCTAssertEqual(r.stdout.components(separatedBy: "| val loss").count, 3, "one validation per epoch: \(r.stdout)")
        XCTAssertFalse(r.stdout.contains("test: loss"), r.stdout)
        let lines = InferenceFixtures.jsonObjects(try String(contentsOfFile: metrics, encoding: .utf8))
        XCTAssertEqual(lines.filter { $0["kind"] as? String == "epoch" }.compactMap { $0["validationSamples"] as? Int }, [64, 64])
        XCTAssertNil(lines.last?["testLoss"], "\(lines.last ?? [:])")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/ck/best.safetensors"))

        let again = try DDPProcess.bare(quick + ["--epochs", "1", "--validation-data", "test", "--evaluate-test"], timeout: 120)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("| val loss"), again.stdout)
        XCTAssertTrue(again.stdout.contains("test: loss"), again.stdout)
    }

    func testAnotherDatasetFolderValidates() throws {
        let train = InferenceFixtures.idxDataset(in: "\(dir)/train", count: 40, side: 8, classes: 7)
        let other = InferenceFixtures.idxDataset(in: "\(dir)/other", count: 12, side: 8, classes: 7)
        let r = try DDPProcess.bare(
            [
                "train", "--data", train, "--validation-data", other, "--model", "mlp", "--batch-size", "8",
                "--log-interval", "0"
            ], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("12 validation, 40 test"), r.stdout)
        XCTAssertTrue(r.stdout.contains("| val loss"), r.stdout)

        let wrong = InferenceFixtures.idxDataset(in: "\(dir)/wrong", count: 12, side: 6, classes: 7)
        let refused = try DDPProcess.bare(["train", "--data", train, "--validation-data", wrong, "--model", "mlp"], timeout: 60)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--validation-data \(wrong): samples of shape [1, 6, 6]"), refused.stderr)
    }

    func testValidationDataAndSplitExcludeEachOther() throws {
        let r = try DDPProcess.bare(quick + ["--validation-data", "test", "--validation-split", "0.1"], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--validation-data test and --validation-split 0.1 exclude each other"), r.stderr)
    }
}
