/// Code the training loop calls at fixed points of a run, as Keras's and Lightning's callbacks:
/// checkpoints, early stopping, batch-norm averaging and progress reports are callbacks, and
/// `fit(…callbacks:…)` runs more after them.
///
/// The loop calls each hook on every callback in list order, on every rank at the same point of
/// the run, so a hook may use a collective (`loop.trainer.communicator`) as long as it does so on
/// every rank, and a decision made from reduced figures (`EpochMetrics`, `loop.stepTotals`) is the
/// same on every rank. An error a hook throws ends the run with that error. Every hook does
/// nothing unless a callback implements it.
///
/// One run, in order (`TrainingLoop`):
///
///     trainBegin
///     for each epoch:
///         epochBegin
///         for each step: {micro-batches, reduce, global loss, update}, stepEnd
///         modelWillBeRead, validation pass, epochEnd(metrics), .epoch event
///     modelWillBeRead, trainEnd, test pass, .finished event
///
/// Every event the loop or a callback reports reaches the caller's `onEvent`, then each
/// callback's `eventReported`.
public protocol TrainingCallback: AnyObject {
    /// After replica verification and the `.ready` (and `.resumed`) events, before the first step.
    func trainBegin(_ loop: TrainingLoop) throws

    /// Before an epoch's first step (also when a resumed run starts within the epoch).
    func epochBegin(_ loop: TrainingLoop) throws

    /// After an optimizer step: `loop.position` counts it, `loop.stepTotals` holds its global
    /// figures and `loop.epochTotals` includes them. Not called after the step at which a stop
    /// request ends the run within an epoch.
    func stepEnd(_ loop: TrainingLoop) throws

    /// Before the model is read on every rank (evaluated or saved): at each epoch's end before
    /// the validation pass, before `trainEnd`, and whenever a callback is about to read it at
    /// another point and asks for it (`TrainingLoop.prepareModelForReading()`).
    func modelWillBeRead(_ loop: TrainingLoop) throws

    /// After an epoch's validation pass, before its `.epoch` event; `loop.position` is already at
    /// the next epoch's start.
    ///
    /// - Parameter metrics: the epoch's figures (`seconds` is still 0: the loop sets it after
    ///   every callback, so that it includes them).
    func epochEnd(_ loop: TrainingLoop, metrics: EpochMetrics) throws

    /// After the last step (the last epoch, early stopping, `stopAfterSteps` or a stop request),
    /// before the test pass.
    func trainEnd(_ loop: TrainingLoop) throws

    /// After the caller of `fit` received `event` (`TrainingLoop.report(_:)`): an epoch's figures
    /// complete with their `seconds` (`.epoch`), the run's with the test pass (`.finished`).
    /// Cannot fail the run (events are also reported from other hooks); a callback that writes
    /// what it sees here checks its file when it is made.
    func eventReported(_ loop: TrainingLoop, event: TrainingEvent)
}

public extension TrainingCallback {
    func trainBegin(_ loop: TrainingLoop) throws {}
    func epochBegin(_ loop: TrainingLoop) throws {}
    func stepEnd(_ loop: TrainingLoop) throws {}
    func modelWillBeRead(_ loop: TrainingLoop) throws {}
    func epochEnd(_ loop: TrainingLoop, metrics: EpochMetrics) throws {}
    func trainEnd(_ loop: TrainingLoop) throws {}
    func eventReported(_ loop: TrainingLoop, event: TrainingEvent) {}
}
