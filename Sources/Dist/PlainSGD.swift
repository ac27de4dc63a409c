import NN

/// Stochastic gradient descent with optional heavy-ball momentum, in one flat loop over the
/// trainable slots: `v = μ·v + g; p −= lr·v` (PyTorch's form; `v = g` when μ = 0).
///
/// The data-parallel layer's own optimizer: the gradient check and the trainer's tests use it
/// because its update is elementwise and order-free, so replicas that see the same gradients stay
/// bitwise identical.
public final class PlainSGD: Optimizer {
    public var learningRate: Float
    /// The momentum coefficient μ in [0, 1).
    public let momentum: Float
    private var velocity: [Float] = []
    private var steps = 0

    /// - Parameters:
    ///   - learningRate: the step size (> 0).
    ///   - momentum: μ in [0, 1).
    /// - Throws: `TrainingConfigError.invalid` for out-of-range values.
    public init(learningRate: Float, momentum: Float = 0) throws {
        guard learningRate > 0, learningRate.isFinite else {
            throw TrainingConfigError.invalid(option: "learning rate", value: "\(learningRate)", reason: "must be a positive number")
        }
        guard momentum >= 0, momentum < 1 else {
            throw TrainingConfigError.invalid(option: "momentum", value: "\(momentum)", reason: "must be in [0, 1)")
        }
        self.learningRate = learningRate
        self.momentum = momentum
    }

    public var summary: String { momentum > 0 ? "sgd(momentum=\(momentum))" : "sgd" }

    public func step(arena: ParameterArena) {
        if momentum > 0 && velocity.count != arena.count { velocity = [Float](repeating: 0, count: arena.count) }
        let p = arena.parameters, g = arena.gradients, lr = learningRate, mu = momentum
        velocity.withUnsafeMutableBufferPointer { v in
            for slot in arena.slots where slot.trainable {
                for i in slot.range {
                    if mu > 0 {
                        v[i] = mu * v[i] + g[i]
                        p[i] -= lr * v[i]
                    } else {
                        p[i] -= lr * g[i]
                    }
                }
            }
        }
        steps += 1
    }

    public var state: OptimizerState {
        get { OptimizerState(step: steps, buffers: momentum > 0 ? ["momentum": velocity] : [:]) }
        set {
            steps = newValue.step
            velocity = newValue.buffers["momentum"] ?? []
        }
    }
}
