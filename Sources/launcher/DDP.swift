import ArgumentParser

@main
struct DDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddp",
        abstract: "SwiftDDP: data-parallel training of convolutional networks over MPI.",
        subcommands: [Train.self, Eval.self, Predict.self, ExportCommand.self, Plot.self, Gradcheck.self, Bench.self, Selftest.self]
    )

    /// ArgumentParser's `main`, except that under a launcher of several ranks a command line that
    /// every rank rejects alike is reported once (see `RankSession.failBeforeStart`).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code != .success {
                let message = fullMessage(for: error)
                RankSession.failBeforeStart(message: message.hasPrefix("Error: ") ? message : "Error: \(message)", code: code.rawValue)
            }
            exit(withError: error)
        }
    }
}
