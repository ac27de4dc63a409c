/// Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW`.
///
/// Each step first shrinks the parameters, `θ ← θ − η·λ·θ`, then applies the Adam update with the
/// raw gradient (see `Adam`). Only trainable slots are updated.
public final class AdamW: Optimizer {
    /// η, the step size of the next step.
    public var learningRate: Float
    /// β1, the first-moment decay, in [0, 1).
    public let beta1: Float
    /// β2, the second-moment decay, in [0, 1).
    public let beta2: Float
    /// ε, added to the denominator (> 0).
    public let epsilon: Float
    /// λ, the decoupled weight-decay coefficient (≥ 0).
    public let weightDecay: Float
    private var moments = AdamMoments()

    /// Creates an AdamW optimizer, validating every hyperparameter.
    ///
    /// - Parameters:
    ///   - learningRate: η, finite and ≥ 0.
    ///   - beta1: β1 in [0, 1).
    ///   - beta2: β2 in [0, 1).
    ///   - epsilon: ε > 0.
    ///   - weightDecay: λ ≥ 0 (PyTorch's default is 0.01).
    /// - Throws: `TrainingConfigError.invalid` naming the first bad hyperparameter and its value.
    public init(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0.01) throws {
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
    }

    /// `adamw(beta1=0.9,beta2=0.999,eps=1e-08,wd=0.01)`; the learning rate is left out.
    public var summary: String { "adamw(beta1=\(beta1),beta2=\(beta2),eps=\(epsilon),wd=\(weightDecay))" }

    /// Applies one update to the trainable slots of `arena.parameters` from `arena.gradients`.
    ///
    /// - Parameter arena: the model's arenas; gradients must already be averaged over the batch.
    public func step(arena: ParameterArena) {
        moments.step(arena: arena, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                     l2: 0, decoupledDecay: weightDecay)
    }

    /// The step count and the buffers `"m"` and `"v"` (arena layout; empty before the first step).
    public var state: OptimizerState {
        get { moments.state }
        set { moments.state = newValue }
    }
}
