/// How a convolution or pooling window pads its input.
public enum Padding: Equatable, Codable, CustomStringConvertible {
    /// No padding: `P = (H − R) / stride + 1`.
    case valid
    /// TensorFlow/Keras "same": `P = ceil(H / stride)`, padding split with the extra row at the bottom/right.
    case same
    /// Explicit zero padding on each side.
    case explicit(top: Int, bottom: Int, left: Int, right: Int)

    public var description: String {
        switch self {
        case .valid: return "valid"
        case .same: return "same"
        case let .explicit(t, b, l, r): return "pad\(t),\(b),\(l),\(r)"
        }
    }

    /// Returns (padBefore, padAfter, outputSize) for one spatial dimension, or nil when the window
    /// does not fit.
    ///
    /// - Parameters:
    ///   - input: the input extent (H or W).
    ///   - window: the window extent (R or S).
    ///   - stride: the step.
    ///   - vertical: true for H (top/bottom), false for W (left/right).
    public func resolve(input: Int, window: Int, stride: Int, vertical: Bool) -> (before: Int, after: Int, output: Int)? {
        let before: Int, after: Int
        switch self {
        case .valid: (before, after) = (0, 0)
        case .same:
            let out = (input + stride - 1) / stride
            let total = max((out - 1) * stride + window - input, 0)
            (before, after) = (total / 2, total - total / 2)
        case let .explicit(t, b, l, r): (before, after) = vertical ? (t, b) : (l, r)
        }
        let span = input + before + after - window
        guard before >= 0, after >= 0, span >= 0 else { return nil }
        return (before, after, span / stride + 1)
    }
}

/// The geometry of one 2-D convolution: sizes named as in the kernels
/// (`N` batch, `C` in-channels, `K` out-channels, `H,W` input, `P,Q` output, `R,S` filter).
public struct ConvGeometry: Equatable {
    public var C: Int, H: Int, W: Int
    public var K: Int, R: Int, S: Int
    public var strideH: Int, strideW: Int
    public var padTop: Int, padLeft: Int
    public var P: Int, Q: Int

    /// The im2col row count: `C·R·S`.
    public var CRS: Int { C * R * S }
    /// Output pixels per channel: `P·Q`.
    public var PQ: Int { P * Q }
}

/// A 2-D convolution over NCHW input (cross-correlation, like every framework).
///
/// Input `[N, C, H, W]`, weight `[K, C, R, S]`, bias `[K]`, output `[N, K, P, Q]` with
/// `P = (H + padTop + padBottom − R) / strideH + 1` (and likewise Q); `same` padding gives
/// `P = ceil(H / strideH)`.
///
/// Forward and backward run the im2col + GEMM kernels of `ConvKernels` (whose direct `…Reference`
/// twins the tests compare against); backward adds into the gradient arena and skips the input
/// gradient when `computesInputGradient` is false.
public struct Conv2D: Layer {
    /// Output channels K.
    public let filters: Int
    /// Filter height R and width S.
    public let kernelSize: (height: Int, width: Int)
    /// Vertical and horizontal stride.
    public let stride: (height: Int, width: Int)
    /// The padding rule.
    public let padding: Padding
    /// Whether a learned bias (initialized to zero) is added.
    public let useBias: Bool
    /// The weight's initializer.
    public let weightInitializer: Initializer
    /// Whether backward computes the input gradient (false for a model's first layer, where nobody uses it).
    public var computesInputGradient = true

    var weightSlot: ParameterSlot?
    var biasSlot: ParameterSlot?
    var geometry: ConvGeometry?
    var input = Tensor(shape: [0])
    /// im2col scratch (one channel chunk's column matrix and a zero-bordered copy of one sample),
    /// reused across steps.
    var columns: [Float] = []
    /// Output and input-gradient buffers, reused across steps (layers after a convolution do not
    /// keep its output, and layers before it do not keep the gradient they are handed).
    var output = Tensor(shape: [0])
    var gradInput = Tensor(shape: [0])
    /// The max pool fused into this layer (`Conv2D+Pooling.swift`), or nil; set by `Sequential`.
    var fusedPool: MaxPool2D?
    /// With a fused pool: its geometry, the pooled output, each pooled output's argmax (a flat index
    /// into its sample's block) and the reused block of one sample's output (or its gradient).
    var poolGeometry: PoolGeometry?
    var pooledOutput = Tensor(shape: [0])
    var poolArgmax: [Int] = []
    var poolSample: [Float] = []

