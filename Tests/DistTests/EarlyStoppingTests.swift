import XCTest

@testable import Dist
@testable import NN

/// Early stopping on scripted sequences of validation figures: what counts as an improvement,
/// the state a checkpoint records, and when the run ends.
final class EarlyStoppingTests: XCTestCase {
    /// Judges `values` (the monitored figure of successive epochs) from `start` and returns, per
    /// epoch, whether it improved, the epochs without improvement, and the best figure when the run stops.
    func judge(_ stopping: EarlyStopping, _ values: [Double?], from start: TrainingPosition = TrainingPosition())
        -> [(improved: Bool, count: Int, stop: Double?)]
    {
        var position = start
        return values.enumerated().map { epoch, value in
            let metrics = EpochMetrics(
                epoch: epoch, trainLoss: 1, trainAccuracy: 0, trainSamples: 8,
                validationLoss: stopping.monitor == .validationLoss ? value : 0.5,
                validationAccuracy: stopping.monitor == .validationAccuracy ? value : 0.5, seconds: 0)
            let verdict = stopping.judge(metrics, position: &position)
            return (verdict.improved, position.epochsWithoutImprovement, verdict.stopWithBest)
        }
    }

    /// A loss must fall by more than minDelta: 0.895 after a best of 0.9 does not count, and the
    /// second epoch without improvement ends the run with the best figure.
    func testLossMustFallByMoreThanMinDelta() {
        let verdicts = judge(EarlyStopping(monitor: .validationLoss, patience: 2, minDelta: 0.01), [1.0, 0.9, 0.95, 0.895])
        XCTAssertEqual(verdicts.map(\.improved), [true, true, false, false])
        XCTAssertEqual(verdicts.map(\.count), [0, 0, 1, 2])
        XCTAssertEqual(verdicts.map(\.stop), [nil, nil, nil, 0.9])
    }

    /// Accuracy improves upwards; without a patience the best is kept and the run never ends.
    func testAccuracyRisesAndNoPatienceNeverStops() {
        let verdicts = judge(EarlyStopping(monitor: .validationAccuracy, patience: nil, minDelta: 0), [0.5, 0.6, 0.6, 0.55, 0.7])
        XCTAssertEqual(verdicts.map(\.improved), [true, true, false, false, true])
        XCTAssertEqual(verdicts.map(\.count), [0, 0, 1, 2, 0])
        XCTAssertEqual(verdicts.map(\.stop), [nil, nil, nil, nil, nil])
    }

    /// Epochs without the figure (no validation set) change nothing and never stop the run.
    func testEpochsWithoutTheFigureChangeNothing() {
        let verdicts = judge(EarlyStopping(monitor: .validationLoss, patience: 1, minDelta: 0), [nil, nil])
        XCTAssertEqual(verdicts.map(\.improved), [false, false])
        XCTAssertEqual(verdicts.map(\.count), [0, 0])
        XCTAssertEqual(verdicts.map(\.stop), [nil, nil])
    }

    /// A resumed run continues the count its checkpoint recorded.
    func testResumedStateContinuesCounting() {
        let start = TrainingPosition(epoch: 3, step: 30, best: 0.5, epochsWithoutImprovement: 1)
        let verdicts = judge(EarlyStopping(monitor: .validationLoss, patience: 2, minDelta: 0), [0.6], from: start)
        XCTAssertEqual(verdicts.map(\.count), [2])
        XCTAssertEqual(verdicts.map(\.stop), [0.5])
    }

    /// As a callback: it keeps its state in the loop's position, says whether the epoch improved
    /// (for the best checkpoint), and asks the loop to stop.
    func testTheCallbackUpdatesTheLoopAndAsksItToStop() throws {
        let loop = try makeLoop()
        let stopping = EarlyStopping(monitor: .validationLoss, patience: 1, minDelta: 0)
        func epoch(_ n: Int, loss: Double) -> EpochMetrics {
            EpochMetrics(epoch: n, trainLoss: 1, trainAccuracy: 0, trainSamples: 8, validationLoss: loss, validationAccuracy: 0.5, seconds: 0)
        }
        try stopping.epochEnd(loop, metrics: epoch(0, loss: 0.7))
        XCTAssertTrue(stopping.improved)
        XCTAssertEqual(loop.position.best, 0.7)
        XCTAssertFalse(loop.stopRequested)
        try stopping.epochEnd(loop, metrics: epoch(1, loss: 0.8))
        XCTAssertFalse(stopping.improved)
        XCTAssertEqual(loop.position.epochsWithoutImprovement, 1)
        XCTAssertTrue(loop.stopRequested)
    }
}
