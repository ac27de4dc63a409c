/// Records the run's timeline (`Timeline`: forward, each layer's backward, the bucket reductions
/// and the optimizer steps, per rank) from the first step to the last, and writes each rank's
/// trace when training ends (`ddp train --timeline`).
///
/// Every rank starts its clock after a barrier at `trainBegin`, so the ranks' traces share one
/// origin; the trace is written at `trainEnd`, also when a stop request ended the run.
public final class TimelineRecording: TrainingCallback {
    /// The file name every rank's trace is named after (`Timeline.path(for:rank:)`).
    public let template: String
    /// Where this rank wrote its trace, once training ended.
    public private(set) var writtenPath: String?

    /// - Parameter template: the file name, e.g. `trace.json` (rank r writes `trace.rank<r>.json`).
    public init(template: String) {
        self.template = template
    }

    /// Starts the clock after a barrier (a collective: every rank calls it at the same point).
    public func trainBegin(_ loop: TrainingLoop) throws {
        loop.trainer.timeline = try Timeline.synchronized(across: loop.trainer.communicator)
    }

    /// Writes this rank's trace.
    ///
    /// - Throws: the file's error when it cannot be written.
    public func trainEnd(_ loop: TrainingLoop) throws {
        guard let timeline = loop.trainer.timeline else { return }
        writtenPath = try timeline.write(rankFileFor: template)
    }
}