    /// - Parameters:
    ///   - filters: output channels K (> 0).
    ///   - kernelSize: (R, S), each > 0.
    ///   - stride: (vertical, horizontal), each > 0.
    ///   - padding: `.same`, `.valid` or explicit.
    ///   - useBias: add a per-channel bias.
    ///   - weightInitializer: He uniform by default.
    public init(
        filters: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1), padding: Padding = .valid,
        useBias: Bool = true, weightInitializer: Initializer = .heUniform
    ) {
        precondition(filters > 0, "Conv2D needs a positive number of filters, got \(filters).")
        precondition(kernelSize.0 > 0 && kernelSize.1 > 0, "Conv2D needs a positive kernel size, got \(kernelSize).")
        precondition(stride.0 > 0 && stride.1 > 0, "Conv2D needs a positive stride, got \(stride).")
        self.filters = filters
        self.kernelSize = (kernelSize.0, kernelSize.1)
        self.stride = (stride.0, stride.1)
        self.padding = padding
        self.useBias = useBias
        self.weightInitializer = weightInitializer
    }

    public var summary: String {
        "conv2d(\(filters),\(kernelSize.height)x\(kernelSize.width),s\(stride.height)x\(stride.width),\(padding)\(useBias ? "" : ",nobias"))"
    }

    /// The geometry for a per-sample input shape `[C, H, W]`.
    ///
    /// - Throws: `ModelError.shapeMismatch` when the input is not 3-D or the window does not fit.
    public func geometry(for inputShape: [Int]) throws -> ConvGeometry {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.shapeMismatch(
                layer: summary, index: -1, inputShape: inputShape,
                reason: "expects a per-sample shape [C, H, W]")
        }
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        guard let vertical = padding.resolve(input: h, window: kernelSize.height, stride: stride.height, vertical: true),
            let horizontal = padding.resolve(input: w, window: kernelSize.width, stride: stride.width, vertical: false)
        else {
            throw ModelError.shapeMismatch(
                layer: summary, index: -1, inputShape: inputShape,
                reason: "a \(kernelSize.height)x\(kernelSize.width) window with \(padding) padding does not fit \(h)x\(w)")
        }
        return ConvGeometry(
            C: c, H: h, W: w, K: filters, R: kernelSize.height, S: kernelSize.width,
            strideH: stride.height, strideW: stride.width,
            padTop: vertical.before, padLeft: horizontal.before,
            P: vertical.output, Q: horizontal.output)
    }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        let g = try geometry(for: inputShape)
        return [g.K, g.P, g.Q]
    }

    public func parameterSpecs(for inputShape: [Int]) -> [ParameterSpec] {
        let c = inputShape.first ?? 1
        var specs = [
            ParameterSpec(
                name: "weight", shape: [filters, c, kernelSize.height, kernelSize.width],
                initializer: weightInitializer)
        ]
        if useBias { specs.append(ParameterSpec(name: "bias", shape: [filters], initializer: .zeros)) }
        return specs
    }

    public mutating func bind(slots: [ParameterSlot]) {
        weightSlot = slots[0]
        biasSlot = useBias ? slots[1] : nil
    }

    /// Checks the batch against the layer and returns its geometry.
    func checkedGeometry(for input: Tensor) -> ConvGeometry {
        // The geometry of the last batch when the per-sample shape is the same: a steady step
        // builds no shape arrays or message strings.
        let s = input.shape
        if let g = geometry, s.count == 4, s[1] == g.C, s[2] == g.H, s[3] == g.W { return g }
        guard let g = try? geometry(for: input.sampleShape), weightSlot?.shape[1] == g.C else {
            preconditionFailure("Conv2D \(summary) expects input [N, \(weightSlot?.shape[1] ?? -1), H, W], got \(input.shape).")
        }
        return g
    }

    /// Computes `[N, K, P, Q]` from `[N, C, H, W]` with the im2col + GEMM kernels, keeping the
    /// input for backward.
    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        let g = checkedGeometry(for: input)
        geometry = g
        self.input = input
        let n = input.batchSize, count = n * g.K * g.PQ
        guard count > 0 else { return Tensor(shape: [n, g.K, g.P, g.Q]) }
        let weight = UnsafePointer(arena.parameters + weightSlot!.offset)
        let bias = biasSlot.map { UnsafePointer(arena.parameters + $0.offset) }
        reserveColumns(for: g)
        if fusedPool != nil { return forwardPooled(input, weight: weight, bias: bias, g) }
        // Every output element is written by the GEMM (beta 0), so the old contents do not matter.
        output.resize(n, g.K, g.P, g.Q)
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                columns.withUnsafeMutableBufferPointer { col in
                    ConvKernels.forward(y.baseAddress!, x.baseAddress!, weight, bias, col.baseAddress!, n, g)
                }
            }
        }
        return output
    }

    public mutating func releaseInput() { input = .empty }

    /// Grows the im2col scratch to what geometry `g` needs; it is kept across steps.
    mutating func reserveColumns(for g: ConvGeometry) {
        let needed = max(ConvKernels.columnScratchCount(g), 1)
        if columns.count < needed { columns = [Float](repeating: 0, count: needed) }
    }
}

extension ConvGeometry {
    /// True when the column matrix of a sample is the sample itself (1×1 filter, stride 1, no padding).
    public var isPointwise: Bool {
        R == 1 && S == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0 && P == H && Q == W
    }

    /// The height of the zero-bordered input that the windows read: top padding, the input, and
    /// whatever bottom padding the last window row reaches.
    var paddedHeight: Int { max(H + padTop, (P - 1) * strideH + R) }
    /// The width of the zero-bordered input (left padding, input, reachable right padding).
    var paddedWidth: Int { max(W + padLeft, (Q - 1) * strideW + S) }
}
