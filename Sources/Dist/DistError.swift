/// Errors of the data-parallel layer: MPI failures, ranks that disagree, bad configuration.
public enum DistError: Error, Equatable, CustomStringConvertible {
    /// An MPI call returned an error code.
    case mpi(function: String, code: Int32, message: String)
    /// The ranks did not build the same model or options; the message names the first difference.
    case replicaMismatch(String)
    /// A training or gradient-check option is out of range.
    case invalidConfiguration(option: String, reason: String)
    /// The data could not be loaded on a rank.
    case data(rank: Int, reason: String)
    /// An in-process rank waited too long for the others (a test rank failed).
    case timeout(operation: String, seconds: Double)
    /// The gradient check found errors above its tolerance.
    case gradientCheckFailed(worst: String)
    /// A self-test of the communicator found wrong results.
    case selftestFailed(String)
    /// The global training loss became NaN or infinite (raised on every rank at the same step).
    case nonFiniteLoss(epoch: Int, step: Int, value: Double)
    /// A parameter became NaN or infinite (found on every rank before a checkpoint).
    case nonFiniteParameters(step: Int, parameter: String)
    /// A checkpoint does not fit this run; the message names what differs.
    case checkpointMismatch(path: String, reason: String)
    /// Ranks stopped meeting in a collective for longer than the stall timeout.
    case stall(StallReport, timeout: Double)
    /// An output file of the run (the metrics log) cannot be created or opened.
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case let .mpi(function, code, message):
            return "\(function) failed with MPI error \(code): \(message)"
        case let .replicaMismatch(message):
            return "ranks built different replicas: \(message); hint: every rank must get the same options, model and data"
        case let .invalidConfiguration(option, reason):
            return "invalid \(option): \(reason)"
        case let .data(rank, reason):
            return "rank \(rank) could not load its data: \(reason)"
        case let .timeout(operation, seconds):
            return "\(operation) timed out after \(seconds) s waiting for the other ranks"
        case let .gradientCheckFailed(worst):
            return "gradient check failed: \(worst)"
        case let .selftestFailed(what):
            return "selftest failed: \(what)"
        case let .nonFiniteLoss(epoch, step, value):
            return
                "loss became \(value.isNaN ? "NaN" : "\(value)") at epoch \(epoch + 1) step \(step); no checkpoint was written from this state; hint: lower --lr (or add --lr-schedule warm-up steps, or check the data normalization)"
        case let .nonFiniteParameters(step, parameter):
            return "parameter \(parameter) became NaN or infinite by step \(step) of the run; no checkpoint was written from this state; hint: lower --lr"
        case let .checkpointMismatch(path, reason):
            return "cannot resume from \(path): \(reason)"
        case let .stall(report, timeout):
            return "\(report.description); hint: a rank is stuck or much slower than the others; if it was only slow, raise --stall-timeout (now \(timeout) s)"
        case let .cannotWrite(path, reason):
            return "\(path): \(reason)"
        }
    }
}
