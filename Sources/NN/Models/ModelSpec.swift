/// The loss a model is trained with, by its name in model files.
public enum LossSpec: String, Equatable, CaseIterable {
    /// `SoftmaxCrossEntropy`: logits `[N, classes]`, integer labels.
    case softmaxCrossEntropy = "softmax-cross-entropy"
    /// `SigmoidBinaryCrossEntropy`: logits `[N, 1]`, labels 0/1.
    case sigmoidBinaryCrossEntropy = "sigmoid-binary-cross-entropy"

    /// Builds the loss.
    public func makeLoss() -> any Loss {
        switch self {
        case .softmaxCrossEntropy: return SoftmaxCrossEntropy()
        case .sigmoidBinaryCrossEntropy: return SigmoidBinaryCrossEntropy()
        }
    }
}

/// A whole model description: input shape, layers and loss. Every rank builds the same model from
/// the same spec; checkpoints store it (it is `Codable`, see `ModelSpec+Codable.swift` for the
/// JSON/YAML form).
public struct ModelSpec: Equatable {
    /// A name for output (`fmnist-cnn`, or the model file's name).
    public var name: String
    /// The per-sample input shape `[C, H, W]`.
    public var inputShape: [Int]
    /// The layers in order.
    public var layers: [LayerSpec]
    /// The training loss.
    public var loss: LossSpec

    /// - Parameters:
    ///   - name: a display name.
    ///   - inputShape: the per-sample input shape.
    ///   - layers: the layers in order.
    ///   - loss: the training loss (softmax cross-entropy by default).
    public init(name: String, inputShape: [Int], layers: [LayerSpec], loss: LossSpec = .softmaxCrossEntropy) {
        self.name = name
        self.inputShape = inputShape
        self.layers = layers
        self.loss = loss
    }

    /// Builds the spec's loss.
    public func makeLoss() -> any Loss { loss.makeLoss() }

    /// The per-sample output shape of every layer, computed without allocating parameters.
    ///
    /// - Throws: `ModelError.invalidHyperparameter` or `ModelError.shapeMismatch` (with the layer's
    ///   index) for the first layer that cannot be built or does not fit its input.
    public func outputShapes() throws -> [[Int]] { try measure().shapes }

    /// The number of parameters (trainable or not, padding excluded) the built model will hold,
    /// computed without allocating them.
    ///
    /// - Throws: the errors of `outputShapes()`.
    public func parameterCount() throws -> Int { try measure().parameters }

    /// Every layer's per-sample output shape and the parameter count, each checked against the
    /// limits before anything is allocated.
    private func measure() throws -> (shapes: [[Int]], parameters: Int) {
        var shape = inputShape, shapes: [[Int]] = []
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.shapeMismatch(
                layer: "input", index: -1, inputShape: inputShape,
                reason: "the input shape must have positive extents")
        }
        guard let inputCount = ModelSpec.checkedCount(inputShape), inputCount <= ModelSpec.maxActivationCount else {
            throw ModelError.shapeMismatch(
                layer: "input", index: -1, inputShape: inputShape,
                reason: "the input shape must have at most \(ModelSpec.maxActivationCount) values; hint: is a digit too many?")
        }
        var parameters = 0
        for (i, spec) in layers.enumerated() {
            let layer = try spec.makeLayer(index: i)
            let input = shape
            do {
                shape = try layer.outputShape(for: shape)
            } catch let ModelError.shapeMismatch(name, _, input, reason) {
                throw ModelError.shapeMismatch(layer: name, index: i, inputShape: input, reason: reason)
            }
            // Sizes are checked before anything is allocated: a description from a file or a
            // checkpoint must end in an error, not in a failed allocation or an overflow.
            guard let count = ModelSpec.checkedCount(shape), count <= ModelSpec.maxActivationCount else {
                throw ModelError.shapeMismatch(
                    layer: layer.summary, index: i, inputShape: input,
                    reason: "its output \(shape) has more than \(ModelSpec.maxActivationCount) values per sample; hint: use a smaller layer or a larger stride")
            }
            for tensor in layer.parameterSpecs(for: input) {
                guard let n = ModelSpec.checkedCount(tensor.shape), case let (sum, false) = parameters.addingReportingOverflow(n),
                    sum <= ModelSpec.maxParameterCount
                else {
                    throw ModelError.invalidHyperparameter(
                        layer: "layer \(i) (\(layer.summary))",
                        reason: "the model needs more than \(ModelSpec.maxParameterCount) parameters; hint: use fewer filters or units")
                }
                parameters = sum
            }
            shapes.append(shape)
        }
        return (shapes, parameters)
    }

    /// The most parameters (trainable or not) a model may have: each arena holds this many floats
    /// at most (4 GiB), far beyond the built-in models and small enough to allocate.
    public static let maxParameterCount = 1 << 30
    /// The most values one layer's per-sample output may have.
    public static let maxActivationCount = 1 << 28

    /// The product of `shape`, or nil when it is negative or overflows.
    static func checkedCount(_ shape: [Int]) -> Int? {
        var count = 1
        for extent in shape {
            guard extent >= 0, case let (product, false) = count.multipliedReportingOverflow(by: extent) else { return nil }
            count = product
        }
        return count
    }

    /// Checks that the model's output fits its loss: `[classes]` for softmax cross-entropy (any
    /// width ≥ 2 when `classes` is nil), `[1]` for sigmoid binary cross-entropy.
    ///
    /// - Parameter classes: the data's class count, if known.
    /// - Throws: `ModelError.outputMismatch`, or the errors of `outputShapes()`.
    public func checkOutput(classes: Int?) throws {
        guard let output = try outputShapes().last else {
            throw ModelError.invalidHyperparameter(layer: name, reason: "a model needs at least one layer")
        }
        switch loss {
        case .softmaxCrossEntropy:
            let expected = classes.map { "[\($0)]" } ?? "[classes] with classes ≥ 2"
            guard output.count == 1, classes.map({ output[0] == $0 }) ?? (output[0] >= 2) else {
                throw ModelError.outputMismatch(
                    outputShape: output,
                    reason:
                        "does not fit \(loss.rawValue), which needs \(expected); hint: end with a dense layer of \(classes.map(String.init) ?? "classes") units"
                )
            }
        case .sigmoidBinaryCrossEntropy:
            guard output == [1] else {
                throw ModelError.outputMismatch(
                    outputShape: output,
                    reason: "does not fit \(loss.rawValue), which needs [1]; hint: end with a dense layer of 1 unit")
            }
        }
    }

    /// Builds the model (parameters zero until initialized). The first convolution skips its
    /// input gradient, which nobody uses.
    ///
    /// - Throws: `ModelError` naming the first layer that cannot be built or does not fit.
    public func build() throws -> Sequential {
        guard !layers.isEmpty else {
            throw ModelError.invalidHyperparameter(layer: name, reason: "a model needs at least one layer")
        }
        _ = try outputShapes()
        var built = try layers.enumerated().map { try $1.makeLayer(index: $0) }
        if var first = built.first as? Conv2D {
            first.computesInputGradient = false
            built[0] = first
        }
        return try Sequential(inputShape: inputShape, layers: built)
    }
}
