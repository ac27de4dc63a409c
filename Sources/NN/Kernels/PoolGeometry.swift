/// The geometry of one 2-D pooling window over NCHW input (`C` channels, `H,W` input,
/// `R,S` window, `P,Q` output), shared by `MaxPool2D` and `AvgPool2D`.
public struct PoolGeometry: Equatable {
    public var C: Int, H: Int, W: Int
    public var R: Int, S: Int
    public var strideH: Int, strideW: Int
    public var padTop: Int, padLeft: Int
    public var P: Int, Q: Int

    /// Output pixels per channel: `P·Q`.
    public var PQ: Int { P * Q }
    /// Input pixels per channel: `H·W`.
    public var HW: Int { H * W }

    /// Resolves the geometry of a pooling window for a per-sample input shape `[C, H, W]`.
    ///
    /// Every window must overlap the input (padding on each side smaller than the window), so no
    /// output is computed from padding alone.
    ///
    /// - Parameters:
    ///   - inputShape: the per-sample input shape `[C, H, W]`.
    ///   - window: (R, S).
    ///   - stride: (vertical, horizontal).
    ///   - padding: the padding rule.
    ///   - layer: the layer's summary, for errors.
    /// - Throws: `ModelError.shapeMismatch` when the input is not 3-D or the window does not fit.
    public static func resolve(
        inputShape: [Int], window: (Int, Int), stride: (Int, Int), padding: Padding,
        layer: String
    ) throws -> PoolGeometry {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.shapeMismatch(
                layer: layer, index: -1, inputShape: inputShape,
                reason: "expects a per-sample shape [C, H, W]")
        }
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        guard let v = padding.resolve(input: h, window: window.0, stride: stride.0, vertical: true),
            let hz = padding.resolve(input: w, window: window.1, stride: stride.1, vertical: false)
        else {
            throw ModelError.shapeMismatch(
                layer: layer, index: -1, inputShape: inputShape,
                reason: "a \(window.0)x\(window.1) window with \(padding) padding does not fit \(h)x\(w)")
        }
        guard v.before < window.0, v.after < window.0, hz.before < window.1, hz.after < window.1 else {
            throw ModelError.shapeMismatch(
                layer: layer, index: -1, inputShape: inputShape,
                reason: "padding \(padding) must be smaller than the \(window.0)x\(window.1) window on every side")
        }
        return PoolGeometry(
            C: c, H: h, W: w, R: window.0, S: window.1, strideH: stride.0, strideW: stride.1,
            padTop: v.before, padLeft: hz.before, P: v.output, Q: hz.output)
    }

    /// True for 2×2 windows at stride 2 that never reach padding, which `MaxPool2D.forwardPairs` serves.
    var isPairwise: Bool {
        R == 2 && S == 2 && strideH == 2 && strideW == 2 && padTop == 0 && padLeft == 0 && 2 * P <= H && 2 * Q <= W
    }

    /// The input rows `[start, end)` covered by output row `p` (clipped to the input).
    func rows(_ p: Int) -> Range<Int> {
        let start = p * strideH - padTop
        return max(start, 0) ..< min(start + R, H)
    }

    /// The input columns `[start, end)` covered by output column `q` (clipped to the input).
    func columns(_ q: Int) -> Range<Int> {
        let start = q * strideW - padLeft
        return max(start, 0) ..< min(start + S, W)
    }
}

/// What `MaxPool2D` and `AvgPool2D` share: the window, stride and padding, how they are checked,
/// described and turned into a geometry. Each pool supplies its kernels.
public protocol PoolingLayer: Layer {
    /// The summary's and messages' name: `maxpool2d` or `avgpool2d`.
    static var kind: String { get }
    /// Window height R and width S.
    var poolSize: (height: Int, width: Int) { get }
    /// Vertical and horizontal stride.
    var stride: (height: Int, width: Int) { get }
    /// The padding rule.
    var padding: Padding { get }
}

extension PoolingLayer {
    public var summary: String {
        "\(Self.kind)(\(poolSize.height)x\(poolSize.width),s\(stride.height)x\(stride.width),\(padding))"
    }

    /// Checks a pooling layer's hyperparameters and applies the Keras default stride (the pool size).
    ///
    /// - Parameters:
    ///   - poolSize: (R, S), each > 0.
    ///   - stride: each > 0; nil means the pool size.
    ///   - layer: the type's name for messages, e.g. `MaxPool2D`.
    /// - Returns: the window and the stride to use.
    static func checkedWindow(poolSize: (Int, Int), stride: (Int, Int)?, layer: String)
        -> (poolSize: (height: Int, width: Int), stride: (height: Int, width: Int))
    {
        let stride = stride ?? poolSize
        precondition(poolSize.0 > 0 && poolSize.1 > 0, "\(layer) needs a positive pool size, got \(poolSize).")
        precondition(stride.0 > 0 && stride.1 > 0, "\(layer) needs a positive stride, got \(stride).")
        return ((poolSize.0, poolSize.1), (stride.0, stride.1))
    }

    /// The geometry for a per-sample input shape `[C, H, W]`.
    ///
    /// - Throws: `ModelError.shapeMismatch` when the input is not 3-D or the window does not fit.
    public func geometry(for inputShape: [Int]) throws -> PoolGeometry {
        try PoolGeometry.resolve(
            inputShape: inputShape, window: (poolSize.height, poolSize.width),
            stride: (stride.height, stride.width), padding: padding, layer: summary)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try geometry(for: inputShape)
        return [g.C, g.P, g.Q]
    }

    /// The geometry of a batch `[N, C, H, W]`; a batch the window does not fit is a programmer error.
    ///
    /// - Parameter layer: the type's name for the message, e.g. `MaxPool2D`.
    func checkedGeometry(for input: Tensor, layer: String) -> PoolGeometry {
        checkedGeometry(for: input, reusing: nil, layer: layer)
    }

    /// `checkedGeometry(for:layer:)`, returning `cached` when it was made for the same per-sample
    /// shape: the geometry is checked once, and a steady step builds no shape or message strings.
    func checkedGeometry(for input: Tensor, reusing cached: PoolGeometry?, layer: String) -> PoolGeometry {
        let s = input.shape
        if let g = cached, s.count == 4, s[1] == g.C, s[2] == g.H, s[3] == g.W { return g }
        guard input.shape.count == 4, let g = try? geometry(for: input.sampleShape) else {
            preconditionFailure("\(layer) \(summary) expects input [N, C, H, W] that its window fits, got \(input.shape).")
        }
        return g
    }
}
