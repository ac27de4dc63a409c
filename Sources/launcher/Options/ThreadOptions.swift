import ArgumentParser
import Dist

/// How many threads one rank computes with (`TrainingConfiguration.threads`).
struct ThreadOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Threads each rank computes its slice with (models without batch norm), so one rank per node can use the node's cores. Fast reduction: the slice is cut into T sub-batches run in parallel and their gradients added in order. Deterministic reduction: each thread computes a run of the rank's chunks (the same bits as one thread). With --np, mpirun binds each rank to T cores where they exist.",
            valueName: "T"))
    var threads = 1

    func apply(to config: inout TrainingConfiguration) {
        config.threads = threads
    }
}
