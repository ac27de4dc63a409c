import Foundation

/// The learning rate as a pure function of the step index, so a resumed run continues exactly.
///
/// Steps are counted from 0 (the first optimizer step). During warm-up (`t < W`) the rate rises
/// linearly, `base·(t+1)/W`, reaching `base` at step `W−1`. After it the decay runs on `s = t − W`:
/// - `constant`: `base`;
/// - `step(every: N, gamma: γ)`: `base·γ^⌊s/N⌋`;
/// - `cosine(totalSteps: T, floor: f)`: `f + (base − f)·(1 + cos(π·min(1, s/(T−W))))/2`, where `T`
///   counts all steps, warm-up included; from step `T` on the rate stays at `f`.
public struct LearningRateSchedule: Equatable, CustomStringConvertible {
    /// How the rate decays after warm-up.
    public enum Decay: Equatable {
        /// No decay.
        case constant
        /// Multiply by `gamma` every `every` steps.
        case step(every: Int, gamma: Float)
        /// Half a cosine from the base rate down to `floor`, ending at step `totalSteps`.
        case cosine(totalSteps: Int, floor: Float)
    }

    /// The peak rate, reached at the end of warm-up.
    public let base: Float
    /// The decay after warm-up.
    public let decay: Decay
    /// W, the number of linear warm-up steps (0 for none).
    public let warmupSteps: Int

    /// Creates a schedule, validating it.
    ///
    /// - Parameters:
    ///   - base: the peak learning rate, finite and ≥ 0.
    ///   - decay: the decay after warm-up.
    ///   - warmupSteps: W ≥ 0.
    /// - Throws: `TrainingConfigError.invalid` for a negative or non-finite rate, a negative warm-up, a
    ///   decay interval < 1, γ outside (0, 1], a cosine floor outside [0, base] or a cosine length
    ///   not longer than the warm-up.
    public init(base: Float, decay: Decay = .constant, warmupSteps: Int = 0) throws {
        try OptimizerValidation.learningRate(base)
        guard warmupSteps >= 0 else {
            throw TrainingConfigError.invalid(
                option: "warm-up steps", value: "\(warmupSteps)",
                reason: "The number of warm-up steps must be 0 or more.")
        }
        switch decay {
        case .constant:
            break
        case let .step(every, gamma):
            guard every >= 1 else {
                throw TrainingConfigError.invalid(
                    option: "decay interval", value: "\(every)",
                    reason: "The step-decay interval must be at least 1 step.")
            }
            guard gamma > 0, gamma <= 1 else {
                throw TrainingConfigError.invalid(
                    option: "decay gamma", value: "\(gamma)",
                    reason: "The step-decay factor gamma must be in (0, 1].")
            }
        case let .cosine(totalSteps, floor):
            guard totalSteps > warmupSteps else {
                throw TrainingConfigError.invalid(
                    option: "cosine total steps", value: "\(totalSteps)",
                    reason: "The cosine schedule must last longer than its \(warmupSteps) warm-up steps.")
            }
            guard floor >= 0, floor <= base else {
                throw TrainingConfigError.invalid(
                    option: "cosine floor", value: "\(floor)",
                    reason: "The cosine floor must be in [0, \(base)] (0 up to the base learning rate).")
            }
        }
        self.base = base
        self.decay = decay
        self.warmupSteps = warmupSteps
    }

    /// The learning rate for step `t` (0-based).
    ///
    /// - Parameter step: the index of the step about to be taken, ≥ 0.
    /// - Returns: the rate to set on the optimizer before that step.
    public func learningRate(at step: Int) -> Float {
        precondition(step >= 0, "Learning-rate schedules start at step 0, got step \(step).")
        if step < warmupSteps { return Float(Double(base) * Double(step + 1) / Double(warmupSteps)) }
        let s = step - warmupSteps
        switch decay {
        case .constant:
            return base
        case let .step(every, gamma):
            return Float(Double(base) * pow(Double(gamma), Double(s / every)))
        case let .cosine(totalSteps, floor):
            let progress = min(1, Double(s) / Double(totalSteps - warmupSteps))
            return Float(Double(floor) + Double(base - floor) * (1 + cos(Double.pi * progress)) / 2)
        }
    }

    /// A stable description: `cosine(base=0.1,total=1000,floor=0.0,warmup=10)` and the like.
    public var description: String {
        let warmup = warmupSteps > 0 ? ",warmup=\(warmupSteps)" : ""
        switch decay {
        case .constant: return "constant(base=\(base)\(warmup))"
        case let .step(every, gamma): return "step(base=\(base),every=\(every),gamma=\(gamma)\(warmup))"
        case let .cosine(total, floor): return "cosine(base=\(base),total=\(total),floor=\(floor)\(warmup))"
        }
    }
}
