import ArgumentParser
import Dist
import NN

/// The optimizer, its hyperparameters and the learning-rate schedule of `ddp train`.
struct OptimizerOptions: ParsableArguments {
    @Option(help: "The optimizer: sgd, adam or adamw (decoupled weight decay).")
    var optimizer = "adam"

    @Option(name: .customLong("lr"), help: ArgumentHelp("The (peak) learning rate (default: 0.001 for adam/adamw, 0.05 for sgd).", valueName: "rate"))
    var learningRate: Float?

    @Option(help: "SGD momentum, in [0, 1) (default 0.9).")
    var momentum: Float?

    @Flag(help: "SGD: Nesterov momentum.")
    var nesterov = false

    @Option(help: "Weight decay: L2 added to the gradient for sgd and adam, decoupled for adamw (default 0, adamw 0.01).")
    var weightDecay: Float?

    @Option(help: "Adam/AdamW first-moment decay, in [0, 1).")
    var beta1: Float = 0.9

    @Option(help: "Adam/AdamW second-moment decay, in [0, 1).")
    var beta2: Float = 0.999

    @Option(help: "Adam/AdamW epsilon, > 0.")
    var epsilon: Float = 1e-8

    @Option(
        help:
            "The learning-rate schedule after warm-up: constant, step (x --lr-gamma every --lr-step-every epochs) or cosine (down to --lr-floor at the last step)."
    )
    var lrSchedule = "constant"

    @Option(help: ArgumentHelp("Linear warm-up over this many epochs (may be fractional).", valueName: "E"))
    var warmupEpochs: Double?

    @Option(help: ArgumentHelp("Linear warm-up over this many optimizer steps.", valueName: "N"))
    var warmupSteps: Int?

    @Option(help: ArgumentHelp("Step schedule: epochs between decays.", valueName: "E"))
    var lrStepEvery = 10

    @Option(help: "Step schedule: the factor per decay, in (0, 1].")
    var lrGamma: Float = 0.1

    @Option(help: "Cosine schedule: the final learning rate, in [0, --lr].")
    var lrFloor: Float = 0

    @Flag(help: "Linear scaling rule: multiply --lr by (global batch x --accumulate) / --lr-reference-batch.")
    var scaleLr = false

    @Option(help: "The global batch --lr is meant for, with --scale-lr.")
    var lrReferenceBatch = 256

    static let optimizers = ["sgd", "adam", "adamw"]
    static let schedules = ["constant", "step", "cosine"]

    func validate() throws {
        guard OptimizerOptions.optimizers.contains(optimizer) else {
            throw LaunchError("--optimizer \(optimizer) is not available; hint: use one of \(OptimizerOptions.optimizers.joined(separator: ", "))")
        }
        if let lr = learningRate, !(lr.isFinite && lr > 0) { throw LaunchError("--lr must be a positive number, got \(lr)") }
        if let m = momentum {
            guard optimizer == "sgd" else { throw LaunchError("--momentum \(m) applies to --optimizer sgd only; hint: adam and adamw use --beta1") }
            guard m >= 0, m < 1 else { throw LaunchError("--momentum must be in [0, 1), got \(m)") }
        }
        if nesterov {
            guard optimizer == "sgd" else { throw LaunchError("--nesterov applies to --optimizer sgd only") }
            guard (momentum ?? 0.9) > 0 else { throw LaunchError("--nesterov needs a --momentum greater than 0, got \(momentum!)") }
        }
        if let wd = weightDecay, !(wd.isFinite && wd >= 0) { throw LaunchError("--weight-decay must be a number >= 0, got \(wd)") }
        guard beta1 >= 0, beta1 < 1 else { throw LaunchError("--beta1 must be in [0, 1), got \(beta1)") }
        guard beta2 >= 0, beta2 < 1 else { throw LaunchError("--beta2 must be in [0, 1), got \(beta2)") }
        guard epsilon.isFinite, epsilon > 0 else { throw LaunchError("--epsilon must be a positive number, got \(epsilon)") }
        guard OptimizerOptions.schedules.contains(lrSchedule) else {
            throw LaunchError("--lr-schedule \(lrSchedule) is not available; hint: use one of \(OptimizerOptions.schedules.joined(separator: ", "))")
        }
        if warmupEpochs != nil && warmupSteps != nil { throw LaunchError("--warmup-epochs and --warmup-steps exclude each other; hint: pass one of them") }
        if let w = warmupEpochs, !(w.isFinite && w >= 0) { throw LaunchError("--warmup-epochs must be a number >= 0, got \(w)") }
        if let w = warmupSteps, w < 0 { throw LaunchError("--warmup-steps must be 0 or more, got \(w)") }
        guard lrStepEvery >= 1 else { throw LaunchError("--lr-step-every must be at least 1 epoch, got \(lrStepEvery)") }
        guard lrGamma > 0, lrGamma <= 1 else { throw LaunchError("--lr-gamma must be in (0, 1], got \(lrGamma)") }
        guard lrFloor.isFinite, lrFloor >= 0 else { throw LaunchError("--lr-floor must be a number >= 0, got \(lrFloor)") }
        guard lrReferenceBatch > 0 else { throw LaunchError("--lr-reference-batch must be positive, got \(lrReferenceBatch)") }
    }

    /// The base learning rate after the linear scaling rule.
    ///
    /// - Parameter stepBatch: samples per optimizer step (global batch x accumulate).
    func baseLearningRate(stepBatch: Int) -> Float {
        let lr = learningRate ?? (optimizer == "sgd" ? 0.05 : 0.001)
        return scaleLr ? lr * Float(stepBatch) / Float(lrReferenceBatch) : lr
    }

    /// The optimizer at the base rate.
    func makeOptimizer(learningRate lr: Float) throws -> Optimizer {
        switch optimizer {
        case "sgd":
            return try SGD(learningRate: lr, momentum: momentum ?? 0.9, nesterov: nesterov, weightDecay: weightDecay ?? 0)
        case "adamw":
            return try AdamW(learningRate: lr, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay ?? 0.01)
        default:
            return try Adam(learningRate: lr, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay ?? 0)
        }
    }

    /// The schedule over a run of `epochs` epochs of `stepsPerEpoch` optimizer steps.
    ///
    /// - Throws: `LaunchError` naming the option when the schedule does not fit the run.
    func schedule(base: Float, stepsPerEpoch: Int, epochs: Int) throws -> LearningRateSchedule {
        let warmup = warmupSteps ?? Int(((warmupEpochs ?? 0) * Double(stepsPerEpoch)).rounded())
        let total = stepsPerEpoch * epochs
        let decay: LearningRateSchedule.Decay
        switch lrSchedule {
        case "step": decay = .step(every: lrStepEvery * stepsPerEpoch, gamma: lrGamma)
        case "cosine":
            guard total > warmup else {
                throw LaunchError(
                    "--lr-schedule cosine: the \(warmup) warm-up steps leave none of the run's \(total) steps to decay over; hint: shorten the warm-up")
            }
            guard lrFloor <= base else { throw LaunchError("--lr-floor \(lrFloor) is above the learning rate \(base)") }
            decay = .cosine(totalSteps: total, floor: lrFloor)
        default: decay = .constant
        }
        do {
            return try LearningRateSchedule(base: base, decay: decay, warmupSteps: warmup)
        } catch {
            throw LaunchError("--lr-schedule \(lrSchedule): \(error)")
        }
    }
}
