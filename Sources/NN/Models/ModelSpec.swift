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
    public func outputShapes() throws -> [[Int]] {
        var shape = inputShape, shapes: [[Int]] = []
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.shapeMismatch(layer: "input", index: -1, inputShape: inputShape,
                                           reason: "the input shape must have positive extents")
        }
        for (i, spec) in layers.enumerated() {
            let layer = try spec.makeLayer(index: i)
            do {
                shape = try layer.outputShape(for: shape)
            } catch let ModelError.shapeMismatch(name, _, input, reason) {
                throw ModelError.shapeMismatch(layer: name, index: i, inputShape: input, reason: reason)
            }
            shapes.append(shape)
        }
        return shapes
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
                throw ModelError.outputMismatch(outputShape: output,
                                                reason: "does not fit \(loss.rawValue), which needs \(expected); hint: end with a dense layer of \(classes.map(String.init) ?? "classes") units")
            }
        case .sigmoidBinaryCrossEntropy:
            guard output == [1] else {
                throw ModelError.outputMismatch(outputShape: output,
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
