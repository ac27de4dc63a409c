import ArgumentParser
import Dist

/// How many threads one rank computes with (`TrainingConfiguration.threads`).
struct ThreadOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads each rank computes its slice with (fast reduction, models without batch norm): the slice is cut into T sub-batches run in parallel and their gradients added in order, so one rank per node can use the node's cores. With --np, mpirun binds each rank to T cores where they exist.", valueName: "T"))
    var threads = 1

    func validate() throws {
        guard (1 ... 256).contains(threads) else { throw LaunchError("--threads must be 1 to 256, got \(threads)") }
    }

    func apply(to config: inout TrainingConfiguration) {
        config.threads = threads
    }
}
