import XCTest

@testable import Dist
@testable import NN

/// The loop calls callbacks at their fixed points, after the standard ones, interleaved with the
/// events in one order; a callback can end the run after an epoch.
final class TrainingCallbackTests: XCTestCase {
    /// Fits the small MLP of `makeLoop`'s data (24 samples, batch 8: 3 steps an epoch) for 2
    /// epochs with a `HookRecorder` and returns the events and hooks in order.
    func fitLog(configure: (inout TrainingConfiguration) -> Void = { _ in }, callbacks: (RunLog) -> [TrainingCallback]) throws
        -> (lines: [String], result: TrainingResult)
    {
        let data = SyntheticPatterns.make(count: 24, shape: [1, 8, 8], classes: 3, seed: 5)
        var config = TrainingConfiguration()
        config.globalBatchSize = 8
        config.epochs = 2
        config.logInterval = 2
        configure(&config)
        let trainer = try DataParallelTrainer(
            spec: ModelSpec.builtin("mlp", inputShape: data.sampleShape, classes: data.classCount),
            optimizer: SGD(learningRate: 0.1), loss: SoftmaxCrossEntropy(),
            communicator: InProcessCommunicator(), configuration: config)
        let log = RunLog()
        let result = try trainer.fit(training: data, validation: data.subset(Array(0 ..< 8)), callbacks: callbacks(log), onEvent: log.record)
        return (log.lines, result)
    }

    /// Two epochs of 3 steps, a checkpoint every 2 steps, progress every 2: every hook and event
    /// in the documented order (the standard callbacks' events before the caller's hooks).
    func testHooksAndEventsComeInTheirOrder() throws {
        let directory = NSTemporaryDirectory() + "ddp-callbacks-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (lines, result) = try fitLog(
            configure: {
                $0.checkpoints = CheckpointPolicy(directory: directory, everySteps: 2)
                $0.earlyStoppingMinDelta = 1000  // only the first epoch improves
            }, callbacks: { [HookRecorder($0)] })
        XCTAssertEqual(
            lines,
            [
                "ready", "trainBegin 0",
                "epochBegin 0", "stepEnd 1",
                "progress 0:2", "modelWillBeRead 2", "checkpoint step-00000002.safetensors", "stepEnd 2",
                "progress 0:3", "stepEnd 3",
                "modelWillBeRead 3", "checkpoint step-00000003.safetensors", "checkpoint best.safetensors", "epochEnd 0", "epoch 0",
                "epochBegin 3", "modelWillBeRead 4", "checkpoint step-00000004.safetensors", "stepEnd 4",
                "progress 1:2", "stepEnd 5",
                "progress 1:3", "stepEnd 6",
                "modelWillBeRead 6", "checkpoint step-00000006.safetensors", "epochEnd 1", "epoch 1",
                "modelWillBeRead 6", "trainEnd 6", "finished 6"
            ])
        XCTAssertFalse(result.stoppedEarly)
        XCTAssertEqual(result.position, TrainingPosition(epoch: 2, step: 6, best: result.epochs[0].validationLoss, epochsWithoutImprovement: 1))
    }

    /// A callback that asks to stop at an epoch's end: its event follows the `.epoch` event, the
    /// run ends (`trainEnd`, the test pass, `.finished`) and the result says it stopped early.
    func testACallbackCanEndTheRunAfterAnEpoch() throws {
        final class StopAfterFirstEpoch: TrainingCallback {
            func epochEnd(_ loop: TrainingLoop, metrics: EpochMetrics) throws {
                loop.requestStop(reporting: .stoppedEarly(epoch: metrics.epoch, best: 42))
            }
        }
        let (lines, result) = try fitLog(configure: { $0.logInterval = 0 }, callbacks: { [StopAfterFirstEpoch(), HookRecorder($0)] })
        XCTAssertEqual(
            lines,
            [
                "ready", "trainBegin 0", "epochBegin 0", "stepEnd 1", "stepEnd 2", "stepEnd 3",
                "modelWillBeRead 3", "epochEnd 0", "epoch 0", "stoppedEarly 0 42.0",
                "modelWillBeRead 3", "trainEnd 3", "finished 3"
            ])
        XCTAssertTrue(result.stoppedEarly)
        XCTAssertEqual(result.epochs.count, 1)
    }
}
