import Foundation
import XCTest

/// Errors every rank finds alike before training end a job of 2 ranks with the message printed
/// once and nothing else on stderr: no line per rank, no Open MPI `MPI_ABORT was invoked` banner
/// (`--np` starts mpirun with `--quiet`, which also drops its report of ranks that exited
/// non-zero). An error of one rank still aborts the job.
final class AgreedErrorTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
    }

    let quick = ["train", "--synthetic-samples", "64", "--model", "mlp", "--batch-size", "16", "--log-interval", "0"]

    /// `ddp train --np 2 <arguments>`: fails with exactly `stderr` (the whole of it).
    func expectWholeStderr(_ arguments: [String], _ stderr: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try DDPProcess.bare(["train", "--np", "2"] + arguments, timeout: 60)
        XCTAssertFalse(r.timedOut, file: file, line: line)
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr, stderr, file: file, line: line)
    }

    func testAModelFileThatDoesNotParseIsReportedOnce() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = InferenceFixtures.write("layers:\n  - {type: maxpool2d, size: 2}\n", to: "\(dir)/bad.yaml")
        try expectWholeStderr(
            Array(quick.dropFirst()) + ["--model", model],
            "error: \(model): layer 0 (maxpool2d): unknown option 'size'; hint: maxpool2d takes type, pool, stride, padding\n")
    }

    func testAnOptionThatDoesNotFitTheDataIsReportedOnce() throws {
        // Synthetic samples have 1 channel: three means do not fit.
        try expectWholeStderr(
            Array(quick.dropFirst()) + ["--normalize", "0.1,0.2,0.3,1,1,1"],
            "error: --normalize 0.1,0.2,0.3,1,1,1: 3 means for data with 1 channels; hint: give 1 or 1 means and as many standard deviations\n")
    }

    func testMissingDataIsReportedOnceWithoutARankNumber() throws {
        try expectWholeStderr(["--data", "/nonexistent/data"], "error: could not load the data: --data /nonexistent/data: no such directory\n")
    }

    func testACommandLineEveryRankRejectsIsReportedOnceUnderMpirun() throws {
        let r = try DDPProcess.run(
            ["/usr/bin/env", "mpirun", "--quiet"] + DDPProcess.mpirunFlags + ["-np", "2", DDPProcess.binary] + quick + ["--epochs", "0"], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.stderr.components(separatedBy: "--epochs must be positive, got 0").count, 2, "printed once: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("MPI_ABORT"), r.stderr)
    }

    func testAnErrorOfOneRankStillAbortsTheJob() throws {
        // MPMD: rank 0 trains on synthetic data, rank 1 is given a data folder that does not exist.
        let badData = ["train", "--data", "/nonexistent/data"] + quick.dropFirst(3)
        let r = try DDPProcess.mpirun(contexts: [(1, quick), (1, badData)], timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("[rank 1/2] error: rank 1 could not load its data: --data /nonexistent/data: no such directory"), r.stderr)
        XCTAssertFalse(r.stderr.contains("[rank 0/2] error"), "only the failing rank reports: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("\nerror: "), "not an agreed error: \(r.stderr)")
    }
}
