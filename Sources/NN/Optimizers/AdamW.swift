/// Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's `torch.optim.AdamW`.
///
/// Each step first shrinks the parameters, `θ ← θ − η·λ·θ`, then applies the Adam update with the
/// raw gradient (see `Adam`, whose implementation it shares). Only trainable slots are updated.
public final class AdamW: Adam {
    /// Creates an AdamW optimizer, validating every hyperparameter.
    ///
    /// - Parameters:
    ///   - learningRate: η, finite and ≥ 0.
    ///   - beta1: β1 in [0, 1).
    ///   - beta2: β2 in [0, 1).
    ///   - epsilon: ε > 0.
    ///   - weightDecay: λ ≥ 0, the decoupled decay coefficient (PyTorch's default is 0.01).
    /// - Throws: `TrainingConfigError.invalid` naming the first bad hyperparameter and its value.
    public init(
        learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
        weightDecay: Float = 0.01
    ) throws {
        try super.init(
            learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
            decoupled: true)
    }
}
