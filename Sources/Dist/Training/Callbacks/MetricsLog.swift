import Foundation
import NN

/// Rank 0's JSON-lines metrics file: one object per line, keys sorted, `"kind"` = `epoch` after
/// each epoch's `.epoch` event, `final` after the run's `.finished` event, and `"epoch"` counted
/// from 1. The file is opened (created, with its folder, when missing) when the log is made, so
/// a path that cannot be written fails before step 1; lines are appended to what it holds.
public final class MetricsLog: TrainingCallback {
    /// The open file on rank 0 (nil on the other ranks, which write nothing).
    private let handle: FileHandle?

    /// Opens `path` for appending on rank 0; does nothing on the other ranks.
    ///
    /// - Parameters:
    ///   - path: the JSON-lines file.
    ///   - isRoot: whether this rank writes (rank 0).
    /// - Throws: `DistError.cannotWrite` on rank 0 when the file cannot be created or opened.
    public init(path: String, isRoot: Bool) throws {
        guard isRoot else {
            handle = nil
            return
        }
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw DistError.cannotWrite(path: path, reason: "cannot create the file")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw DistError.cannotWrite(path: path, reason: "cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    public func eventReported(_ loop: TrainingLoop, event: TrainingEvent) {
        switch event {
        case let .epoch(metrics): append(metrics, kind: "epoch")
        case let .finished(metrics): append(metrics, kind: "final")
        default: break
        }
    }

    /// One line: `metrics`' fields, `kind`, and the epoch counted from 1.
    private func append(_ metrics: EpochMetrics, kind: String) {
        guard let handle, let data = try? JSONEncoder().encode(metrics),
            var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return }
        object["kind"] = kind
        object["epoch"] = metrics.epoch + 1
        if let line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            handle.write(line + Data("\n".utf8))
        }
    }
}
