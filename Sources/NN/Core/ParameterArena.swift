/// Where one parameter tensor lives in the arenas.
public struct ParameterSlot: Equatable, Codable {
    /// A dotted name, unique within the model: `"0.conv2d.weight"`.
    public var name: String
    /// The first element's index in the parameter (and gradient) arena.
    public var offset: Int
    /// The tensor's shape, e.g. `[K, C, R, S]` for a convolution's weight.
    public var shape: [Int]
    /// The number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// The half-open element range in the arena.
    public var range: Range<Int> { offset ..< offset + count }
    /// False for state that is not learned by gradient (batch-norm running statistics): optimizers
    /// skip such slots, but broadcasts and checkpoints carry them like any parameter.
    public var trainable: Bool

    public init(name: String, offset: Int, shape: [Int], trainable: Bool = true) {
        self.name = name
        self.offset = offset
        self.shape = shape
        self.trainable = trainable
    }
}

/// All of a model's parameters in one contiguous buffer, and all its gradients in a second buffer
/// with the same layout.
///
/// Layers hold slots (offset and shape), not storage. The optimizer runs one flat loop over the
/// arenas, the allreduce works on views of the gradient arena, and a checkpoint is one write.
/// Buffers are 64-byte aligned and each slot starts on a 16-float boundary, so SIMD loads of a slot
/// are aligned.
public final class ParameterArena {
    /// The slots, in the order the layers declared them (forward order).
    public let slots: [ParameterSlot]
    /// The number of floats in each arena, padding between slots included.
    public let count: Int
    /// The parameters. Written by initializers, the optimizer and broadcasts.
    public let parameters: UnsafeMutablePointer<Float>
    /// The gradients, same layout. Backward adds into it; `zeroGradients()` clears it.
    public let gradients: UnsafeMutablePointer<Float>

    /// Lays out one slot per `(name, shape)` pair and allocates both arenas, zero-filled.
    ///
    /// - Parameter tensors: names (unique), shapes and whether each is trainable, in declaration order.
    public init(tensors: [(name: String, shape: [Int], trainable: Bool)]) {
        var slots: [ParameterSlot] = []
        var offset = 0
        var seen = Set<String>()
        for (name, shape, trainable) in tensors {
            precondition(seen.insert(name).inserted, "Parameter name \(name) is used twice.")
            precondition(shape.allSatisfy { $0 > 0 }, "Parameter \(name) has an empty shape \(shape).")
            slots.append(ParameterSlot(name: name, offset: offset, shape: shape, trainable: trainable))
            // Overflow-checked: a size that wraps would allocate a small arena and write past it.
            // Model descriptions from files are bounded first (`ModelSpec.maxParameterCount`).
            var count = 1
            for extent in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: extent)
                precondition(
                    !overflow && product <= Int.max - 16 - offset,
                    "Parameter \(name) of shape \(shape) at offset \(offset) does not fit in an arena.")
                count = product
            }
            offset += (count + 15) / 16 * 16
        }
        self.slots = slots
        self.count = offset
        parameters = AlignedMemory.zeroedFloats(max(offset, 16))
        gradients = AlignedMemory.zeroedFloats(max(offset, 16))
        parameterOwner = nil
    }

    /// An arena that reads `other`'s parameters (the same buffer, kept alive by this one) and has
    /// gradients of its own, zero-filled: a worker thread's backward adds into it while another
    /// thread's adds into `other`'s.
    public init(sharingParametersOf other: ParameterArena) {
        slots = other.slots
        count = other.count
        parameters = other.parameters
        gradients = AlignedMemory.zeroedFloats(max(other.count, 16))
        parameterOwner = other
    }

    /// The arena whose parameters this one reads, if it does not own them.
    private let parameterOwner: ParameterArena?

    deinit {
        if parameterOwner == nil { AlignedMemory.free(parameters) }
        AlignedMemory.free(gradients)
    }

    /// The number of trainable scalars (padding excluded).
    public var parameterCount: Int { slots.reduce(0) { $0 + $1.count } }

    /// Sets every gradient to zero. Backward adds, so call this before each accumulation window.
    public func zeroGradients() {
        gradients.update(repeating: 0, count: count)
    }

    /// The slot with the given name, if any.
    public func slot(named name: String) -> ParameterSlot? { slots.first { $0.name == name } }

    /// A copy of one parameter tensor.
    public func parameter(_ slot: ParameterSlot) -> Tensor {
        Tensor(shape: slot.shape, values: Array(UnsafeBufferPointer(start: parameters + slot.offset, count: slot.count)))
    }

    /// A copy of one gradient tensor.
    public func gradient(_ slot: ParameterSlot) -> Tensor {
        Tensor(shape: slot.shape, values: Array(UnsafeBufferPointer(start: gradients + slot.offset, count: slot.count)))
    }

    /// Overwrites one parameter tensor.
    public func setParameter(_ slot: ParameterSlot, _ values: [Float]) {
        precondition(
            values.count == slot.count,
            "Parameter \(slot.name) has \(slot.count) elements, got \(values.count).")
        values.withUnsafeBufferPointer { (parameters + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
    }

    /// The whole parameter arena as an array (padding included), e.g. for comparisons.
    public func parameterSnapshot() -> [Float] { Array(UnsafeBufferPointer(start: parameters, count: count)) }

    /// The whole gradient arena as an array (padding included).
    public func gradientSnapshot() -> [Float] { Array(UnsafeBufferPointer(start: gradients, count: count)) }

    /// Copies all parameters from another arena with the same layout.
    public func copyParameters(from other: ParameterArena) {
        precondition(other.slots == slots, "Cannot copy parameters between arenas of different layouts.")
        parameters.update(from: other.parameters, count: count)
    }
}
