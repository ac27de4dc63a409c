/// Writes the run's checkpoints on rank 0 (Keras's `ModelCheckpoint`): `step-N.safetensors`
/// every `everySteps` steps within an epoch, at each epoch's end and at the run's end when that
/// step is not saved yet, keeping the newest `keepLast`; and `best.safetensors` at each epoch
/// whose monitored figure improved (by `EarlyStopping`, whose state each checkpoint records).
///
/// Every rank calls it alike: each checks the parameters before rank 0 writes, and a checkpoint
/// within an epoch first makes the model readable (`TrainingLoop.prepareModelForReading()`:
/// batch-norm statistics averaged over the ranks), as the epoch's end does before its own.
final class Checkpointing: TrainingCallback {
    /// The folder and when to write.
    let checkpoints: TrainingCheckpoints
    /// Says whether an epoch's figure was a new best (it runs before this callback).
    let best: EarlyStopping
    /// The step of the last checkpoint this run has (nil before `trainBegin`).
    private(set) var lastSaved: Int?

    /// Creates the folder on rank 0 (and clears what a writer killed mid-write left there).
    ///
    /// - Throws: `CheckpointError.writeFailed` on rank 0 when the folder cannot be created.
    init(policy: CheckpointPolicy, isRoot: Bool, best: EarlyStopping) throws {
        checkpoints = try TrainingCheckpoints(policy: policy, isRoot: isRoot)
        self.best = best
    }

    /// Whether a step checkpoint follows the step that brought the run to `position`: every
    /// `everySteps` steps in all, except an epoch's last step (the epoch's end writes that one).
    static func savesAfterStep(_ position: TrainingPosition, everySteps: Int, stepsPerEpoch: Int) -> Bool {
        everySteps > 0 && position.step % everySteps == 0 && position.stepInEpoch < stepsPerEpoch
    }

    func trainBegin(_ loop: TrainingLoop) throws {
        lastSaved = loop.position.step  // the checkpoint resumed from needs no copy
    }

    func stepEnd(_ loop: TrainingLoop) throws {
        guard Checkpointing.savesAfterStep(loop.position, everySteps: checkpoints.policy.everySteps, stepsPerEpoch: loop.stepsPerEpoch) else {
            return
        }
        try loop.prepareModelForReading()
        try save(loop)
    }

    func epochEnd(_ loop: TrainingLoop, metrics: EpochMetrics) throws {
        try save(loop)
        if best.improved { try save(loop, name: TrainingCheckpoints.bestName) }
    }

    func trainEnd(_ loop: TrainingLoop) throws {
        if lastSaved != loop.position.step { try save(loop) }
    }

    /// Writes `name` (default: the step's file), reports it and, for a step file, prunes old ones.
    private func save(_ loop: TrainingLoop, name: String? = nil) throws {
        let path = checkpoints.path(name ?? TrainingCheckpoints.stepName(loop.position.step))
        if try loop.trainer.saveCheckpoint(position: loop.position, to: path) {
            loop.report(.checkpoint(path: path))
            if name == nil { checkpoints.prune() }
        }
        if name == nil { lastSaved = loop.position.step }
    }
}
