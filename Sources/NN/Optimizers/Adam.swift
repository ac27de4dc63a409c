import Foundation

#if arch(x86_64)
    import _Builtin_intrinsics.intel
#endif

/// Adam (Kingma & Ba) with bias correction and optional L2 weight decay added to the gradient.
///
/// With `g = ∇L + λ·θ`: `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, and after `t` steps
/// `θ ← θ − η·(m / (1−β1^t)) / (√v / √(1−β2^t) + ε)`, the form PyTorch's `torch.optim.Adam` uses.
/// For decoupled weight decay use `AdamW`, which shares this implementation. Only trainable slots
/// are updated.
public class Adam: Optimizer {
    /// η, the step size of the next step.
    public var learningRate: Float
    /// β1, the first-moment decay, in [0, 1).
    public let beta1: Float
    /// β2, the second-moment decay, in [0, 1).
    public let beta2: Float
    /// ε, added to the denominator (> 0).
    public let epsilon: Float
    /// λ (≥ 0): added to the gradient as `λ·θ` (Adam), or decoupled as `θ ← θ − η·λ·θ` (AdamW).
    public let weightDecay: Float
    /// Whether `weightDecay` is decoupled from the gradient (AdamW).
    let decoupled: Bool
    private var moments = AdamMoments()

    /// Creates an Adam optimizer, validating every hyperparameter.
    ///
    /// - Parameters:
    ///   - learningRate: η, finite and ≥ 0.
    ///   - beta1: β1 in [0, 1).
    ///   - beta2: β2 in [0, 1).
    ///   - epsilon: ε > 0.
    ///   - weightDecay: λ ≥ 0, added to the gradient as `λ·θ`.
    /// - Throws: `TrainingConfigError.invalid` naming the first bad hyperparameter and its value.
    public convenience init(
        learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 0
    ) throws {
        try self.init(
            learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
            decoupled: false)
    }

    /// The shared initializer of Adam and AdamW: validates, then stores.
    init(learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float, decoupled: Bool) throws {
        try OptimizerValidation.learningRate(learningRate)
        try OptimizerValidation.unitInterval(beta1, option: "beta1")
        try OptimizerValidation.unitInterval(beta2, option: "beta2")
        try OptimizerValidation.epsilon(epsilon)
        try OptimizerValidation.weightDecay(weightDecay)
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupled = decoupled
    }

    /// `adam(beta1=0.9,beta2=0.999,eps=1e-08,wd=0.0)` (`adamw(…)` for AdamW); the learning rate
    /// is left out.
    public var summary: String { "\(decoupled ? "adamw" : "adam")(beta1=\(beta1),beta2=\(beta2),eps=\(epsilon),wd=\(weightDecay))" }

    /// Applies one update to the trainable slots of `arena.parameters` from the gradients
    /// `gradients` gives.
    public func step(arena: ParameterArena, gradients: GradientSource) {
        moments.step(
            arena: arena, gradients: gradients, learningRate: learningRate, beta1: beta1, beta2: beta2,
            epsilon: epsilon, l2: decoupled ? 0 : weightDecay, decoupledDecay: decoupled ? weightDecay : 0)
    }

    /// The step count and the buffers `"m"` and `"v"` (arena layout; empty before the first step).
    public var state: OptimizerState {
        get { moments.state }
        set { moments.state = newValue }
    }
}

/// The moments Adam and AdamW keep, and the one flat update loop they share.
struct AdamMoments {
    var step = 0
    var m: [Float] = []
    var v: [Float] = []

    var state: OptimizerState {
        get { OptimizerState(step: step, buffers: ["m": m, "v": v]) }
        set {
            step = newValue.step
            m = newValue.buffers["m"] ?? []
            v = newValue.buffers["v"] ?? []
        }
    }

