import ArgumentParser
import Foundation

/// Column padding and time formatting for the tables the `ddp bench` commands print.
protocol BenchTable {}

extension BenchTable {
    /// `s` padded with spaces to `width` characters, on the right (left-aligned) or, with
    /// `right`, on the left (right-aligned, for numbers).
    func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return right ? fill + s : s + fill
    }

    /// A duration as `12.34 ms`, or `56.7 us` below a millisecond.
    func formatTime(_ seconds: Double) -> String {
        seconds >= 1e-3 ? String(format: "%.2f ms", seconds * 1e3) : String(format: "%.1f us", seconds * 1e6)
    }
}

/// The CSV files of the `ddp bench` commands.
enum BenchOutput {
    /// Writes `lines` (a header and rows) to the CSV file `path`, one per line.
    ///
    /// - Throws: a `ValidationError` naming the file when it cannot be written.
    static func writeCSV(_ lines: [String], to path: String) throws {
        do {
            try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw ValidationError("cannot write CSV file \(path): \(error.localizedDescription)")
        }
    }
}
