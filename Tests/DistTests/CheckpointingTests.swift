import XCTest

@testable import Dist
@testable import NN

/// Checkpoints on a scripted run: which steps write a file, what each event says, pruning, the
/// best checkpoint, and the state a checkpoint records.
final class CheckpointingTests: XCTestCase {
    /// Every `everySteps` steps in all, counted across epochs, except an epoch's last step (the
    /// epoch's end writes that one); never with 0.
    func testStepCadenceSkipsEpochEnds() {
        func saved(everySteps: Int) -> [Int] {
            var position = TrainingPosition(), steps: [Int] = []
            for _ in 0 ..< 3 {
                for _ in 0 ..< 5 {
                    position.stepInEpoch += 1
                    position.step += 1
                    if Checkpointing.savesAfterStep(position, everySteps: everySteps, stepsPerEpoch: 5) { steps.append(position.step) }
                }
                position.epoch += 1
                position.stepInEpoch = 0
            }
            return steps
        }
        XCTAssertEqual(saved(everySteps: 3), [3, 6, 9, 12], "step 15 ends the last epoch")
        XCTAssertEqual(saved(everySteps: 5), [], "every 5th step ends an epoch")
        XCTAssertEqual(saved(everySteps: 0), [])
    }

    /// Drives the callback through two epochs of 3 steps (every 2 steps, keep the newest 2): the
    /// model is made readable before a step's checkpoint, the epoch's end writes its step and the
    /// best file, old step files are pruned, and the end writes nothing already saved.
    func testScriptedRunWritesAndPrunes() throws {
        let directory = NSTemporaryDirectory() + "ddp-checkpointing-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = RunLog()
        let loop = try makeLoop(callbacks: [HookRecorder(log)], log: log)
        loop.stepsPerEpoch = 3
        let best = EarlyStopping(monitor: .validationLoss, patience: nil, minDelta: 0)
        let checkpointing = try Checkpointing(policy: CheckpointPolicy(directory: directory, everySteps: 2, keepLast: 2), isRoot: true, best: best)
        try checkpointing.trainBegin(loop)
        for (epoch, loss) in [(0, 0.5), (1, 0.6)] {
            for _ in 0 ..< 3 {
                loop.position.stepInEpoch += 1
                loop.position.step += 1
                try checkpointing.stepEnd(loop)
            }
            loop.position.epoch += 1
            loop.position.stepInEpoch = 0
            let metrics = EpochMetrics(
                epoch: epoch, trainLoss: 1, trainAccuracy: 0, trainSamples: 24, validationLoss: loss,
                validationAccuracy: 0.5, seconds: 0)
            try best.epochEnd(loop, metrics: metrics)
            try checkpointing.epochEnd(loop, metrics: metrics)
        }
        try checkpointing.trainEnd(loop)
        XCTAssertEqual(
            log.lines,
            [
                "modelWillBeRead 2", "checkpoint step-00000002.safetensors",
                "checkpoint step-00000003.safetensors", "checkpoint best.safetensors",
                "modelWillBeRead 4", "checkpoint step-00000004.safetensors",
                "checkpoint step-00000006.safetensors"
            ])
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: directory).sorted(),
            ["best.safetensors", "step-00000004.safetensors", "step-00000006.safetensors"])
        // The best file records early stopping's state at epoch 0's end.
        let restored = try loop.trainer.restore(from: directory + "/best.safetensors", trainingSamples: 0).position
        XCTAssertEqual(restored, TrainingPosition(epoch: 1, step: 3, best: 0.5))
        let last = try loop.trainer.restore(from: directory, trainingSamples: 0).position
        XCTAssertEqual(last, TrainingPosition(epoch: 2, step: 6, best: 0.5, epochsWithoutImprovement: 1))
    }

    /// The end writes the step it stopped at when no checkpoint has it (a stop within an epoch),
    /// and nothing when the run resumed at that step and took none.
    func testTheEndWritesOnlyWhatIsNotSaved() throws {
        let directory = NSTemporaryDirectory() + "ddp-checkpointing-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = RunLog()
        let loop = try makeLoop(log: log)
        loop.stepsPerEpoch = 10
        loop.position = TrainingPosition(epoch: 1, stepInEpoch: 4, step: 14)
        let best = EarlyStopping(monitor: .validationLoss, patience: nil, minDelta: 0)
        let checkpointing = try Checkpointing(policy: CheckpointPolicy(directory: directory), isRoot: true, best: best)
        try checkpointing.trainBegin(loop)
        try checkpointing.trainEnd(loop)
        XCTAssertEqual(log.lines, [], "resumed at step 14, stopped there")
        loop.position.stepInEpoch += 1
        loop.position.step += 1
        try checkpointing.stepEnd(loop)
        try checkpointing.trainEnd(loop)
        XCTAssertEqual(log.lines, ["checkpoint step-00000015.safetensors"])
    }

    /// Other ranks check the parameters and write nothing (the folder is rank 0's).
    func testOnlyRankZeroWrites() throws {
        let directory = NSTemporaryDirectory() + "ddp-checkpointing-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard
            let lines = values(
                runRanks(2) { c -> [String] in
                    let log = RunLog()
                    let loop = try makeLoop(communicator: c, log: log)
                    let best = EarlyStopping(monitor: .validationLoss, patience: nil, minDelta: 0)
                    let checkpointing = try Checkpointing(policy: CheckpointPolicy(directory: directory), isRoot: c.isRoot, best: best)
                    try checkpointing.trainBegin(loop)
                    loop.position.step += 1
                    try checkpointing.trainEnd(loop)
                    return log.lines
                })
        else { return }
        XCTAssertEqual(lines, [["checkpoint step-00000001.safetensors"], []])
    }
}
