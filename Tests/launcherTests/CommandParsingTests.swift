import Dist
import XCTest
@testable import launcher

/// The commands' parsing and validation, in process: `DDP.parseAsRoot` runs what `ddp` runs
/// before any rank starts (ArgumentParser's parsing, each option group's checks, the library's
/// checks of the training options through `ConfigurationCheck`).
final class CommandParsingTests: XCTestCase {
    /// The message `ddp ARGUMENTS` stops with, or nil when they parse.
    func refusal(_ arguments: [String]) -> String? {
        do {
            _ = try DDP.parseAsRoot(arguments)
            return nil
        } catch {
            return DDP.message(for: error)
        }
    }

    /// The training options' values are the library's to check (`TrainingConfiguration.validateOptions`);
    /// every command that takes them refuses a bad one while parsing, named by its own flag.
    func testTrainingOptionsAreCheckedByTheLibraryAndNamedByTheirFlags() {
        let cases: [([String], String)] = [
            (["train", "--epochs", "0"], "--epochs must be positive, got 0"),
            (["train", "--batch-size", "0"], "--batch-size must be positive, got 0"),
            (["train", "--accumulate", "0"], "--accumulate must be positive, got 0"),
            (["train", "--dense-factors", "--reduction", "deterministic"], "--dense-factors needs --reduction fast"),
            (["train", "--dense-factors", "--accumulate", "2"], "--dense-factors needs one micro-batch a step, got --accumulate 2"),
            (["train", "--compression", "fp16", "--reduction", "deterministic"], "--compression fp16 needs --reduction fast"),
            (["train", "--threads", "0"], "--threads must be 1 to 256, got 0"),
            (["train", "--chunk-size", "0"], "--chunk-size must be positive, got 0"),
            (["train", "--min-delta=-1"], "--min-delta must be a number >= 0, got -1.0"),
            (["train", "--stop-after", "0"], "--stop-after must be positive, got 0"),
            (["train", "--bucket-floats", "0"], "--bucket-floats must be positive, got 0"),
            (["train", "--checkpoint-dir", NSTemporaryDirectory(), "--checkpoint-every=-1"], "--checkpoint-every must be 0 or more, got -1"),
            (["gradcheck", "--batch", "0"], "--batch must be positive, got 0"),
            (["gradcheck", "--bucket-floats", "0"], "--bucket-floats must be positive, got 0"),
            (["gradcheck", "--compression", "fp16", "--reduction", "deterministic"], "--compression fp16 needs --reduction fast"),
            (["bench", "steps", "--dense-factors", "--threads", "2"], "--dense-factors cannot run with 2 threads a rank yet"),
            (["bench", "steps", "--threads", "300"], "--threads must be 1 to 256, got 300"),
        ]
        for (arguments, message) in cases {
            let refused = refusal(arguments)
            XCTAssertTrue(refused?.contains(message) == true, "\(arguments): \(refused ?? "accepted")")
        }
    }

    /// What each group parses reaches the library's configuration.
    func testOptionsReachTheTrainingConfiguration() throws {
        let command = try DDP.parseAsRoot(["train", "--epochs", "3", "--batch-size", "32", "--accumulate", "2", "--threads", "2",
                                           "--reduction", "deterministic", "--chunk-size", "8", "--seed", "9", "--bucket-floats", "4096",
                                           "--stop-after", "5", "--max-steps", "4"])
        let train = try XCTUnwrap(command as? Train)
        let c = train.configuration()
        XCTAssertEqual([c.epochs, c.globalBatchSize, c.accumulationSteps, c.threads, c.chunkSize, c.bucketCapacity],
                       [3, 32, 2, 2, 8, 4096])
        XCTAssertEqual(c.reduction, .deterministic)
        XCTAssertEqual(c.seed, 9)
        XCTAssertEqual(c.stopAfterSteps, 5)
        XCTAssertEqual(c.maxStepsPerEpoch, 4)
        XCTAssertNil(c.checkpoints, "no --checkpoint-dir")
        let check = try XCTUnwrap(try DDP.parseAsRoot(["gradcheck", "--batch", "12", "--dense-factors", "--compression", "fp16"]) as? Gradcheck)
        XCTAssertEqual(check.configuration().training.globalBatchSize, 12)
        XCTAssertTrue(check.configuration().training.denseFactors)
        XCTAssertEqual(check.configuration().training.compression, .fp16)
    }

    /// Options that need another group are checked across groups.
    func testEarlyStoppingNeedsAValidationSet() {
        XCTAssertEqual(refusal(["train", "--early-stopping-patience", "2"]).map { $0.contains("needs a validation set") }, true)
        XCTAssertNil(refusal(["train", "--early-stopping-patience", "2", "--validation-split", "0.1"]))
    }
}
