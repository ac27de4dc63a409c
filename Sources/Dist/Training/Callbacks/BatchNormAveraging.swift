import NN

/// Averages the running statistics of batch-norm layers that are not synchronized before the
/// model is read (`modelWillBeRead`: validation, checkpoints, the test pass), so every rank
/// evaluates and saves the same figures.
///
/// Each rank's unsynchronized layers saw only its own slices. Synchronized layers already agree,
/// and so does every layer in deterministic mode (each step applies every chunk's statistics in
/// chunk order on every rank), so this does nothing there, nor on one rank.
final class BatchNormAveraging: TrainingCallback {
    func modelWillBeRead(_ loop: TrainingLoop) throws {
        try BatchNormAveraging.average(loop.trainer)
    }

    /// Replaces the running statistics of `trainer`'s unsynchronized batch-norm layers with their
    /// mean over the ranks. A collective (a no-op on one rank and in deterministic mode).
    ///
    /// - Throws: `DistError.mpi` when the allreduce fails.
    static func average(_ trainer: DataParallelTrainer) throws {
        guard trainer.communicator.size > 1, trainer.configuration.reduction == .fast else { return }
        let model = trainer.model, arena = model.arena
        let slots = model.layers.indices.filter { model.layers[$0].usesBatchStatistics && !model.layers[$0].isSynchronized }
            .flatMap { model.slots(ofLayer: $0).filter { !$0.trainable } }
        guard !slots.isEmpty else { return }
        var values: [Float] = []
        for slot in slots { values += UnsafeBufferPointer(start: arena.parameters + slot.offset, count: slot.count) }
        try trainer.communicator.allreduce(&values, op: .sum)
        let scale = 1 / Float(trainer.communicator.size)
        var at = 0
        for slot in slots {
            arena.setParameter(slot, values[at ..< at + slot.count].map { $0 * scale })
            at += slot.count
        }
    }
}
