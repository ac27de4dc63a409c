import ArgumentParser
import Dist

/// How `ddp train` sums gradients over the ranks: fast, or deterministic in fixed chunks.
struct ReductionOptions: ParsableArguments {
    @Option(help: "Gradient summation: fast, or deterministic (fixed chunks of the global batch summed exactly: bit for bit the same on any number of ranks).")
    var reduction: ReductionMode = .fast

    @Option(
        help: ArgumentHelp(
            "Deterministic mode: samples per chunk of the global batch (results depend on it, not on the ranks; a rank takes whole chunks).", valueName: "c"))
    var chunkSize = 16

    /// Copies the reduction mode and chunk size into a training configuration.
    func apply(to config: inout TrainingConfiguration) {
        config.reduction = reduction
        config.chunkSize = chunkSize
    }
}
