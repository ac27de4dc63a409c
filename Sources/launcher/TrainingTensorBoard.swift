import Dist
import Export
import Foundation

/// `ddp train --tensorboard DIR` on rank 0: the trainer's events as TensorBoard scalars, laid out
/// as Keras's TensorBoard callback does (`DIR/train`, `DIR/validation`, and `DIR/test` for the
/// final test figures), so TensorBoard overlays training and validation curves per tag.
///
/// Tags: `epoch_loss`, `epoch_accuracy` (train and validation; x = the epoch, from 1),
/// `epoch_learning_rate`, `epoch_samples_per_second` (train); `batch_loss`, `batch_accuracy`,
/// `batch_learning_rate`, `batch_samples_per_second` (train; x = the optimizer step, at every
/// progress report, i.e. every --log-interval steps); `test_loss`, `test_accuracy` (test; x = the
/// last step).
final class TrainingTensorBoard {
    private var writer: TensorBoardWriter?

    /// Opens the log folder on rank 0; nil elsewhere or without a folder.
    ///
    /// - Throws: `ExportError.cannotWrite` when the folder cannot be created.
    init?(directory: String?, isRoot: Bool) throws {
        guard let directory, isRoot else { return nil }
        writer = try TensorBoardWriter(directory: directory)
    }

    /// Appends the scalars of one event. A write that fails is reported once on stderr, and no
    /// more events are written (training goes on).
    func handle(_ event: TrainingEvent) {
        guard let writer else { return }
        do {
            switch event {
            case let .progress(p):
                try writer.scalar("batch_loss", p.loss, step: p.globalStep)
                try writer.scalar("batch_accuracy", p.accuracy, step: p.globalStep)
                try writer.scalar("batch_learning_rate", p.learningRate, step: p.globalStep)
                try writer.scalar("batch_samples_per_second", p.samplesPerSecond, step: p.globalStep)
            case let .epoch(m):
                let x = m.epoch + 1
                try writer.scalar("epoch_loss", m.trainLoss, step: x)
                try writer.scalar("epoch_accuracy", m.trainAccuracy, step: x)
                try writer.scalar("epoch_learning_rate", m.learningRate, step: x)
                try writer.scalar("epoch_samples_per_second", m.samplesPerSecond, step: x)
                if let loss = m.validationLoss, let accuracy = m.validationAccuracy {
                    try writer.scalar("epoch_loss", loss, step: x, run: .validation)
                    try writer.scalar("epoch_accuracy", accuracy, step: x, run: .validation)
                }
            case let .finished(m):
                if let loss = m.testLoss, let accuracy = m.testAccuracy {
                    try writer.scalar("test_loss", loss, step: m.step, run: .test)
                    try writer.scalar("test_accuracy", accuracy, step: m.step, run: .test)
                }
            default:
                break
            }
        } catch {
            printError("[rank 0] warning: --tensorboard: \(error); no more events are written")
            self.writer = nil
        }
    }
}
