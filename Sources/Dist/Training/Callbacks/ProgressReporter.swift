/// Reports `.progress` every `interval` optimizer steps and at each epoch's last step: the mean
/// loss and accuracy since the last report, the learning rate, samples per second since the epoch
/// started, and the time left in the epoch at that pace.
final class ProgressReporter: TrainingCallback {
    /// Steps between reports (0: none; the `.epoch` event still comes).
    let interval: Int
    /// The global figures of the steps since the last report. (An epoch's last step always
    /// reports, so a new epoch starts with an empty window.)
    private var window = BatchTotals()

    init(interval: Int) {
        self.interval = interval
    }

    func stepEnd(_ loop: TrainingLoop) throws {
        window += loop.stepTotals
        let done = loop.position.stepInEpoch, steps = loop.stepsPerEpoch
        guard interval > 0 && (done % interval == 0 || done == steps) else { return }
        let seconds = loop.epochTrainingSeconds
        loop.report(
            .progress(
                StepProgress(
                    epoch: loop.position.epoch, step: done, steps: steps, globalStep: loop.position.step,
                    loss: window.meanLoss, accuracy: window.accuracy,
                    learningRate: Double(loop.trainer.optimizer.learningRate),
                    samplesPerSecond: Double(loop.epochTotals.count) / max(seconds, 1e-9),
                    secondsLeft: seconds / Double(loop.epochStepsRun) * Double(steps - done))))
        window = BatchTotals()
    }
}
