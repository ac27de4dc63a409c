import ArgumentParser
import Foundation
import NN

@main
struct DDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddp",
        abstract: "SwiftDDP: data-parallel training of convolutional networks over MPI.",
        subcommands: [Train.self, Eval.self, Predict.self, ExportCommand.self, Plot.self, Gradcheck.self, Bench.self, Selftest.self]
    )

    /// Chooses the kernels' instruction set before any command runs, so that a `DDP_KERNELS` the
    /// CPU cannot honour stops with a sentence (exit status 2) instead of an illegal instruction;
    /// then ArgumentParser's `main`, except that under a launcher of several ranks a command line
    /// that every rank rejects alike is reported once (see `RankSession.failBeforeStart`).
    static func main() {
        do {
            KernelPath.current = try KernelPath.select(environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
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
