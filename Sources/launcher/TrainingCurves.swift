import Foundation

/// One epoch's figures as `ddp plot` draws them.
struct EpochPoint: Equatable {
    var epoch: Int
    var trainLoss: Double
    var trainAccuracy: Double
    var validationLoss: Double?
    var validationAccuracy: Double?
}

/// Reading a metrics file and writing what gnuplot draws.
enum TrainingCurves {
    /// The epochs of a metrics file, by epoch number, the latest record of each.
    ///
    /// - Throws: `LaunchError` when the file is missing, a line is not JSON, or it has no epoch lines.
    static func read(_ path: String) throws -> [EpochPoint] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LaunchError("\(path): no such file; hint: ddp train --metrics FILE writes one")
        }
        var byEpoch: [Int: EpochPoint] = [:]
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where !line.allSatisfy(\.isWhitespace) {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw LaunchError("\(path): line \(n + 1) is not a JSON object; hint: pass the file ddp train --metrics wrote")
            }
            guard object["kind"] as? String == "epoch", let epoch = object["epoch"] as? Int,
                let loss = object["trainLoss"] as? Double, let accuracy = object["trainAccuracy"] as? Double
            else { continue }
            byEpoch[epoch] = EpochPoint(
                epoch: epoch, trainLoss: loss, trainAccuracy: accuracy,
                validationLoss: object["validationLoss"] as? Double,
                validationAccuracy: object["validationAccuracy"] as? Double)
        }
        guard !byEpoch.isEmpty else { throw LaunchError("\(path): no epoch lines (\"kind\": \"epoch\"); hint: train at least one epoch with --metrics") }
        return byEpoch.keys.sorted().map { byEpoch[$0]! }
    }

    /// Whitespace-separated columns: epoch, train loss, validation loss, train accuracy, validation
    /// accuracy (`NaN` where missing, which gnuplot skips).
    static func table(_ epochs: [EpochPoint]) -> String {
        func text(_ v: Double?) -> String { v.map { "\($0)" } ?? "NaN" }
        return "# epoch train_loss val_loss train_accuracy val_accuracy\n"
            + epochs.map {
                "\($0.epoch) \($0.trainLoss) \(text($0.validationLoss)) \($0.trainAccuracy) \(text($0.validationAccuracy))"
            }.joined(separator: "\n") + "\n"
    }

    /// Two panels side by side: loss and accuracy against the epoch.
    static func gnuplotScript(data: String, output: String, title: String, validation: Bool, epochs: Int) -> String {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
        let d = quoted(data)
        func panel(_ train: Int, _ val: Int) -> String {
            "plot \(d) using 1:\(train) with linespoints pt 7 ps 0.6 lw 2 title 'train'"
                + (validation ? ", \(d) using 1:\(val) with linespoints pt 7 ps 0.6 lw 2 title 'validation'" : "")
        }
        return """
            set terminal pngcairo size 1100,450 font ',10'
            set output \(quoted(output))
            set datafile missing 'NaN'
            set multiplot layout 1,2 title \(quoted(title))
            set xlabel 'epoch'
            \(epochs <= 20 ? "set xtics 1" : "set xtics")
            set grid
            set key top right
            set title 'loss'
            \(panel(2, 3))
            set key bottom right
            set title 'accuracy'
            \(panel(4, 5))
            unset multiplot

            """
    }
}
