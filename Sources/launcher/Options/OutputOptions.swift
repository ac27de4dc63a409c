import ArgumentParser

/// What `ddp train` reports besides its checkpoints: progress lines, the metrics file and
/// TensorBoard events.
struct OutputOptions: ParsableArguments {
    @Option(
        help: "Print a progress line every this many steps when stdout is not a terminal (0: per epoch only). Under mpirun, DDP_PROGRESS=bar asks for the bar.")
    var logInterval = 50

    @Option(help: ArgumentHelp("Append one JSON object per epoch, and a final one with the test figures, to this file (rank 0).", valueName: "file"))
    var metrics: String?

    @Option(help: ArgumentHelp("Write TensorBoard scalar event files here (rank 0): DIR/train, DIR/validation (tensorboard --logdir DIR).", valueName: "dir"))
    var tensorboard: String?

    func validate() throws {
        guard logInterval >= 0 else { throw LaunchError("--log-interval must be 0 or more, got \(logInterval)") }
    }
}
