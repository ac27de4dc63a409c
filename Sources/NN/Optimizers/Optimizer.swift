/// Errors in configuring training (bad hyperparameters).
public enum TrainingConfigError: Error, Equatable, CustomStringConvertible {
    case invalid(option: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .invalid(option, value, reason): return "invalid \(option) \(value): \(reason)"
        }
    }
}

/// The state an optimizer carries between steps, in a form that can be broadcast and checkpointed.
public struct OptimizerState: Equatable {
    /// Steps taken so far.
    public var step: Int
    /// Named flat buffers with the parameter arena's layout (e.g. `"momentum"`, `"m"`, `"v"`).
    public var buffers: [String: [Float]]

    public init(step: Int = 0, buffers: [String: [Float]] = [:]) {
        self.step = step
        self.buffers = buffers
    }
}

/// Updates parameters from gradients, one flat loop over the arenas.
///
/// The gradients are read from a `GradientSource`: `gradientScale · arena.gradients` (1 when the
/// arena already holds the batch mean, 1/B when it holds the sum over B samples: the trainer leaves
/// the sums there and lets the optimizer scale them as it reads them, which saves a pass over the
/// gradients), or the exact reduction's Double sums, turned into the mean as they are read.
public protocol Optimizer: AnyObject {
    /// A stable description with hyperparameters, e.g. `sgd(momentum=0.9,nesterov,wd=0.0005)`.
    var summary: String { get }
    /// The learning rate of the next step (schedules set it before each step).
    var learningRate: Float { get set }
    /// Applies one update to `arena.parameters` from the gradients `gradients` gives (the arena's
    /// gradients, or the sums they come from, are left as they are).
    func step(arena: ParameterArena, gradients: GradientSource)
    /// The state to broadcast or checkpoint; setting it restores it.
    var state: OptimizerState { get set }
}

extension Optimizer {
    /// Applies one update from `gradientScale · arena.gradients`.
    public func step(arena: ParameterArena, gradientScale: Float) { step(arena: arena, gradients: .arena(scale: gradientScale)) }

    /// Applies one update from `arena.gradients` as they are (already averaged over the batch).
    public func step(arena: ParameterArena) { step(arena: arena, gradients: .arena(scale: 1)) }
}
