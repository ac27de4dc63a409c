import NN

/// Sums per-channel statistics across ranks for synchronized batch normalization: what
/// `ForwardContext.statisticsReducer` hands to layers, so every replica normalizes with the
/// global batch's statistics.
///
/// Layer calls cannot throw, so an MPI failure is kept and the values become NaN; the trainer
/// throws the kept error after the pass (`takeError()`). Every rank must make the same calls in
/// the same order, which is why a rank with an empty slice cannot skip forward when the model has
/// synchronized layers (the trainer rejects configurations that would give one).
public final class CommunicatorStatisticsReducer: StatisticsReducer {
    /// The ranks.
    public let communicator: Communicator
    private var error: Error?

    public init(communicator: Communicator) { self.communicator = communicator }

    /// Replaces each element of `values` with its sum over all ranks (a collective).
    ///
    /// - Parameter values: this rank's values on entry, the sums on return (NaN after a failure).
    public func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        guard communicator.size > 1 else { return }
        do {
            try communicator.allreduce(values, op: .sum)
        } catch let e {
            error = error ?? e
            for i in values.indices { values[i] = .nan }
        }
    }

    /// The first failure since the last call, if any, and forgets it.
    public func takeError() -> Error? {
        defer { error = nil }
        return error
    }
}
