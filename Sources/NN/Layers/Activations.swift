/// Rectified linear unit, elementwise: `y = max(x, 0)`. Any shape in, same shape out.
///
/// The output and the input gradient are written into buffers the layer keeps across steps, so a
/// training step allocates nothing here (and never copies its input to write it in place).
public struct ReLU: Layer {
    private var output = Tensor(shape: [0])
    private var gradInput = Tensor(shape: [0])

    public init() {}

    public var summary: String { "relu" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        output.resize(to: input.shape)
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                ReLU.forward(y.baseAddress!, x.baseAddress!, x.count)
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        precondition(
            gradOutput.shape == output.shape,
            "ReLU.backward expects a gradient of shape \(output.shape), got \(gradOutput.shape).")
        gradInput.resize(to: gradOutput.shape)
        let output = self.output
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                output.storage.withUnsafeBufferPointer { y in
                    ReLU.backward(gx.baseAddress!, gy.baseAddress!, y.baseAddress!, y.count)
                }
            }
        }
        return gradInput
    }

    /// y (written) = max(x, 0), eight lanes at a time. y and x are `[count]`; y may be x.
    ///
    /// NaN stays NaN and −0 becomes 0, as `Swift.max(x, 0)` gives.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: v.replacing(with: 0, where: v .<= 0), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            y[i] = max(x[i], 0)
            i += 1
        }
    }

    /// gx (written) = gy where y > 0, else 0 (the subgradient at 0 is 0, like PyTorch).
    /// gx, gy and y are `[count]`; y is the forward output (read); gx may be gy.
    static func backward(
        _ gx: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
        _ count: Int
    ) {
        var i = 0
        while i + 8 <= count {
            let g = UnsafeRawPointer(gy + i).loadUnaligned(as: SIMD8<Float>.self)
            let v = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(gx + i).storeBytes(of: g.replacing(with: 0, where: v .<= 0), as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            gx[i] = y[i] <= 0 ? 0 : gy[i]
            i += 1
        }
    }

    /// The plain reference for `forward`: y (written) = max(x, 0), `[count]`.
    static func forwardReference(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
        for i in 0 ..< count { y[i] = max(x[i], 0) }
    }

    /// The plain reference for `backward`: gx (written) = gy, zeroed where y ≤ 0, `[count]`.
    static func backwardReference(
        _ gx: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
        _ count: Int
    ) {
        for i in 0 ..< count {
            gx[i] = gy[i]
            if y[i] <= 0 { gx[i] = 0 }
        }
    }
}

/// Flattens each sample to one dimension: `[N, C, H, W]` to `[N, C·H·W]`. No copy.
public struct Flatten: Layer {
    private var inputShape: [Int] = []
    // The output shape, rebuilt only when it changes (a steady step allocates nothing).
    private var flatShape: [Int] = []

    public init() {}

    public var summary: String { "flatten" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { [inputShape.reduce(1, *)] }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        inputShape = input.shape
        let n = input.batchSize, features = input.count / max(n, 1)
        if flatShape.count != 2 || flatShape[0] != n || flatShape[1] != features { flatShape = [n, features] }
        return input.reshaped(to: flatShape)
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        gradOutput.reshaped(to: inputShape)
    }
}
