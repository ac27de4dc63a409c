import NN

/// What every rank must agree on before training: model, parameter layout, optimizer, loss, data
/// shape and options, as an ordered list of named items.
///
/// Rank 0 broadcasts its fingerprint; each rank finds the first item where it differs; every rank
/// then learns the first difference of the lowest such rank and throws the same error, naming it:
/// `layer 3: rank 1 has dense(128), rank 0 has dense(256)` (PyTorch DDP's
/// `verify_replica0_across_processes`, with a message).
public struct ReplicaFingerprint: Equatable {
    /// One thing that must agree.
    public struct Item: Equatable {
        /// What it is: `"layer 3"`, `"parameter 0.conv2d.weight"`, `"option lr"`.
        public var key: String
        /// This rank's value.
        public var value: String

        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// The items, in the order they are compared.
    public var items: [Item]

    public init(items: [Item]) { self.items = items }

    /// The fingerprint of a built model and everything that trains it.
    ///
    /// - Parameters:
    ///   - spec: the model description (its name).
    ///   - model: the built model (layers, parameter slots).
    ///   - optimizer: its summary (hyperparameters).
    ///   - loss: its name.
    ///   - dataset: sample shape, class count and size, when there is one.
    ///   - options: other options that must agree, e.g. `("batch-size", "64")`, in a fixed order.
    public init(
        spec: ModelSpec, model: Sequential, optimizer: Optimizer?, loss: Loss?, dataset: Dataset?,
        options: [(String, String)]
    ) {
        var items = [
            Item("model", spec.name), Item("input shape", "\(model.inputShape)"),
            Item("layer count", "\(model.layers.count)")
        ]
        for (i, summary) in model.layerSummaries.enumerated() { items.append(Item("layer \(i)", summary)) }
        for slot in model.arena.slots {
            items.append(Item("parameter \(slot.name)", "\(slot.shape)\(slot.trainable ? "" : " (not trainable)")"))
        }
        items.append(Item("parameter count", "\(model.arena.parameterCount)"))
        if let optimizer { items.append(Item("optimizer", optimizer.summary)) }
        if let loss { items.append(Item("loss", loss.name)) }
        if let dataset {
            items.append(Item("dataset sample shape", "\(dataset.sampleShape)"))
            items.append(Item("dataset classes", "\(dataset.classCount)"))
            items.append(Item("dataset size", "\(dataset.count)"))
        }
        for (name, value) in options { items.append(Item("option \(name)", value)) }
        self.items = items
        self.items.append(Item("options hash", String(ReplicaFingerprint.hash(self.items), radix: 16)))
    }

    /// A 64-bit FNV-1a hash of the items, for logs.
    public var digest: UInt64 { ReplicaFingerprint.hash(items) }

    static func hash(_ items: [Item]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in encode(items) { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    static func encode(_ items: [Item]) -> [UInt8] {
        // Keys and values never contain newlines or tabs (they are summaries and numbers).
        Array(items.map { "\($0.key)\t\($0.value)" }.joined(separator: "\n").utf8)
    }

    static func decode(_ bytes: [UInt8]) -> [Item] {
        let text = String(decoding: bytes, as: UTF8.self)
        guard !text.isEmpty else { return [] }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            return Item(String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
    }

    /// The first item where this fingerprint (on rank `rank`) differs from rank 0's.
    ///
    /// - Returns: the item's position and a message naming it, or nil when they agree.
    public func firstDifference(from reference: ReplicaFingerprint, rank: Int) -> (index: Int, message: String)? {
        let n = max(items.count, reference.items.count)
        for i in 0 ..< n {
            let mine = i < items.count ? items[i] : nil
            let theirs = i < reference.items.count ? reference.items[i] : nil
            if mine == theirs { continue }
            if let mine, let theirs, mine.key == theirs.key {
                return (i, "\(mine.key): rank \(rank) has \(mine.value), rank 0 has \(theirs.value)")
            }
            let m = mine.map { "\($0.key) = \($0.value)" } ?? "nothing"
            let t = theirs.map { "\($0.key) = \($0.value)" } ?? "nothing"
            return (i, "item \(i): rank \(rank) has \(m), rank 0 has \(t)")
        }
        return nil
    }

    /// Checks that every rank has the same fingerprint as rank 0.
    ///
    /// A collective: every rank calls it, and either every rank returns or every rank throws the
    /// same error.
    /// - Parameter communicator: the ranks.
    /// - Throws: `DistError.replicaMismatch` naming the first difference of the lowest rank that
    ///   differs; `DistError.mpi` when a collective fails.
    public func verify(across communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        var bytes = ReplicaFingerprint.encode(items)
        try communicator.broadcast(bytes: &bytes, from: 0)
        let reference = ReplicaFingerprint(items: ReplicaFingerprint.decode(bytes))
        let difference = firstDifference(from: reference, rank: communicator.rank)
        // Gather each rank's first differing position (-1: none) so all ranks pick the same culprit.
        let positions = try communicator.gather(Double(difference?.index ?? -1))
        let culprits = positions.enumerated().filter { $0.element >= 0 }
        guard let first = culprits.min(by: { ($0.element, $0.offset) < ($1.element, $1.offset) }) else { return }
        let message = try communicator.broadcast(difference?.message ?? "", from: first.offset)
        throw DistError.replicaMismatch(message)
    }
}
