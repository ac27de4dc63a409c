/// Rectified linear unit, elementwise: `y = max(x, 0)`. Any shape in, same shape out.
public struct ReLU: Layer {
    private var output = Tensor(shape: [0])

    public init() {}

    public var summary: String { "relu" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        var y = input
        y.storage.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = max(p[i], 0) }
        }
        output = y
        return y
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        precondition(gradOutput.shape == output.shape,
                     "ReLU.backward expects a gradient of shape \(output.shape), got \(gradOutput.shape).")
        var g = gradOutput
        g.storage.withUnsafeMutableBufferPointer { gp in
            output.storage.withUnsafeBufferPointer { yp in
                // The gradient passes where the output was positive (subgradient 0 at 0, like PyTorch).
                for i in gp.indices where yp[i] <= 0 { gp[i] = 0 }
            }
        }
        return g
    }
}

/// Flattens each sample to one dimension: `[N, C, H, W]` to `[N, C·H·W]`. No copy.
public struct Flatten: Layer {
    private var inputShape: [Int] = []

    public init() {}

    public var summary: String { "flatten" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { [inputShape.reduce(1, *)] }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        inputShape = input.shape
        return input.reshaped(to: [input.batchSize, input.count / max(input.batchSize, 1)])
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        gradOutput.reshaped(to: inputShape)
    }
}
