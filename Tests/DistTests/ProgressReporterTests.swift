import XCTest

@testable import Dist
@testable import NN

/// Progress reports on scripted steps: when they come, and the figures they carry.
final class ProgressReporterTests: XCTestCase {
    /// Runs `epochs` epochs of scripted steps (8 samples each, 2 right for a loss of 1, else 6;
    /// 0.5 s each) through a reporter and returns its reports.
    func reports(interval: Int, losses: [Double], epochs: Int = 1) throws -> [StepProgress] {
        let log = RunLog()
        let loop = try makeLoop(log: log)
        loop.stepsPerEpoch = losses.count
        let reporter = ProgressReporter(interval: interval)
        for _ in 0 ..< epochs {
            loop.epochTotals = BatchTotals()
            loop.epochStepsRun = 0
            loop.epochTrainingSeconds = 0
            for loss in losses {
                loop.position.stepInEpoch += 1
                loop.position.step += 1
                loop.stepTotals = BatchTotals(lossSum: loss * 8, correct: loss == 1 ? 2 : 6, count: 8)
                loop.epochTotals += loop.stepTotals
                loop.epochStepsRun += 1
                loop.epochTrainingSeconds += 0.5
                try reporter.stepEnd(loop)
            }
            loop.position.epoch += 1
            loop.position.stepInEpoch = 0
        }
        return log.events.compactMap { if case let .progress(p) = $0 { return p } else { return nil } }
    }

    /// Every `interval` steps and at the epoch's last one, with the mean over the steps since the
    /// last report, the pace since the epoch began and the time left at that pace.
    func testReportsEveryIntervalAndAtTheEpochsEnd() throws {
        let p = try reports(interval: 2, losses: [1, 3, 1, 1, 3])
        XCTAssertEqual(p.map(\.step), [2, 4, 5])
        XCTAssertEqual(p.map(\.globalStep), [2, 4, 5])
        XCTAssertEqual(p.map(\.steps), [5, 5, 5])
        XCTAssertEqual(p.map(\.loss), [2, 1, 3], "the mean of the steps since the last report")
        XCTAssertEqual(p.map(\.accuracy), [0.5, 0.25, 0.75])
        XCTAssertEqual(p.map(\.samplesPerSecond), [16, 16, 16], "8 samples every 0.5 s")
        XCTAssertEqual(p.map(\.secondsLeft), [1.5, 0.5, 0])
        XCTAssertEqual(p.map(\.learningRate), [0.1, 0.1, 0.1].map { Double(Float($0)) })
    }

    /// Each epoch reports its own steps: the window of the first report of an epoch holds only
    /// that epoch's steps, and the global step keeps counting.
    func testEachEpochReportsItsOwnSteps() throws {
        let p = try reports(interval: 2, losses: [1, 3, 3], epochs: 2)
        XCTAssertEqual(p.map(\.epoch), [0, 0, 1, 1])
        XCTAssertEqual(p.map(\.step), [2, 3, 2, 3])
        XCTAssertEqual(p.map(\.loss), [2, 3, 2, 3])
        XCTAssertEqual(p.map(\.globalStep), [2, 3, 5, 6])
    }

    /// Interval 0: no reports at all.
    func testIntervalZeroReportsNothing() throws {
        XCTAssertEqual(try reports(interval: 0, losses: [1, 1, 1]).count, 0)
    }
}
