/// 2-D max pooling over NCHW input, channel by channel.
///
/// Input `[N, C, H, W]`, output `[N, C, P, Q]` with `P = (H + padTop + padBottom − R) / strideH + 1`
/// (likewise Q); `same` padding gives `P = ceil(H / strideH)`. Padding never wins the maximum
/// (it acts as −∞). Backward routes each output's gradient to the input element that held the
/// maximum; on ties, to the first in row-major window order.
public struct MaxPool2D: PoolingLayer {
    public static let kind = "maxpool2d"

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
    // Output and input-gradient buffers, kept across steps (nothing downstream keeps them).
    private var output = Tensor(shape: [0])
    private var gradInput = Tensor(shape: [0])
    /// Whether the convolution before this layer pools for it (`Conv2D+Pooling.swift`): forward
    /// and backward then hand their input on unchanged. Set by `Sequential`.
    public internal(set) var isFused = false

    /// - Parameters:
    ///   - poolSize: (R, S), each > 0.
    ///   - stride: (vertical, horizontal), each > 0; nil means the pool size (Keras default).
    ///   - padding: `.valid` (default), `.same` or explicit (each side smaller than the window).
    public init(poolSize: (Int, Int) = (2, 2), stride: (Int, Int)? = nil, padding: Padding = .valid) {
        (self.poolSize, self.stride) = Self.checkedWindow(poolSize: poolSize, stride: stride, layer: "MaxPool2D")
        self.padding = padding
    }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        if isFused { return input }
        let g = checkedGeometry(for: input, reusing: geometry, layer: "MaxPool2D")
        geometry = g
        inputShape = input.shape
        let n = input.batchSize
        output.resize(n, g.C, g.P, g.Q)
        if argmax.count != output.count { argmax = [Int](repeating: 0, count: output.count) }
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                argmax.withUnsafeMutableBufferPointer { a in
                    MaxPool2D.pool(y.baseAddress!, a.baseAddress!, x.baseAddress!, n * g.C, g)
                }
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        if isFused { return gradOutput }
        checkedBackwardGeometry(geometry, inputShape: inputShape, gradOutput: gradOutput, layer: "MaxPool2D")
        gradInput.resize(to: inputShape)
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                argmax.withUnsafeBufferPointer { a in
                    MaxPool2D.backward(gx.baseAddress!, gy.baseAddress!, a.baseAddress!, gx.count, gy.count)
                }
            }
        }
        return gradInput
    }

    /// Max pooling of `planes` = N·C channel planes.
    ///
    /// y `[planes, P, Q]` (written), argmax `[planes, P, Q]` (written: flat index into x),
    /// x `[planes, H, W]` (read). Window bounds are clipped once per row and column, so the inner
    /// loop has no bounds checks.
    static func forward(
        _ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int>,
        _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry
    ) {
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

    /// Routes each output gradient to its window's maximum.
    ///
    /// gx `[inputCount]` (written: zero, plus the gradients routed to it), gy `[outputCount]` (read),
    /// argmax `[outputCount]` (read: flat indices into gx). Windows may overlap (stride < pool), so
    /// gradients add.
    static func backward(
        _ gx: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>, _ argmax: UnsafePointer<Int>,
        _ inputCount: Int, _ outputCount: Int
    ) {
        gx.update(repeating: 0, count: inputCount)
        for o in 0 ..< outputCount { gx[argmax[o]] += gy[o] }
    }

    /// Max pooling of `planes` planes with the fastest kernel for `g`: `forwardPairs` for 2×2
    /// windows at stride 2 without padding, `forward` otherwise. Same layouts as `forward`.
    static func pool(
        _ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int>,
        _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry
    ) {
        if g.isPairwise {
            forwardPairs(y, argmax, x, planes, g)
        } else {
            forward(y, argmax, x, planes, g)
        }
    }

    /// Max pooling for 2×2 windows at stride 2 with no padding (`isPairwise`), eight outputs at a
    /// time: two 16-float input rows split into even and odd columns give the four taps of eight
    /// windows. Ties go to the first tap in row-major window order, as in `forwardReference`.
    ///
    /// y `[planes, P, Q]` (written), argmax `[planes, P, Q]` (written: flat index into x),
    /// x `[planes, H, W]` (read).
    static func forwardPairs(
        _ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int>,
        _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry
    ) {
        let lanes = SIMD8<Int>(0, 2, 4, 6, 8, 10, 12, 14)
        for plane in 0 ..< planes {
            let xBase = plane * g.HW, yBase = plane * g.PQ
            for p in 0 ..< g.P {
                let top = xBase + 2 * p * g.W, out = yBase + p * g.Q
                // Eight outputs at a time; a ragged end repeats the last eight (same values); rows of
                // four to seven outputs go four at a time, shorter ones one by one.
                var q = 0
                while g.Q >= 8 && q < g.Q {
                    q = min(q, g.Q - 8)
                    let r0 = UnsafeRawPointer(x + top + 2 * q).loadUnaligned(as: SIMD16<Float>.self)
                    let r1 = UnsafeRawPointer(x + top + g.W + 2 * q).loadUnaligned(as: SIMD16<Float>.self)
                    // tap: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; strict > keeps the first.
                    var best = r0.evenHalf, tap = SIMD8<Int32>(repeating: 0)
                    let b = r0.oddHalf, c = r1.evenHalf, d = r1.oddHalf
                    var wins = b .> best
                    best.replace(with: b, where: wins)
                    tap.replace(with: 1, where: wins)
                    wins = c .> best
                    best.replace(with: c, where: wins)
                    tap.replace(with: 2, where: wins)
                    wins = d .> best
                    best.replace(with: d, where: wins)
                    tap.replace(with: 3, where: wins)
                    let t = SIMD8<Int>(truncatingIfNeeded: tap)
                    let index = SIMD8<Int>(repeating: top + 2 * q) &+ lanes &+ (t & 1) &+ (t &>> 1) &* g.W
                    UnsafeMutableRawPointer(y + out + q).storeBytes(of: best, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(argmax + out + q).storeBytes(of: index, as: SIMD8<Int>.self)
                    q += 8
                }
                // Four at a time when a row has four to seven outputs (fmnist-cnn's second pool: 7).
                while g.Q >= 4 && g.Q < 8 && q < g.Q {
                    q = min(q, g.Q - 4)
                    let r0 = UnsafeRawPointer(x + top + 2 * q).loadUnaligned(as: SIMD8<Float>.self)
                    let r1 = UnsafeRawPointer(x + top + g.W + 2 * q).loadUnaligned(as: SIMD8<Float>.self)
                    var best = r0.evenHalf, tap = SIMD4<Int32>(repeating: 0)
                    let b = r0.oddHalf, c = r1.evenHalf, d = r1.oddHalf
                    var wins = b .> best
                    best.replace(with: b, where: wins)
                    tap.replace(with: 1, where: wins)
                    wins = c .> best
                    best.replace(with: c, where: wins)
                    tap.replace(with: 2, where: wins)
                    wins = d .> best
                    best.replace(with: d, where: wins)
                    tap.replace(with: 3, where: wins)
                    let t = SIMD4<Int>(truncatingIfNeeded: tap)
                    let index = SIMD4<Int>(repeating: top + 2 * q) &+ lanes.lowHalf &+ (t & 1) &+ (t &>> 1) &* g.W
                    UnsafeMutableRawPointer(y + out + q).storeBytes(of: best, as: SIMD4<Float>.self)
                    UnsafeMutableRawPointer(argmax + out + q).storeBytes(of: index, as: SIMD4<Int>.self)
                    q += 4
                }
                while q < g.Q {
                    let i0 = top + 2 * q
                    var bestIndex = i0
                    if x[i0 + 1] > x[bestIndex] { bestIndex = i0 + 1 }
                    if x[i0 + g.W] > x[bestIndex] { bestIndex = i0 + g.W }
                    if x[i0 + g.W + 1] > x[bestIndex] { bestIndex = i0 + g.W + 1 }
                    y[out + q] = x[bestIndex]
                    argmax[out + q] = bestIndex
                    q += 1
                }
            }
        }
    }

    /// The plain reference: every window position is visited and padding is skipped element by
    /// element. Same layouts as `forward`.
    static func forwardReference(
        _ y: UnsafeMutablePointer<Float>, _ argmax: UnsafeMutablePointer<Int>,
        _ x: UnsafePointer<Float>, _ planes: Int, _ g: PoolGeometry
    ) {
        for plane in 0 ..< planes {
            for p in 0 ..< g.P {
                for q in 0 ..< g.Q {
                    var best: Float? = nil, bestIndex = -1
                    for r in 0 ..< g.R {
                        for s in 0 ..< g.S {
                            let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                            guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                            let i = (plane * g.H + h) * g.W + w
                            if best == nil || x[i] > best! {
                                best = x[i]
                                bestIndex = i
                            }
                        }
                    }
                    y[(plane * g.P + p) * g.Q + q] = best!
                    argmax[(plane * g.P + p) * g.Q + q] = bestIndex
                }
            }
        }
    }
}
