import NN

/// Makes every replica start from rank 0's state: parameters and optimizer state are broadcast
/// once, after verification; from then on identical steps keep the replicas identical.
public enum ReplicaBroadcast {
    /// Copies the whole parameter arena (non-trainable state included) from `root`.
    ///
    /// - Throws: `DistError.mpi` when the broadcast fails.
    public static func broadcastParameters(_ arena: ParameterArena, from root: Int = 0, communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        try communicator.broadcast(UnsafeMutableBufferPointer(start: arena.parameters, count: arena.count), from: root)
    }

    /// Copies the optimizer's state (step and every named buffer) from `root`.
    ///
    /// The root's buffer names and sizes win: other ranks' buffers are replaced.
    /// - Throws: `DistError.mpi` when a broadcast fails.
    public static func broadcastOptimizerState(_ optimizer: Optimizer, from root: Int = 0, communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        var state = optimizer.state
        let names = state.buffers.keys.sorted()
        let header = names.map { "\($0)=\(state.buffers[$0]!.count)" }.joined(separator: ",")
        let rootHeader = try communicator.broadcast("\(state.step);\(header)", from: root)
        let parts = rootHeader.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
        state.step = Int(parts[0]) ?? 0
        var buffers: [String: [Float]] = [:]
        for entry in (parts.count > 1 ? parts[1] : "").split(separator: ",") {
            let pair = entry.split(separator: "=")
            let name = String(pair[0]), count = Int(pair[1]) ?? 0
            var values = state.buffers[name] ?? []
            if values.count != count { values = [Float](repeating: 0, count: count) }
            try communicator.broadcast(&values, from: root)
            buffers[name] = values
        }
        state.buffers = buffers
        optimizer.state = state
    }
}
