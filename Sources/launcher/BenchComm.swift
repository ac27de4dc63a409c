import ArgumentParser

/// `ddp bench`: the communication benchmarks (`allreduce`, `steps`).
///
/// A group of its own until it joins the `bench` group of `BenchCommand.swift`; then its
/// subcommands move there and this group goes away.
struct BenchComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: report figures (never pass or fail on a timing).",
        subcommands: [BenchAllreduce.self, BenchSteps.self])
}
