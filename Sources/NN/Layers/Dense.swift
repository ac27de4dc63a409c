/// A fully connected layer: `y = x · Wᵀ + b`.
///
/// Input `[N, F]` (any per-sample shape is flattened: `F` = product), weight `[U, F]`,
/// bias `[U]`, output `[N, U]`.
public struct Dense: Layer {
    /// The number of outputs U.
    public let units: Int
    /// Whether the layer adds a bias.
    public let useBias: Bool
    /// The weight's initializer.
    public let weightInitializer: Initializer

    private var weightSlot: ParameterSlot?
    private var biasSlot: ParameterSlot?
    private var input = Tensor(shape: [0])
    private var inputShape: [Int] = []
    // Output and input-gradient buffers, reused across steps.
    private var output = Tensor(shape: [0])
    private var gradInput = Tensor(shape: [0])

    /// Where the weight's gradient goes instead of the arena, when it returns true: called in
    /// backward with the output gradient `gy [N, U]`, the input `x [N, F]` and N, before the bias
    /// and input gradients. A data-parallel reducer that sends the weight as its factors
    /// (`--dense-factors`) keeps them and forms the summed gradient itself. Nil (or false): the
    /// layer adds `gyᵀ·x` into the arena.
    public var weightGradientTaker: ((_ gy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ rows: Int) -> Bool)?

    /// - Parameters:
    ///   - units: the number of outputs (> 0).
    ///   - useBias: add a learned bias (initialized to zero).
    ///   - weightInitializer: He uniform by default (for ReLU networks).
    public init(units: Int, useBias: Bool = true, weightInitializer: Initializer = .heUniform) {
        precondition(units > 0, "Dense needs a positive number of units, got \(units).")
        self.units = units
        self.useBias = useBias
        self.weightInitializer = weightInitializer
    }

    public var summary: String { "dense(\(units)\(useBias ? "" : ",nobias"))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] {
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.shapeMismatch(
                layer: summary, index: -1, inputShape: inputShape,
                reason: "needs a non-empty input")
        }
        return [units]
    }

    public func parameterSpecs(for inputShape: [Int]) -> [ParameterSpec] {
        let f = inputShape.reduce(1, *)
        var specs = [ParameterSpec(name: "weight", shape: [units, f], initializer: weightInitializer)]
        if useBias { specs.append(ParameterSpec(name: "bias", shape: [units], initializer: .zeros)) }
        return specs
    }

    public mutating func bind(slots: [ParameterSlot]) {
        weightSlot = slots[0]
        biasSlot = useBias ? slots[1] : nil
    }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        guard let w = weightSlot else { preconditionFailure("Dense.forward called before the layer was bound to an arena.") }
        let n = input.batchSize, f = w.shape[1]
        precondition(
            input.count == n * f,
            "Dense(\(units)) expects \(f) input features per sample, got input \(input.shape).")
        inputShape = input.shape
        self.input = input
        output.resize(n, units)
        let bias = biasSlot
        output.storage.withUnsafeMutableBufferPointer { y in
            input.storage.withUnsafeBufferPointer { x in
                // y[N,U] = x[N,F] · W[U,F]ᵀ
                GEMM.multiply(
                    y.baseAddress!, ldc: units, x.baseAddress!, lda: f, transA: false,
                    arena.parameters + w.offset, ldb: f, transB: true, m: n, n: units, k: f)
            }
            if let b = bias {
                let bp = arena.parameters + b.offset
                for i in 0 ..< n { for j in 0 ..< units { y[i * units + j] += bp[j] } }
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        guard let w = weightSlot else { preconditionFailure("Dense.backward called before the layer was bound to an arena.") }
        let n = input.batchSize, f = w.shape[1]
        checkGradient(gradOutput)
        gradOutput.storage.withUnsafeBufferPointer { gy in
            input.storage.withUnsafeBufferPointer { x in
                if weightGradientTaker?(gy.baseAddress!, x.baseAddress!, n) == true { return }
                // gradW[U,F] += gyᵀ[U,N] · x[N,F]
                GEMM.multiply(
                    arena.gradients + w.offset, ldc: f, gy.baseAddress!, lda: units, transA: true,
                    x.baseAddress!, ldb: f, transB: false, m: units, n: f, k: n, beta: 1)
            }
            if let b = biasSlot { Dense.addBiasGradient(arena.gradients + b.offset, gy.baseAddress!, rows: 0 ..< n, units: units) }
        }
        return inputGradient(gradOutput, arena: arena)
    }

    /// The input gradient alone, `gradX[N,F] = gy[N,U] · W[U,F]`, for a caller that forms the
    /// parameter gradients itself from `lastInput` (deterministic mode sums them chunk by chunk).
    ///
    /// Each row of the result depends only on the same row of `gradOutput`, so a batch gives the
    /// bits its parts would give one by one.
    /// - Parameters:
    ///   - gradOutput: `[N, U]` for the input of the last `forward` (read).
    ///   - arena: the parameters (read).
    /// - Returns: `[N, …]`, the shape of the last input.
    public mutating func inputGradient(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        guard let w = weightSlot else { preconditionFailure("Dense.backward called before the layer was bound to an arena.") }
        let n = input.batchSize, f = w.shape[1]
        checkGradient(gradOutput)
        gradInput.resize(to: inputShape)
        gradOutput.storage.withUnsafeBufferPointer { gy in
            gradInput.storage.withUnsafeMutableBufferPointer { gx in
                // gradX[N,F] = gy[N,U] · W[U,F]
                GEMM.multiply(
                    gx.baseAddress!, ldc: f, gy.baseAddress!, lda: units, transA: false,
                    arena.parameters + w.offset, ldb: f, transB: false, m: n, n: f, k: units)
            }
        }
        return gradInput
    }

    /// Adds the rows `rows` of gy into the bias gradient, in row order: `gradBias[U] += Σ_i gy[i, U]`.
    ///
    /// - gradBias: `[U]` (added into). gy: `[N, U]` row-major (read).
    public static func addBiasGradient(_ gradBias: UnsafeMutablePointer<Float>, _ gy: UnsafePointer<Float>, rows: Range<Int>, units: Int) {
        for i in rows { for j in 0 ..< units { gradBias[j] += gy[i * units + j] } }
    }

    public mutating func releaseInput() { input = .empty }

    /// The input of the last `forward`, `[N, …]` (F features a sample).
    public var lastInput: Tensor { input }

    private func checkGradient(_ gradOutput: Tensor) {
        let n = input.batchSize
        precondition(
            gradOutput.shape == [n, units],
            "Dense(\(units)).backward expects a gradient of shape \([n, units]), got \(gradOutput.shape).")
    }
}
