/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.
///
/// Without momentum the update is `θ ← θ − η·∇L − η·λ·θ`. With momentum it follows PyTorch's
/// `torch.optim.SGD` (dampening 0): `g = ∇L + λ·θ`, `b ← μ·b + g` (b starts at zero, so the first
/// step has `b = g`), then `θ ← θ − η·b`, or `θ ← θ − η·(g + μ·b)` with Nesterov.
/// Only trainable slots are updated; running statistics and padding are left as they are.
public final class SGD: Optimizer {
    /// η, the step size of the next step (a schedule sets it before each step).
    public var learningRate: Float
    /// μ, in [0, 1); 0 disables momentum.
    public let momentum: Float
    /// Whether the step uses Nesterov's look-ahead `g + μ·b`.
    public let nesterov: Bool
    /// λ, the L2 weight-decay coefficient (≥ 0).
    public let weightDecay: Float
    /// The momentum buffer `b`, arena layout; empty until the first step (or a restored state).
    private var momentumBuffer: [Float] = []
    private var stepCount = 0

    /// Creates an SGD optimizer, validating every hyperparameter.
    ///
    /// - Parameters:
    ///   - learningRate: η, finite and ≥ 0.
    ///   - momentum: μ in [0, 1).
    ///   - nesterov: Nesterov momentum; requires `momentum > 0`.
    ///   - weightDecay: λ, finite and ≥ 0.
    /// - Throws: `TrainingConfigError.invalid` naming the first bad hyperparameter and its value.
    public init(learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) throws {
        try OptimizerValidation.learningRate(learningRate)
        try OptimizerValidation.unitInterval(momentum, option: "momentum")
        try OptimizerValidation.weightDecay(weightDecay)
        if nesterov && momentum == 0 {
            throw TrainingConfigError.invalid(
                option: "nesterov", value: "true",
                reason: "Nesterov momentum needs a momentum greater than 0; pass a momentum such as 0.9 or drop nesterov.")
        }
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    /// `sgd(momentum=0.9,nesterov,wd=0.0005)`; the learning rate is left out because schedules change it.
    public var summary: String {
        var parts: [String] = []
        if momentum > 0 { parts.append("momentum=\(momentum)") }
        if nesterov { parts.append("nesterov") }
        if weightDecay > 0 { parts.append("wd=\(weightDecay)") }
        return "sgd(" + parts.joined(separator: ",") + ")"
    }

    /// Applies one update to the trainable slots of `arena.parameters` from the gradients
    /// `gradients` gives.
    public func step(arena: ParameterArena, gradients: GradientSource) {
        stepCount += 1
        if momentum > 0 {
            if momentumBuffer.isEmpty { momentumBuffer = [Float](repeating: 0, count: arena.count) }
            precondition(
                momentumBuffer.count == arena.count,
                "SGD momentum buffer has \(momentumBuffer.count) floats but the arena has \(arena.count).")
        }
        momentumBuffer.withUnsafeMutableBufferPointer { buffer in
            var update = SGDUpdate(
                parameters: arena.parameters, momentum: momentum > 0 ? buffer.baseAddress : nil, learningRate: learningRate,
                weightDecay: weightDecay, mu: momentum, nesterov: nesterov)
            gradients.forEachTrainableSlot(of: arena, &update)
        }
    }

    /// The step count and, with momentum, the buffer `"momentum"` (arena layout).
    ///
    /// Setting restores both; an empty or absent buffer means zero momentum.
    public var state: OptimizerState {
        get {
            OptimizerState(step: stepCount, buffers: momentum > 0 ? ["momentum": momentumBuffer] : [:])
        }
        set {
            stepCount = newValue.step
            momentumBuffer = newValue.buffers["momentum"] ?? []
        }
    }
}

/// Hyperparameter checks shared by the optimizers; each throws a full sentence with the value.
enum OptimizerValidation {
    static func learningRate(_ value: Float) throws {
        guard value.isFinite, value >= 0 else {
            throw TrainingConfigError.invalid(
                option: "learning rate", value: "\(value)",
                reason: "The learning rate must be a finite number greater than or equal to 0.")
        }
    }

    static func unitInterval(_ value: Float, option: String) throws {
        guard value >= 0, value < 1 else {
            throw TrainingConfigError.invalid(
                option: option, value: "\(value)",
                reason: "The \(option) must be in [0, 1).")
        }
    }

    static func weightDecay(_ value: Float) throws {
        guard value.isFinite, value >= 0 else {
            throw TrainingConfigError.invalid(
                option: "weight decay", value: "\(value)",
                reason: "The weight decay must be a finite number greater than or equal to 0.")
        }
    }

    static func epsilon(_ value: Float) throws {
        guard value.isFinite, value > 0 else {
            throw TrainingConfigError.invalid(
                option: "epsilon", value: "\(value)",
                reason: "The epsilon must be a finite number greater than 0.")
        }
    }
}

/// One SGD step of a slot: `θ ← θ − η·g − η·λ·θ` without momentum; with it, `g = ∇L + λ·θ`,
/// `b ← μ·b + g`, `θ ← θ − η·b` (or `θ − η·(g + μ·b)`, Nesterov).
private struct SGDUpdate: SlotVisitor {
    let parameters: UnsafeMutablePointer<Float>
    /// The momentum buffer (arena layout), nil without momentum.
    let momentum: UnsafeMutablePointer<Float>?
    let learningRate, weightDecay, mu: Float
    let nesterov: Bool

    func visit<G: SlotGradient>(_ slot: ParameterSlot, _ grad: G) {
        let theta = parameters + slot.offset, lr = learningRate, wd = weightDecay, mu = self.mu
        guard let momentum else {
            for i in 0 ..< slot.count {
                theta[i] = theta[i] - lr * grad.scalar(i) - lr * wd * theta[i]
            }
            return
        }
        let b = momentum + slot.offset
        if nesterov {
            for i in 0 ..< slot.count {
                let g = grad.scalar(i) + wd * theta[i]
                let bi = mu * b[i] + g
                b[i] = bi
                theta[i] -= lr * (g + mu * bi)
            }
        } else {
            for i in 0 ..< slot.count {
                let g = grad.scalar(i) + wd * theta[i]
                let bi = mu * b[i] + g
                b[i] = bi
                theta[i] -= lr * bi
            }
        }
    }
}
