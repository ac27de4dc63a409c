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

    /// - Parameters:
    ///   - filters: output channels K (> 0).
    ///   - kernelSize: (R, S), each > 0.
    ///   - stride: (vertical, horizontal), each > 0.
    ///   - padding: `.same`, `.valid` or explicit.
    ///   - useBias: add a per-channel bias.
    ///   - weightInitializer: He uniform by default.
    public init(filters: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1), padding: Padding = .valid,
                useBias: Bool = true, weightInitializer: Initializer = .heUniform) {
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
            throw ModelError.shapeMismatch(layer: summary, index: -1, inputShape: inputShape,
                                           reason: "expects a per-sample shape [C, H, W]")
        }
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        guard let vertical = padding.resolve(input: h, window: kernelSize.height, stride: stride.height, vertical: true),
              let horizontal = padding.resolve(input: w, window: kernelSize.width, stride: stride.width, vertical: false)
        else {
            throw ModelError.shapeMismatch(layer: summary, index: -1, inputShape: inputShape,
                                           reason: "a \(kernelSize.height)x\(kernelSize.width) window with \(padding) padding does not fit \(h)x\(w)")
        }
        return ConvGeometry(C: c, H: h, W: w, K: filters, R: kernelSize.height, S: kernelSize.width,
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
        var specs = [ParameterSpec(name: "weight", shape: [filters, c, kernelSize.height, kernelSize.width],
                                   initializer: weightInitializer)]
        if useBias { specs.append(ParameterSpec(name: "bias", shape: [filters], initializer: .zeros)) }
        return specs
    }

    public mutating func bind(slots: [ParameterSlot]) {
        weightSlot = slots[0]
        biasSlot = useBias ? slots[1] : nil
    }

    /// Checks the batch against the layer and returns its geometry.
    func checkedGeometry(for input: Tensor) -> ConvGeometry {
        guard let g = try? geometry(for: input.sampleShape), weightSlot?.shape[1] == g.C else {
            preconditionFailure("Conv2D \(summary) expects input [N, \(weightSlot?.shape[1] ?? -1), H, W], got \(input.shape).")
        }
        return g
    }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        let g = checkedGeometry(for: input)
        geometry = g
        self.input = input
        let n = input.batchSize
        var output = Tensor(shape: [n, g.K, g.P, g.Q])
        let bias = biasSlot.map { UnsafePointer(arena.parameters + $0.offset) }
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                ConvKernels.forwardReference(y.baseAddress!, x.baseAddress!, arena.parameters + weightSlot!.offset,
                                             bias, n, g)
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        guard let g = geometry else { preconditionFailure("Conv2D.backward called before forward.") }
        let n = input.batchSize
        precondition(gradOutput.shape == [n, g.K, g.P, g.Q],
                     "Conv2D \(summary).backward expects a gradient of shape \([n, g.K, g.P, g.Q]), got \(gradOutput.shape).")
        var gradInput = Tensor(shape: computesInputGradient ? input.shape : [0])
        let gradBias = biasSlot.map { arena.gradients + $0.offset }
        gradOutput.storage.withUnsafeBufferPointer { gy in
            input.storage.withUnsafeBufferPointer { x in
                ConvKernels.backwardWeightReference(arena.gradients + weightSlot!.offset, gradBias,
                                                    gy.baseAddress!, x.baseAddress!, n, g)
                if computesInputGradient {
                    gradInput.storage.withUnsafeMutableBufferPointer { gx in
                        ConvKernels.backwardInputReference(gx.baseAddress!, gy.baseAddress!,
                                                           arena.parameters + weightSlot!.offset, n, g)
                    }
                }
            }
        }
        return gradInput
    }
}

/// Convolution kernels. Layouts: x `[N,C,H,W]`, weight `[K,C,R,S]`, bias `[K]`, y `[N,K,P,Q]`.
public enum ConvKernels {
    /// Direct convolution, the reference: y (written) = conv(x, weight) + bias.
    public static func forwardReference(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                        _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                                        _ N: Int, _ g: ConvGeometry) {
        for n in 0 ..< N { for k in 0 ..< g.K { for p in 0 ..< g.P { for q in 0 ..< g.Q {
            var sum = Double(bias?[k] ?? 0)
            for c in 0 ..< g.C { for r in 0 ..< g.R { for s in 0 ..< g.S {
                let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                sum += Double(x[((n * g.C + c) * g.H + h) * g.W + w]) * Double(weight[((k * g.C + c) * g.R + r) * g.S + s])
            } } }
            y[((n * g.K + k) * g.P + p) * g.Q + q] = Float(sum)
        } } } }
    }

    /// Reference weight and bias gradients: gradWeight and gradBias are *added into*.
    public static func backwardWeightReference(_ gradWeight: UnsafeMutablePointer<Float>,
                                               _ gradBias: UnsafeMutablePointer<Float>?,
                                               _ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                               _ N: Int, _ g: ConvGeometry) {
        for k in 0 ..< g.K {
            if let gb = gradBias {
                var sum = 0.0
                for n in 0 ..< N { for i in 0 ..< g.PQ { sum += Double(gy[(n * g.K + k) * g.PQ + i]) } }
                gb[k] += Float(sum)
            }
            for c in 0 ..< g.C { for r in 0 ..< g.R { for s in 0 ..< g.S {
                var sum = 0.0
                for n in 0 ..< N { for p in 0 ..< g.P { for q in 0 ..< g.Q {
                    let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                    guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                    sum += Double(gy[((n * g.K + k) * g.P + p) * g.Q + q]) * Double(x[((n * g.C + c) * g.H + h) * g.W + w])
                } } }
                gradWeight[((k * g.C + c) * g.R + r) * g.S + s] += Float(sum)
            } } }
        }
    }

    /// Reference input gradient: gx (written) = transposed convolution of gy with weight.
    public static func backwardInputReference(_ gx: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>,
                                              _ weight: UnsafePointer<Float>, _ N: Int, _ g: ConvGeometry) {
        gx.update(repeating: 0, count: N * g.C * g.H * g.W)
        for n in 0 ..< N { for k in 0 ..< g.K { for p in 0 ..< g.P { for q in 0 ..< g.Q {
            let d = gy[((n * g.K + k) * g.P + p) * g.Q + q]
            for c in 0 ..< g.C { for r in 0 ..< g.R { for s in 0 ..< g.S {
                let h = p * g.strideH - g.padTop + r, w = q * g.strideW - g.padLeft + s
                guard h >= 0, h < g.H, w >= 0, w < g.W else { continue }
                gx[((n * g.C + c) * g.H + h) * g.W + w] += d * weight[((k * g.C + c) * g.R + r) * g.S + s]
            } } }
        } } } }
    }
}
