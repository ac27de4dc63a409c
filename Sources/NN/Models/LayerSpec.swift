/// One layer of a model description: the data a `Layer` is built from.
///
/// Sizes are `[height, width]` pairs. In model files a pair may be written as one integer, and
/// layer types and options are spelled as in `typeNames` (see `ModelSpec` for the file format).
public enum LayerSpec: Equatable {
    /// `Conv2D`: K filters of `kernel`, moving by `stride`, with `padding`.
    case conv2d(filters: Int, kernel: [Int], stride: [Int], padding: Padding, bias: Bool)
    /// `Dense` with `units` outputs.
    case dense(units: Int, bias: Bool)
    /// `ReLU`.
    case relu
    /// `Flatten`.
    case flatten
    /// `MaxPool2D` over `pool` windows.
    case maxPool2d(pool: [Int], stride: [Int], padding: Padding)
    /// `AvgPool2D` over `pool` windows (padding excluded from the average).
    case avgPool2d(pool: [Int], stride: [Int], padding: Padding)
    /// `Dropout` with drop probability `rate`.
    case dropout(rate: Double)
    /// `BatchNorm2D`; `synchronized` sums batch statistics across replicas.
    case batchNorm2d(momentum: Double, epsilon: Double, synchronized: Bool)

    /// The layer type names of model files, in the order of the cases.
    public static let typeNames = ["conv2d", "dense", "relu", "flatten", "maxpool2d", "avgpool2d", "dropout", "batchnorm2d"]

    /// This layer's type name in model files (one of `typeNames`).
    public var typeName: String {
        switch self {
        case .conv2d: return "conv2d"
        case .dense: return "dense"
        case .relu: return "relu"
        case .flatten: return "flatten"
        case .maxPool2d: return "maxpool2d"
        case .avgPool2d: return "avgpool2d"
        case .dropout: return "dropout"
        case .batchNorm2d: return "batchnorm2d"
        }
    }

    /// The largest kernel, stride, pool or padding extent a description may give (and the largest
    /// input extent): far beyond any real image, and small enough that no shape arithmetic on it
    /// can overflow.
    public static let maxExtent = 1 << 16
    /// The largest `filters` or `units` a description may give.
    public static let maxWidth = 1 << 20

    /// Checks the hyperparameters without building anything.
    ///
    /// - Throws: `ModelError.invalidHyperparameter` naming the value out of range.
    public func validate() throws {
        func fail(_ reason: String) -> ModelError { ModelError.invalidHyperparameter(layer: typeName, reason: reason) }
        func isPair(_ v: [Int]) -> Bool { v.count == 2 && v.allSatisfy { $0 > 0 } }
        func checkPair(_ name: String, _ v: [Int]) throws {
            guard isPair(v) else { throw fail("\(name) must be two positive sizes, got \(v)") }
            guard v.allSatisfy({ $0 <= LayerSpec.maxExtent }) else {
                throw fail("\(name) \(v) exceeds the largest size \(LayerSpec.maxExtent); hint: is a digit too many?")
            }
        }
        func checkPadding(_ p: Padding) throws {
            if case let .explicit(t, b, l, r) = p, [t, b, l, r].contains(where: { $0 < 0 }) {
                throw fail("padding must be non-negative, got [\(t), \(b), \(l), \(r)]")
            }
            if case let .explicit(t, b, l, r) = p, [t, b, l, r].contains(where: { $0 > LayerSpec.maxExtent }) {
                throw fail("padding [\(t), \(b), \(l), \(r)] exceeds the largest size \(LayerSpec.maxExtent); hint: is a digit too many?")
            }
        }
        func checkWidth(_ name: String, _ n: Int) throws {
            guard n > 0 else { throw fail("\(name) must be positive, got \(n)") }
            guard n <= LayerSpec.maxWidth else {
                throw fail("\(name) \(n) exceeds the largest width \(LayerSpec.maxWidth); hint: is a digit too many?")
            }
        }
        switch self {
        case let .conv2d(filters, kernel, stride, padding, _):
            try checkWidth("filters", filters)
            try checkPair("kernel", kernel)
            try checkPair("stride", stride)
            try checkPadding(padding)
        case let .dense(units, _):
            try checkWidth("units", units)
        case .relu, .flatten:
            break
        case let .maxPool2d(pool, stride, padding), let .avgPool2d(pool, stride, padding):
            try checkPair("pool", pool)
            try checkPair("stride", stride)
            try checkPadding(padding)
        case let .dropout(rate):
            guard rate >= 0 && rate < 1 else { throw fail("rate must be in [0, 1), got \(rate)") }
        case let .batchNorm2d(momentum, epsilon, _):
            guard momentum >= 0 && momentum <= 1 else { throw fail("momentum must be in [0, 1], got \(momentum)") }
            guard epsilon > 0 else { throw fail("epsilon must be positive, got \(epsilon)") }
        }
    }

    /// Builds the layer.
    ///
    /// - Parameter index: the layer's position in the model; it keys dropout's random stream, so
    ///   two dropout layers draw different masks.
    /// - Throws: `ModelError.invalidHyperparameter` for out-of-range values.
    public func makeLayer(index: Int = 0) throws -> any Layer {
        try validate()
        switch self {
        case let .conv2d(filters, kernel, stride, padding, bias):
            return Conv2D(
                filters: filters, kernelSize: (kernel[0], kernel[1]), stride: (stride[0], stride[1]),
                padding: padding, useBias: bias)
        case let .dense(units, bias):
            return Dense(units: units, useBias: bias)
        case .relu: return ReLU()
        case .flatten: return Flatten()
        case let .maxPool2d(pool, stride, padding):
            return MaxPool2D(poolSize: (pool[0], pool[1]), stride: (stride[0], stride[1]), padding: padding)
        case let .avgPool2d(pool, stride, padding):
            return AvgPool2D(poolSize: (pool[0], pool[1]), stride: (stride[0], stride[1]), padding: padding)
        case let .dropout(rate):
            return Dropout(rate: Float(rate), streamKey: 0xD50F_0000 &+ UInt64(index))
        case let .batchNorm2d(momentum, epsilon, synchronized):
            return BatchNorm2D(momentum: momentum, epsilon: epsilon, synchronized: synchronized)
        }
    }
}