    /// One Adam step over the trainable slots, the gradient read from `gradients`.
    /// `l2` is added to the gradient (Adam's weight decay); `decoupledDecay` scales θ by `1 − η·λ`
    /// before the update (AdamW's).
    ///
    /// theta, grad, m, v are all (arena.count) in the arena layout; theta, m, v are updated in place.
    mutating func step(
        arena: ParameterArena, gradients: GradientSource, learningRate: Float, beta1: Float, beta2: Float,
        epsilon: Float, l2: Float, decoupledDecay: Float
    ) {
        if m.isEmpty { m = [Float](repeating: 0, count: arena.count) }
        if v.isEmpty { v = [Float](repeating: 0, count: arena.count) }
        precondition(
            m.count == arena.count && v.count == arena.count,
            "Adam moments have \(m.count) and \(v.count) floats but the arena has \(arena.count).")
        step += 1
        // Bias corrections in Double: β^t underflows gracefully and stays accurate for long runs.
        let t = Double(step)
        let stepSize = Float(Double(learningRate) / (1 - pow(Double(beta1), t)))
        // Multiplying by 1/√(1−β2^t) instead of dividing saves a division per element.
        let inverseRootCorrection2 = Float(1 / (1 - pow(Double(beta2), t)).squareRoot())
        let decay = 1 - learningRate * decoupledDecay
        m.withUnsafeMutableBufferPointer { mBuffer in
            v.withUnsafeMutableBufferPointer { vBuffer in
                var update = AdamUpdate(
                    parameters: arena.parameters, m: mBuffer.baseAddress!, v: vBuffer.baseAddress!,
                    beta1: beta1, beta2: beta2, epsilon: epsilon, l2: l2, decay: decay,
                    stepSize: stepSize, inverseRootCorrection2: inverseRootCorrection2)
                gradients.forEachTrainableSlot(of: arena, &update)
            }
        }
    }

    /// √v lane by lane, correctly rounded like the scalar tail's. On x86-64 one vsqrtps: the
    /// standard library's SIMD `squareRoot()` compiles there to eight scalar square roots, each
    /// with a branch to libm's `sqrtf` (for errno) that a negative lane would take.
    @inline(__always)
    static func squareRoot(_ v: SIMD8<Float>) -> SIMD8<Float> {
        #if arch(x86_64)
            return _mm256_sqrt_ps(v)
        #else
            return v.squareRoot()
        #endif
    }

    /// The update of one slot, eight lanes at a time, then a scalar tail with the same arithmetic.
    ///
    /// theta, m, v are (count), read and written; grad is (count), read.
    @inline(__always)
    static func update<G: SlotGradient>(
        theta: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
        grad: G, count: Int, beta1 b1: Float, beta2 b2: Float,
        epsilon eps: Float, l2: Float, decay: Float, stepSize: Float, inverseRootCorrection2 r2: Float
    ) {
        typealias V8 = SIMD8<Float>
        var i = 0
        while i + 8 <= count {
            let p = UnsafeMutableRawPointer(theta + i), mp = UnsafeMutableRawPointer(m + i), vp = UnsafeMutableRawPointer(v + i)
            let th = p.loadUnaligned(as: V8.self)
            let g = grad.vector(i) + l2 * th
            let mi = b1 * mp.loadUnaligned(as: V8.self) + (1 - b1) * g
            let vi = b2 * vp.loadUnaligned(as: V8.self) + (1 - b2) * g * g
            mp.storeBytes(of: mi, as: V8.self)
            vp.storeBytes(of: vi, as: V8.self)
            p.storeBytes(of: th * decay - stepSize * mi / (AdamMoments.squareRoot(vi) * r2 + eps), as: V8.self)
            i += 8
        }
        while i < count {
            let g = grad.scalar(i) + l2 * theta[i]
            let mi = b1 * m[i] + (1 - b1) * g
            let vi = b2 * v[i] + (1 - b2) * g * g
            m[i] = mi
            v[i] = vi
            theta[i] = theta[i] * decay - stepSize * mi / (vi.squareRoot() * r2 + eps)
            i += 1
        }
    }
}

/// One Adam step of a slot (`AdamMoments.update`), m and v in the arena layout.
private struct AdamUpdate: SlotVisitor {
    let parameters, m, v: UnsafeMutablePointer<Float>
    let beta1, beta2, epsilon, l2, decay, stepSize, inverseRootCorrection2: Float

    func visit<G: SlotGradient>(_ slot: ParameterSlot, _ grad: G) {
        AdamMoments.update(
            theta: parameters + slot.offset, m: m + slot.offset, v: v + slot.offset, grad: grad, count: slot.count,
            beta1: beta1, beta2: beta2, epsilon: epsilon, l2: l2, decay: decay, stepSize: stepSize,
            inverseRootCorrection2: inverseRootCorrection2)
    }
}
