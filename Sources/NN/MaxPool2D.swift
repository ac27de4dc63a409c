/// 2-D max pooling over NCHW input, channel by channel.
///
/// Input `[N, C, H, W]`, output `[N, C, P, Q]` with `P = (H + padTop + padBottom − R) / strideH + 1`
/// (likewise Q); `same` padding gives `P = ceil(H / strideH)`. Padding never wins the maximum
/// (it acts as −∞). Backward routes each output's gradient to the input element that held the
/// maximum; on ties, to the first in row-major window order.
public struct MaxPool2D: Layer {
    /// Window height R and width S.
    public let poolSize: (height: Int, width: Int)
    /// Vertical and horizontal stride.
    public let stride: (height: Int, width: Int)
    /// The padding rule.
    public let padding: Padding

    private var geometry: PoolGeometry?
    private var inputShape: [Int] = []
    // The flat input index of each output's maximum, for backward.
    private var argmax: [Int] = []

    /// - Parameters:
    ///   - poolSize: (R, S), each > 0.
    ///   - stride: (vertical, horizontal), each > 0; nil means the pool size (Keras default).
    ///   - padding: `.valid` (default), `.same` or explicit (each side smaller than the window).
    public init(poolSize: (Int, Int) = (2, 2), stride: (Int, Int)? = nil, padding: Padding = .valid) {
        let stride = stride ?? poolSize
        precondition(poolSize.0 > 0 && poolSize.1 > 0, "MaxPool2D needs a positive pool size, got \(poolSize).")
        precondition(stride.0 > 0 && stride.1 > 0, "MaxPool2D needs a positive stride, got \(stride).")
        self.poolSize = (poolSize.0, poolSize.1)
        self.stride = (stride.0, stride.1)
        self.padding = padding
    }

    public var summary: String {
        "maxpool2d(\(poolSize.height)x\(poolSize.width),s\(stride.height)x\(stride.width),\(padding))"
    }

    /// The geometry for a per-sample input shape `[C, H, W]`.
    ///
    /// - Throws: `ModelError.shapeMismatch` when the input is not 3-D or the window does not fit.
    public func geometry(for inputShape: [Int]) throws -> PoolGeometry {
        try PoolGeometry.resolve(inputShape: inputShape, window: (poolSize.height, poolSize.width),
                                 stride: (stride.height, stride.width), padding: padding, layer: summary)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try geometry(for: inputShape)
        return [g.C, g.P, g.Q]
    }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        guard input.shape.count == 4, let g = try? geometry(for: input.sampleShape) else {
            preconditionFailure("MaxPool2D \(summary) expects input [N, C, H, W] that its window fits, got \(input.shape).")
        }
        geometry = g
        inputShape = input.shape
        let n = input.batchSize
        var output = Tensor(shape: [n, g.C, g.P, g.Q])
        argmax = [Int](repeating: 0, count: output.count)
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                argmax.withUnsafeMutableBufferPointer { a in
                    MaxPool2D.forward(y.baseAddress!, a.baseAddress!, x.baseAddress!, n * g.C, g)
                }
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        guard let g = geometry else { preconditionFailure("MaxPool2D.backward called before forward.") }
        let n = inputShape[0]
        precondition(gradOutput.shape == [n, g.C, g.P, g.Q],
                     "MaxPool2D \(summary).backward expects a gradient of shape \([n, g.C, g.P, g.Q]), got \(gradOutput.shape).")
        var gradInput = Tensor(shape: inputShape)
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                // Windows may overlap (stride < pool), so gradients add.
                for o in gy.indices { gx[argmax[o]] += gy[o] }
            }
        }
        return gradInput
    }

    /// Max pooling of `planes` = N·C channel planes.
    ///
    /// y `[planes, P, Q]` (written), argmax `[planes, P, Q]` (written: flat index into x),
    /// x `[planes, H, W]` (read). Window bounds are clipped once per row and column, so the inner
    /// loop has no bounds checks.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int>,
                        _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry) {
        for plane in 0 ..< planes {
            let xBase = plane * g.HW, yBase = plane * g.PQ
            for p in 0 ..< g.P {
                let rows = g.rows(p)
                for q in 0 ..< g.Q {
                    let cols = g.columns(q)
                    var best = -Float.infinity, bestIndex = xBase + rows.lowerBound * g.W + cols.lowerBound
                    for h in rows {
                        let row = xBase + h * g.W
                        for w in cols where x[row + w] > best {
                            best = x[row + w]
                            bestIndex = row + w
                        }
                    }
                    y[yBase + p * g.Q + q] = x[bestIndex]
                    argmax[yBase + p * g.Q + q] = bestIndex
                }
            }
        }
    }

    /// The plain reference: every window position is visited and padding is skipped element by
    /// element. Same layouts as `forward`.
    static func forwardReference(_ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int>,
                                 _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry) {
        for plane in 0 ..< planes { for p in 0 ..< g.P { for q in 0 ..< g.Q {
            var best: Float? = nil, bestIndex = -1
            for r in 0 ..< g.R { for s in 0 ..< g.S {
                let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                let i = (plane * g.H + h) * g.W + w
                if best == nil || x[i] > best! { best = x[i]; bestIndex = i }
            } }
            y[(plane * g.P + p) * g.Q + q] = best!
            argmax[(plane * g.P + p) * g.Q + q] = bestIndex
        } } }
    }
}
