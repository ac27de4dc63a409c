import XCTest

@testable import Dist
@testable import NN

/// The metrics log alone: the lines a scripted sequence of events gives, what other ranks write,
/// and the error for a file that cannot be opened.
final class MetricsLogTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "metrics-log-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// One sorted-key line per `.epoch` and `.finished` event, in order, with the epoch counted
    /// from 1 and the kind; other events write nothing.
    func testWritesOneLinePerEpochAndAFinalLine() throws {
        let path = folder + "/sub/m.jsonl"
        let log = try MetricsLog(path: path, isRoot: true)
        let loop = try makeLoop(callbacks: [log])
        var first = EpochMetrics(epoch: 0, step: 3, trainLoss: 0.5, trainAccuracy: 0.75, trainSamples: 24, seconds: 2)
        first.validationLoss = 0.25
        first.validationAccuracy = 1
        first.validationSamples = 8
        first.learningRate = 0.125
        first.samplesPerSecond = 12
        var final = EpochMetrics(epoch: 1, step: 6, trainLoss: 0.5, trainAccuracy: 0.5, trainSamples: 24, seconds: 1)
        final.testLoss = 1.5
        final.testAccuracy = 0.25
        final.testSamples = 4
        loop.report(.ready(parameters: 10, fingerprint: 1, ranks: 1, stepsPerEpoch: 3))
        loop.report(
            .progress(
                StepProgress(
                    epoch: 0, step: 3, steps: 3, globalStep: 3, loss: 1, accuracy: 0.5, learningRate: 0.1,
                    samplesPerSecond: 1, secondsLeft: 0)))
        loop.report(.epoch(first))
        loop.report(.checkpoint(path: "x"))
        loop.report(.finished(final))
        XCTAssertEqual(
            try lines(path),
            [
                #"{"epoch":1,"kind":"epoch","learningRate":0.125,"samplesPerSecond":12,"seconds":2,"step":3,"trainAccuracy":0.75,"trainLoss":0.5,"trainSamples":24,"validationAccuracy":1,"validationLoss":0.25,"validationSamples":8}"#,
                #"{"epoch":2,"kind":"final","learningRate":0,"samplesPerSecond":0,"seconds":1,"step":6,"testAccuracy":0.25,"testLoss":1.5,"testSamples":4,"trainAccuracy":0.5,"trainLoss":0.5,"trainSamples":24}"#
            ])
    }

    /// A second log on the same file appends after what it holds (a resumed run continues it).
    func testAppendsToAnExistingFile() throws {
        let path = folder + "/m.jsonl"
        let metrics = EpochMetrics(epoch: 0, trainLoss: 1, trainAccuracy: 0, trainSamples: 8, seconds: 0)
        for _ in 0 ..< 2 {
            let log = try MetricsLog(path: path, isRoot: true)
            log.eventReported(try makeLoop(), event: .epoch(metrics))
        }
        XCTAssertEqual(try lines(path).count, 2)
    }

    /// Ranks other than 0 neither create nor write the file.
    func testOtherRanksWriteNothing() throws {
        let path = folder + "/m.jsonl"
        let log = try MetricsLog(path: path, isRoot: false)
        log.eventReported(try makeLoop(), event: .epoch(EpochMetrics(epoch: 0, trainLoss: 1, trainAccuracy: 0, trainSamples: 8, seconds: 0)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    /// A path that cannot be created fails when the log is made (before step 1), naming the path.
    func testAFileThatCannotBeCreatedFailsAtOnce() throws {
        // A regular file stands where the folder should be.
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/file", contents: Data()))
        let path = folder + "/file/m.jsonl"
        XCTAssertThrowsError(try MetricsLog(path: path, isRoot: true)) { error in
            XCTAssertEqual(error as? DistError, .cannotWrite(path: path, reason: "cannot create the file"))
            XCTAssertEqual("\(error)", "\(path): cannot create the file")
        }
    }
}
