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
            (["bench", "steps", "--threads", "300"], "--threads must be 1 to 256, got 300")
        ]
        for (arguments, message) in cases {
            let refused = refusal(arguments)
            XCTAssertTrue(refused?.contains(message) == true, "\(arguments): \(refused ?? "accepted")")
        }
    }

    /// `ddp train`'s own option checks (optimizer, schedule, data, augmentation, checkpoints,
    /// faults) refuse a bad value while parsing, with one line naming the option. A quick
    /// synthetic run's options come first, as a user's command line would give them;
    /// `TrainTests` keeps one such refusal as a process (its exit status, nothing trained).
    func testTrainOptionChecksRefuseWithOneLineNamingTheOption() {
        let quick = ["train", "--synthetic-samples", "256", "--model", "mlp", "--batch-size", "32", "--log-interval", "0"]
        let cases: [([String], String)] = [
            (["--optimizer", "rmsprop"], "--optimizer rmsprop"),
            (["--lr=-1"], "--lr must be a positive number, got -1.0"),
            (["--lr=-0.1"], "--lr must be a positive number, got -0.1"),
            (["--lr", "nan"], "--lr must be a positive number, got nan"),
            (["--optimizer", "sgd", "--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
            (["--momentum", "0.5"], "--momentum 0.5 applies to --optimizer sgd only"),
            (["--optimizer", "sgd", "--momentum", "0", "--nesterov"], "--nesterov needs a --momentum greater than 0"),
            (["--beta2", "1"], "--beta2 must be in [0, 1), got 1.0"),
            (["--epsilon", "0"], "--epsilon must be a positive number, got 0.0"),
            (["--weight-decay=-0.1"], "--weight-decay must be a number >= 0, got -0.1"),
            (["--lr-schedule", "linear"], "--lr-schedule linear is not available"),
            (["--lr-gamma", "2"], "--lr-gamma must be in (0, 1], got 2.0"),
            (["--warmup-steps", "5", "--warmup-epochs", "1"], "--warmup-epochs and --warmup-steps exclude each other"),
            (["--accumulate", "0"], "--accumulate must be positive, got 0"),
            (["--validation-split", "1.5"], "--validation-split must be in [0, 1), got 1.5"),
            (["--normalize", "0.5"], "--normalize 0.5: expected MEAN,STD"),
            (["--normalize", "0.5,0"], "--normalize 0.5,0: every standard deviation must be > 0"),
            (["--zoom", "1"], "--zoom must be in [0, 1), got 1.0"),
            (["--early-stopping-patience", "2"], "--early-stopping-patience 2 needs a validation set"),
            (["--keep-last", "2"], "--keep-last 2 needs --checkpoint-dir"),
            (["--resume", "/nonexistent/ckpt"], "--resume /nonexistent/ckpt: no such file or directory"),
            (["--stall-timeout=-1"], "--stall-timeout must be 0 or more seconds, got -1.0"),
            (["--max-restarts=-1"], "--max-restarts must be 0 or more, got -1")
        ]
        for (arguments, message) in cases {
            let refused = refusal(quick + arguments)
            XCTAssertTrue(refused?.contains(message) == true, "\(arguments): \(refused ?? "accepted")")
            XCTAssertEqual(refused?.split(separator: "\n").count, 1, "\(arguments): one line: \(refused ?? "accepted")")
        }
        // The same options with good values parse.
        XCTAssertNil(refusal(quick + ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--lr", "0.1", "--stall-timeout", "0"]))
    }

    /// `ddp eval` checks its own options while parsing too (`BadInputTests` keeps one such
    /// refusal under mpirun: the exit of every rank before MPI starts).
    func testEvalRefusesAZeroBatchSize() {
        let refused = refusal(["eval", "--checkpoint", "/nonexistent.safetensors", "--data", "/nonexistent", "--batch-size", "0"])
        XCTAssertTrue(refused?.contains("--batch-size must be positive, got 0") == true, refused ?? "accepted")
    }

    /// `ddp eval` and `ddp predict` name a bad enumerated or counted value while parsing.
    func testEvalAndPredictRefuseBadValues() {
        let cases: [([String], [String])] = [
            (["eval", "--checkpoint", "c.safetensors", "--data", "d", "--split", "valid"], ["valid", "--split"]),
            (["predict", "--checkpoint", "c.safetensors", "--top-k", "0", "x.pgm"], ["--top-k must be positive, got 0"]),
            (["predict", "--checkpoint", "c.safetensors", "--resize", "cubic", "x.pgm"], ["cubic", "--resize"])
        ]
        for (arguments, mentions) in cases {
            let refused = refusal(arguments)
            for m in mentions { XCTAssertTrue(refused?.contains(m) == true, "\(arguments): \(refused ?? "accepted")") }
        }
    }

    /// What each group parses reaches the library's configuration.
    func testOptionsReachTheTrainingConfiguration() throws {
        let command = try DDP.parseAsRoot([
            "train", "--epochs", "3", "--batch-size", "32", "--accumulate", "2", "--threads", "2",
            "--reduction", "deterministic", "--chunk-size", "8", "--seed", "9", "--bucket-floats", "4096",
            "--stop-after", "5", "--max-steps", "4"
        ])
        let train = try XCTUnwrap(command as? Train)
        let c = train.configuration()
        XCTAssertEqual(
            [c.epochs, c.globalBatchSize, c.accumulationSteps, c.threads, c.chunkSize, c.bucketCapacity],
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
