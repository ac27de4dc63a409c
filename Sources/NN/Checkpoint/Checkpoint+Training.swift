/// What a training checkpoint records besides the tensors, stored in `__metadata__` as strings.
public struct TrainingMetadata: Equatable {
    /// Optimizer steps taken (the next step's index for the learning-rate schedule).
    public var step: Int
    /// Completed epochs.
    public var epoch: Int
    /// The state of the run's random generator (`SplitMix64.state`).
    public var rngState: UInt64
    /// The model specification as JSON (see `ModelSpec`).
    public var modelSpec: String
    /// The training options as JSON.
    public var options: String
    /// The optimizer's `summary`, for messages (empty when no optimizer was saved).
    public var optimizer: String

    /// - Parameters:
    ///   - step: optimizer steps taken.
    ///   - epoch: completed epochs.
    ///   - rngState: the run's generator state.
    ///   - modelSpec: the model specification JSON.
    ///   - options: the options JSON.
    ///   - optimizer: the optimizer's summary.
    public init(
        step: Int = 0, epoch: Int = 0, rngState: UInt64 = 0, modelSpec: String = "", options: String = "",
        optimizer: String = ""
    ) {
        self.step = step
        self.epoch = epoch
        self.rngState = rngState
        self.modelSpec = modelSpec
        self.options = options
        self.optimizer = optimizer
    }
}

extension Checkpoint {
    /// The `__metadata__` value of `format`.
    public static let trainingFormat = "swiftddp-training-1"

    /// Saves a model's parameters, the optimizer's state and the training metadata atomically.
    ///
    /// Every arena slot is a tensor named after the slot, with the slot's shape (non-trainable
    /// statistics included). Each optimizer buffer `b` is stored per slot as `optimizer.b.<slot>`
    /// with the slot's shape. Metadata keys: `format`, `step`, `epoch`, `rng_state`, `model_spec`,
    /// `options`, `optimizer`, and with an optimizer state `optimizer_step` and `optimizer_buffers`
    /// (buffer names, comma-separated).
    ///
    /// - Parameters:
    ///   - arena: the model's parameters.
    ///   - optimizer: the optimizer's state, or nil to save parameters only.
    ///   - metadata: step, epoch, RNG state, model spec and options.
    ///   - path: the destination (written through `<path>.tmp`).
    /// - Throws: `CheckpointError.writeFailed`; an existing file at `path` is then unchanged.
    public static func save(
        arena: ParameterArena, optimizer: OptimizerState?, metadata: TrainingMetadata,
        to path: String
    ) throws {
        var entries = arena.slots.map { slot in
            Entry(name: slot.name, shape: slot.shape) { buffer in
                buffer.baseAddress!.update(from: arena.parameters + slot.offset, count: slot.count)
            }
        }
        var header: [String: String] = [
            "format": trainingFormat, "step": "\(metadata.step)", "epoch": "\(metadata.epoch)",
            "rng_state": "\(metadata.rngState)", "model_spec": metadata.modelSpec, "options": metadata.options,
            "optimizer": metadata.optimizer
        ]
        if let optimizer {
            let names = optimizer.buffers.keys.filter { !optimizer.buffers[$0]!.isEmpty }.sorted()
            for name in names {
                let buffer = optimizer.buffers[name]!
                precondition(
                    buffer.count == arena.count,
                    "Optimizer buffer \(name) has \(buffer.count) floats but the arena has \(arena.count).")
                for slot in arena.slots {
                    entries.append(
                        Entry(name: "optimizer.\(name).\(slot.name)", shape: slot.shape) { out in
                            _ = out.update(fromContentsOf: buffer[slot.range])
                        })
                }
            }
            header["optimizer_step"] = "\(optimizer.step)"
            header["optimizer_buffers"] = names.joined(separator: ",")
        }
        try write(entries, metadata: header, to: path)
    }

    /// Loads a checkpoint written by `save(arena:optimizer:metadata:to:)` into an arena.
    ///
    /// Everything is validated before the arena is touched, so a failed load leaves it unchanged.
    ///
    /// - Parameters:
    ///   - path: the checkpoint.
    ///   - arena: receives every slot's parameters.
    /// - Returns: the metadata and, if one was saved, the optimizer state (buffers in the arena's
    ///   layout, padding zero) to assign to `Optimizer.state`.
    /// - Throws: `CheckpointError` for a bad file, a missing tensor or one of the wrong shape
    ///   (naming it, the expected and the found shape), or unparsable metadata.
    public static func load(from path: String, into arena: ParameterArena) throws
        -> (metadata: TrainingMetadata, optimizer: OptimizerState?)
    {
        try load(try read(from: path), into: arena)
    }

    /// Loads a checkpoint already read (see `load(from:into:)`) into an arena.
    ///
    /// - Parameters:
    ///   - checkpoint: the decoded file.
    ///   - arena: receives every slot's parameters.
    /// - Returns: the metadata and the optimizer state, as `load(from:into:)`.
    /// - Throws: `CheckpointError`, as `load(from:into:)`.
    public static func load(_ checkpoint: Checkpoint, into arena: ParameterArena) throws
        -> (metadata: TrainingMetadata, optimizer: OptimizerState?)
    {
        let path = checkpoint.path
        let parameters = try arena.slots.map { try checkpoint.tensor(named: $0.name, shape: $0.shape) }
        let meta = checkpoint.metadata
        func integer<T: FixedWidthInteger>(_ key: String, _ type: T.Type) throws -> T {
            guard let text = meta[key] else { throw CheckpointError.badMetadata(path: path, key: key, reason: "it is missing") }
            guard let value = T(text), value >= 0 else {
                throw CheckpointError.badMetadata(path: path, key: key, reason: "\"\(text)\" is not a non-negative integer")
            }
            return value
        }
        let metadata = TrainingMetadata(
            step: try integer("step", Int.self), epoch: try integer("epoch", Int.self),
            rngState: try integer("rng_state", UInt64.self),
            modelSpec: meta["model_spec"] ?? "", options: meta["options"] ?? "",
            optimizer: meta["optimizer"] ?? "")
        var optimizer: OptimizerState?
        if let list = meta["optimizer_buffers"] {
            var state = OptimizerState(step: try integer("optimizer_step", Int.self))
            for name in list.split(separator: ",").map(String.init) {
                var buffer = [Float](repeating: 0, count: arena.count)
                for slot in arena.slots {
                    let tensor = try checkpoint.tensor(named: "optimizer.\(name).\(slot.name)", shape: slot.shape)
                    buffer.replaceSubrange(slot.range, with: tensor.storage)
                }
                state.buffers[name] = buffer
            }
            optimizer = state
        }
        for (slot, tensor) in zip(arena.slots, parameters) { arena.setParameter(slot, tensor.storage) }
        return (metadata, optimizer)
    }
}
