import ArgumentParser

@main
struct DDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddp",
        abstract: "SwiftDDP: data-parallel training of convolutional networks over MPI.",
        subcommands: [Train.self, Eval.self, Predict.self, Gradcheck.self, Bench.self, Selftest.self]
    )
}
