/// What a layer's forward pass needs besides its input.
public struct ForwardContext {
    /// Training mode (dropout active, batch norm uses batch statistics) or inference.
    public var training: Bool
    /// One key per sample of the batch, stable across ranks: derived from the run's seed, the epoch
    /// and the sample's index in the dataset. Per-sample randomness (dropout masks) is drawn from
    /// these keys, so a sample gets the same mask whichever rank processes it.
    public var sampleKeys: [UInt64]

    /// Sums per-channel statistics across replicas for synchronized batch normalization; nil when
    /// the model runs alone (statistics are then the local batch's).
    public var statisticsReducer: (any StatisticsReducer)?

    /// - Parameters:
    ///   - training: whether the pass is for training.
    ///   - sampleKeys: one key per sample (may be empty at inference).
    ///   - statisticsReducer: where synchronized layers sum their statistics across replicas.
    public init(training: Bool, sampleKeys: [UInt64] = [], statisticsReducer: (any StatisticsReducer)? = nil) {
        self.training = training
        self.sampleKeys = sampleKeys
        self.statisticsReducer = statisticsReducer
    }
}

/// Sums small buffers of statistics over every replica of a data-parallel job.
///
/// Synchronized batch normalization calls it from forward (per-channel count, sum and sum of
/// squares) and from backward (two per-channel sums), so every replica normalizes with the global
/// batch's statistics. NN never sees MPI: the distributed layer implements this protocol with an
/// allreduce; tests implement it in-process. Every replica must make the same calls in the same
/// order, with buffers of the same length.
public protocol StatisticsReducer {
    /// Replaces each element of `values` with its sum over all replicas (in place).
    ///
    /// - Parameter values: this replica's values on entry, the sums over replicas on return.
    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>)
}

/// A declared parameter tensor: its local name, shape and how it starts.
public struct ParameterSpec: Equatable {
    /// The name within the layer: `"weight"`, `"bias"`.
    public var name: String
    /// The shape.
    public var shape: [Int]
    /// How to fill it before training.
    public var initializer: Initializer
    /// False for non-learned state such as running statistics (optimizers skip it).
    public var trainable: Bool

    public init(name: String, shape: [Int], initializer: Initializer, trainable: Bool = true) {
        self.name = name
        self.shape = shape
        self.initializer = initializer
        self.trainable = trainable
    }
}

/// One stage of a sequential model.
///
/// Shapes exclude the batch: a layer maps a per-sample input shape (`[C, H, W]` or `[F]`) to a
/// per-sample output shape. `forward` takes and returns whole batches (`[N, …]`). `backward` must
/// follow the `forward` of the same batch; it *adds* parameter gradients into the arena and
/// returns the gradient with respect to the input.
public protocol Layer {
    /// A short, stable description of the layer and its hyperparameters, e.g. `conv2d(32,5x5,s1,same)`.
    /// Replica verification compares these across ranks.
    var summary: String { get }

    /// The per-sample output shape for a per-sample input shape.
    ///
    /// - Throws: `ModelError.shapeMismatch` when the input does not fit the layer.
    func outputShape(for inputShape: [Int]) throws -> [Int]

    /// The parameter tensors the layer needs for the given per-sample input shape.
    func parameterSpecs(for inputShape: [Int]) -> [ParameterSpec]

    /// Records where the layer's parameters live (one slot per spec, same order).
    mutating func bind(slots: [ParameterSlot])

    /// Computes the output for a batch, caching what backward needs.
    mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor

    /// Adds the parameter gradients into `arena.gradients` and returns the gradient of the input.
    mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor

    /// `backward(_:arena:)`, letting a long layer call `context.progress` between blocks of its
    /// work (same gradients up to the rounding of sums split by block). By default it ignores the
    /// context.
    mutating func backward(_ gradOutput: Tensor, arena: ParameterArena, context: BackwardContext) -> Tensor

    /// Lets go of the input kept from the last forward for backward. That input is the previous
    /// layer's output buffer, which the previous layer overwrites in the next forward: while this
    /// layer still holds it, the write copies it instead (an allocation per step).
    /// `Sequential.forward` calls it on every layer first. By default there is nothing to release.
    mutating func releaseInput()

    /// Whether training normalizes with statistics of the batch, keeping running statistics in
    /// non-trainable slots (batch norm). Such a layer's output depends on how the batch is split
    /// across ranks and threads. False by default.
    var usesBatchStatistics: Bool { get }

    /// Whether the layer sums its batch statistics across replicas in forward, so that every rank
    /// normalizes with the global batch's (a synchronized batch norm): every rank must then run
    /// forward on every step. False by default.
    var isSynchronized: Bool { get }
}

extension Layer {
    public func parameterSpecs(for inputShape: [Int]) -> [ParameterSpec] { [] }
    public mutating func bind(slots: [ParameterSlot]) {}
    public mutating func releaseInput() {}
    public var usesBatchStatistics: Bool { false }
    public var isSynchronized: Bool { false }
    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena, context: BackwardContext) -> Tensor {
        backward(gradOutput, arena: arena)
    }
}

/// Errors in building a model from a description.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// A layer cannot take the shape its predecessor produces.
    case shapeMismatch(layer: String, index: Int, inputShape: [Int], reason: String)
    /// A hyperparameter is out of range.
    case invalidHyperparameter(layer: String, reason: String)
    /// A named model or layer type that does not exist.
    case unknown(kind: String, name: String, known: [String])
    /// The model's output does not fit its loss (e.g. 7 logits for 10 classes).
    case outputMismatch(outputShape: [Int], reason: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(layer, index, inputShape, reason):
            return "layer \(index) (\(layer)) cannot take input of shape \(inputShape): \(reason)"
        case let .invalidHyperparameter(layer, reason):
            return "\(layer): \(reason)"
        case let .unknown(kind, name, known):
            return "unknown \(kind) '\(name)'; hint: known \(kind)s are \(known.joined(separator: ", "))"
        case let .outputMismatch(outputShape, reason):
            return "the model's output \(outputShape) \(reason)"
        }
    }
}
