/// One layer of a model description: the data a `Layer` is built from.
public enum LayerSpec: Equatable {
    case conv2d(filters: Int, kernel: [Int], stride: [Int], padding: Padding, bias: Bool)
    case dense(units: Int, bias: Bool)
    case relu
    case flatten

    /// Builds the layer.
    ///
    /// - Throws: `ModelError.invalidHyperparameter` for out-of-range values.
    public func makeLayer() throws -> any Layer {
        switch self {
        case let .conv2d(filters, kernel, stride, padding, bias):
            guard filters > 0, kernel.count == 2, kernel.allSatisfy({ $0 > 0 }), stride.count == 2, stride.allSatisfy({ $0 > 0 }) else {
                throw ModelError.invalidHyperparameter(layer: "conv2d", reason: "needs filters > 0 and positive 2-D kernel and stride, got filters \(filters), kernel \(kernel), stride \(stride)")
            }
            return Conv2D(filters: filters, kernelSize: (kernel[0], kernel[1]), stride: (stride[0], stride[1]),
                          padding: padding, useBias: bias)
        case let .dense(units, bias):
            guard units > 0 else { throw ModelError.invalidHyperparameter(layer: "dense", reason: "needs units > 0, got \(units)") }
            return Dense(units: units, useBias: bias)
        case .relu: return ReLU()
        case .flatten: return Flatten()
        }
    }
}

/// A whole model description: input shape, layers and loss. Every rank builds the same model from
/// the same spec; checkpoints store it.
public struct ModelSpec: Equatable {
    /// A name for output (`fmnist-cnn`, or the model file's name).
    public var name: String
    /// The per-sample input shape `[C, H, W]`.
    public var inputShape: [Int]
    /// The layers in order.
    public var layers: [LayerSpec]

    public init(name: String, inputShape: [Int], layers: [LayerSpec]) {
        self.name = name
        self.inputShape = inputShape
        self.layers = layers
    }

    /// Builds the model (parameters zero until initialized). The first convolution skips its
    /// input gradient, which nobody uses.
    ///
    /// - Throws: `ModelError` naming the first layer that cannot be built or does not fit.
    public func build() throws -> Sequential {
        var layers = try self.layers.map { try $0.makeLayer() }
        if var first = layers.first as? Conv2D {
            first.computesInputGradient = false
            layers[0] = first
        }
        return try Sequential(inputShape: inputShape, layers: layers)
    }

    /// The names of the built-in models.
    public static var builtinNames: [String] { ["mlp", "tiny"] }

    /// A built-in model for the given input shape and class count.
    ///
    /// - Throws: `ModelError.unknown` for an unknown name.
    public static func builtin(_ name: String, inputShape: [Int], classes: Int) throws -> ModelSpec {
        switch name {
        case "mlp":
            return ModelSpec(name: name, inputShape: inputShape,
                             layers: [.flatten, .dense(units: 256, bias: true), .relu, .dense(units: classes, bias: true)])
        case "tiny":
            return ModelSpec(name: name, inputShape: inputShape,
                             layers: [.conv2d(filters: 8, kernel: [3, 3], stride: [2, 2], padding: .same, bias: true), .relu,
                                      .flatten, .dense(units: classes, bias: true)])
        default:
            throw ModelError.unknown(kind: "model", name: name, known: builtinNames)
        }
    }
}
