/// Keeps the best monitored validation figure and ends the run when it has not improved for
/// `patience` epochs (Keras's `EarlyStopping`).
///
/// Its state lives in the loop's `TrainingPosition` (`best`, `epochsWithoutImprovement`), so every
/// checkpoint records it and a resumed run continues counting where the checkpoint left off. It
/// runs even without a patience: the best figure also picks `best.safetensors` (`Checkpointing`
/// reads `improved`). The figures are reduced over every rank, so every rank decides alike.
final class EarlyStopping: TrainingCallback {
    /// The figure watched, and whether lower or higher is better.
    let monitor: MonitoredMetric
    /// Epochs without improvement that end the run (nil: never end it).
    let patience: Int?
    /// The smallest change that counts as an improvement.
    let minDelta: Double
    /// Whether the last epoch's figure was a new best.
    private(set) var improved = false

    init(monitor: MonitoredMetric, patience: Int?, minDelta: Double) {
        self.monitor = monitor
        self.patience = patience
        self.minDelta = minDelta
    }

    /// Updates `position` with one epoch's figures.
    ///
    /// An epoch without the monitored figure (no validation set) changes nothing.
    /// - Returns: whether the figure improved, and whether the run should stop (with the best figure).
    func judge(_ metrics: EpochMetrics, position: inout TrainingPosition) -> (improved: Bool, stopWithBest: Double?) {
        var improved = false
        if let value = monitor.value(of: metrics) {
            if monitor.improves(value, on: position.best, minDelta: minDelta) {
                position.best = value
                position.epochsWithoutImprovement = 0
                improved = true
            } else {
                position.epochsWithoutImprovement += 1
            }
        }
        guard let patience, position.epochsWithoutImprovement >= patience, let best = position.best else { return (improved, nil) }
        return (improved, best)
    }

    func epochEnd(_ loop: TrainingLoop, metrics: EpochMetrics) throws {
        let verdict = judge(metrics, position: &loop.position)
        improved = verdict.improved
        if let best = verdict.stopWithBest { loop.requestStop(reporting: .stoppedEarly(epoch: metrics.epoch, best: best)) }
    }
}
