import ArgumentParser
import Foundation

/// `ddp plot`: training curves from a metrics file, drawn by gnuplot.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw loss and accuracy per epoch (train and validation) from a --metrics file as a PNG (gnuplot).",
        discussion: """
            Reads the "kind": "epoch" lines of a file written by ddp train --metrics (a resumed run's \
            repeated epochs count once, the latest), and draws two panels: loss and accuracy against \
            the epoch, training and validation. Needs gnuplot (apt-get install gnuplot-nox).
            """)

    @Argument(help: ArgumentHelp("A metrics file written by ddp train --metrics (JSON lines).", valueName: "metrics.jsonl"))
    var metrics: String

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The PNG to write.", valueName: "file"))
    var output = "curves.png"

    @Option(help: "The title above the panels (default: the metrics file's name).")
    var title: String?

    func run() throws {
        let epochs = try TrainingCurves.read(metrics)
        guard let gnuplot = MPIRelaunch.which("gnuplot") else {
            throw LaunchError("ddp plot needs gnuplot, which is not on PATH; hint: apt-get install gnuplot-nox (scripts/setup.sh installs it)")
        }
        let table = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-plot-\(ProcessInfo.processInfo.processIdentifier).dat")
        try TrainingCurves.table(epochs).write(to: table, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: table) }
        let script = TrainingCurves.gnuplotScript(
            data: table.path, output: output, title: title ?? (metrics as NSString).lastPathComponent,
            validation: epochs.contains { $0.validationLoss != nil }, epochs: epochs.count)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gnuplot)
        let input = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(script.utf8))
        try input.fileHandleForWriting.close()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: output) else {
            throw LaunchError(
                "gnuplot could not draw \(output): \(message.split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)")")
        }
        print("plot: \(epochs.count) epochs from \(metrics) -> \(output)")
    }
}
