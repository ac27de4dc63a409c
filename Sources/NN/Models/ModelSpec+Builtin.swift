extension ModelSpec {
    /// The names of the built-in models.
    public static var builtinNames: [String] { ["fmnist-cnn", "fmnist-cnn-bn", "lenet5", "mlp", "tiny"] }

    /// A built-in model for the given input shape and class count.
    ///
    /// - `fmnist-cnn`: conv 5x5x32 same, relu, maxpool 2, conv 5x5x64 same, relu, maxpool 2, flatten,
    ///   dense 1024, relu, dropout 0.4, dense classes.
    /// - `fmnist-cnn-bn`: the same with a synchronized batch norm after each convolution (whose
    ///   bias is then dropped, as batch norm cancels it).
    /// - `lenet5`: conv 5x5x6 same, relu, avgpool 2, conv 5x5x16 valid, relu, avgpool 2, flatten,
    ///   dense 120, relu, dense 84, relu, dense classes.
    /// - `mlp`: flatten, dense 256, relu, dense classes.
    /// - `tiny`: conv 3x3x8 stride 2 same, relu, maxpool 2, flatten, dense classes (tests, demos).
    ///
    /// - Parameters:
    ///   - name: one of `builtinNames`.
    ///   - inputShape: the per-sample input shape `[C, H, W]`.
    ///   - classes: the number of classes (> 0).
    /// - Throws: `ModelError.unknown` for an unknown name.
    public static func builtin(_ name: String, inputShape: [Int], classes: Int) throws -> ModelSpec {
        func conv(_ k: Int, _ size: Int, stride: Int = 1, _ padding: Padding = .same, bias: Bool = true) -> LayerSpec {
            .conv2d(filters: k, kernel: [size, size], stride: [stride, stride], padding: padding, bias: bias)
        }
        let maxPool = LayerSpec.maxPool2d(pool: [2, 2], stride: [2, 2], padding: .valid)
        let avgPool = LayerSpec.avgPool2d(pool: [2, 2], stride: [2, 2], padding: .valid)
        let batchNorm = LayerSpec.batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: true)
        func dense(_ units: Int) -> LayerSpec { .dense(units: units, bias: true) }
        let layers: [LayerSpec]
        switch name {
        case "fmnist-cnn":
            layers = [
                conv(32, 5), .relu, maxPool, conv(64, 5), .relu, maxPool,
                .flatten, dense(1024), .relu, .dropout(rate: 0.4), dense(classes)
            ]
        case "fmnist-cnn-bn":
            layers = [
                conv(32, 5, bias: false), batchNorm, .relu, maxPool, conv(64, 5, bias: false), batchNorm, .relu, maxPool,
                .flatten, dense(1024), .relu, .dropout(rate: 0.4), dense(classes)
            ]
        case "lenet5":
            layers = [
                conv(6, 5), .relu, avgPool, conv(16, 5, .valid), .relu, avgPool,
                .flatten, dense(120), .relu, dense(84), .relu, dense(classes)
            ]
        case "mlp":
            layers = [.flatten, dense(256), .relu, dense(classes)]
        case "tiny":
            layers = [conv(8, 3, stride: 2), .relu, maxPool, .flatten, dense(classes)]
        default:
            throw ModelError.unknown(kind: "model", name: name, known: builtinNames)
        }
        return ModelSpec(name: name, inputShape: inputShape, layers: layers)
    }
}
