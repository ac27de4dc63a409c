/// 2-D average pooling over NCHW input, channel by channel.
///
/// Input `[N, C, H, W]`, output `[N, C, P, Q]` with `P = (H + padTop + padBottom − R) / strideH + 1`
/// (likewise Q); `same` padding gives `P = ceil(H / strideH)`. Padding is excluded from the
/// average (Keras; PyTorch `count_include_pad=False`): each output is the mean of the input
/// elements its window covers.
public struct AvgPool2D: PoolingLayer {
    public static let kind = "avgpool2d"

    /// Window height R and width S.
    public let poolSize: (height: Int, width: Int)
    /// Vertical and horizontal stride.
    public let stride: (height: Int, width: Int)
    /// The padding rule.
    public let padding: Padding

    private var geometry: PoolGeometry?
    private var inputShape: [Int] = []
    // Output and input-gradient buffers, kept across steps (nothing downstream keeps them).
    private var output = Tensor(shape: [0])
    private var gradInput = Tensor(shape: [0])

    /// - Parameters:
    ///   - poolSize: (R, S), each > 0.
    ///   - stride: (vertical, horizontal), each > 0; nil means the pool size (Keras default).
    ///   - padding: `.valid` (default), `.same` or explicit (each side smaller than the window).
    public init(poolSize: (Int, Int) = (2, 2), stride: (Int, Int)? = nil, padding: Padding = .valid) {
        (self.poolSize, self.stride) = Self.checkedWindow(poolSize: poolSize, stride: stride, layer: "AvgPool2D")
        self.padding = padding
    }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        let g = checkedGeometry(for: input, reusing: geometry, layer: "AvgPool2D")
        geometry = g
        inputShape = input.shape
        let n = input.batchSize
        // The kernel writes every output element.
        output.resize(n, g.C, g.P, g.Q)
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                AvgPool2D.forward(y.baseAddress!, x.baseAddress!, n * g.C, g)
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        let g = checkedBackwardGeometry(geometry, inputShape: inputShape, gradOutput: gradOutput, layer: "AvgPool2D")
        let n = inputShape[0]
        // The kernel zeroes the gradient before spreading into it.
        gradInput.resize(to: inputShape)
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                AvgPool2D.backward(gx.baseAddress!, gy.baseAddress!, n * g.C, g)
            }
        }
        return gradInput
    }

    /// Average pooling of `planes` = N·C channel planes.
    ///
    /// y `[planes, P, Q]` (written), x `[planes, H, W]` (read). Window bounds are clipped once per
    /// row and column; the divisor is the clipped window's size.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry) {
        for plane in 0 ..< planes {
            let xBase = plane * g.HW, yBase = plane * g.PQ
            for p in 0 ..< g.P {
                let rows = g.rows(p)
                for q in 0 ..< g.Q {
                    let cols = g.columns(q)
                    var sum: Float = 0
                    for h in rows {
                        let row = xBase + h * g.W
                        for w in cols { sum += x[row + w] }
                    }
                    y[yBase + p * g.Q + q] = sum / Float(rows.count * cols.count)
                }
            }
        }
    }

    /// Spreads each output gradient evenly over its window.
    ///
    /// gx `[planes, H, W]` (written), gy `[planes, P, Q]` (read).
    static func backward(_ gx: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry) {
        gx.update(repeating: 0, count: planes * g.HW)
        for plane in 0 ..< planes {
            let xBase = plane * g.HW, yBase = plane * g.PQ
            for p in 0 ..< g.P {
                let rows = g.rows(p)
                for q in 0 ..< g.Q {
                    let cols = g.columns(q)
                    let share = gy[yBase + p * g.Q + q] / Float(rows.count * cols.count)
                    for h in rows {
                        let row = xBase + h * g.W
                        for w in cols { gx[row + w] += share }
                    }
                }
            }
        }
    }

    /// The plain reference: every window position is visited, padding skipped and counted
    /// element by element, sums in Double. Same layouts as `forward`.
    static func forwardReference(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry) {
        for plane in 0 ..< planes {
            for p in 0 ..< g.P {
                for q in 0 ..< g.Q {
                    var sum = 0.0, count = 0
                    for r in 0 ..< g.R {
                        for s in 0 ..< g.S {
                            let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                            guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                            sum += Double(x[(plane * g.H + h) * g.W + w])
                            count += 1
                        }
                    }
                    y[(plane * g.P + p) * g.Q + q] = Float(sum / Double(count))
                }
            }
        }
    }
}
