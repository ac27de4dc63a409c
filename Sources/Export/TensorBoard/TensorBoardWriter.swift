import Foundation

/// Writes TensorBoard scalar event files: one folder per run (`train/`, `validation/`, as Keras's
/// TensorBoard callback lays them out, so TensorBoard draws both on one chart per tag), each
/// holding one `events.out.tfevents.*` file of `tensorflow.Event` records in TFRecord framing.
///
/// The first record of each file is the version event (`brain.Event:2`); every `scalar` call
/// appends one event with one `simple_value`. Open the folder with `tensorboard --logdir DIR`.
public final class TensorBoardWriter {
    /// A run: a sub-folder whose curves TensorBoard overlays with the other runs' of the same tag.
    public enum Run: String, CaseIterable {
        /// Training figures.
        case train
        /// Validation figures (the same tags as training, so TensorBoard overlays them).
        case validation
        /// The test set, evaluated once at the end.
        case test
    }

    /// The log folder.
    public let directory: String
    private var files: [Run: TFRecordWriter] = [:]
    private let fileSuffix: String
    private let now: () -> Double

    /// Prepares the folder; the run folders and files are created on first use.
    ///
    /// - Parameters:
    ///   - directory: the log folder (created when missing).
    ///   - clock: seconds since 1970 for each event's wall time.
    /// - Throws: `ExportError.cannotWrite` when the folder cannot be created.
    public init(directory: String, clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ExportError.cannotWrite(path: directory, reason: "\(error)")
        }
        self.directory = directory
        now = clock
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        fileSuffix = "\(Int(clock())).\(host.isEmpty ? "host" : host).\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// The event file of `run`, created with its version event on first use.
    func file(for run: Run) throws -> TFRecordWriter {
        if let file = files[run] { return file }
        let folder = (directory as NSString).appendingPathComponent(run.rawValue)
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ExportError.cannotWrite(path: folder, reason: "\(error)")
        }
        let file = try TFRecordWriter(path: (folder as NSString).appendingPathComponent("events.out.tfevents.\(fileSuffix)"))
        var version = Tensorflow_Event()
        version.wallTime = now()
        version.fileVersion = "brain.Event:2"
        try file.append(try version.serializedBytes())
        files[run] = file
        return file
    }

    /// Appends one scalar.
    ///
    /// - Parameters:
    ///   - tag: the chart's name, e.g. `epoch_loss`.
    ///   - value: the value (stored as float32, as TensorBoard's `simple_value`).
    ///   - step: the x coordinate (an epoch or an optimizer step).
    ///   - run: the run folder.
    /// - Throws: `ExportError.cannotWrite`.
    public func scalar(_ tag: String, _ value: Double, step: Int, run: Run = .train) throws {
        try append(TensorBoardWriter.event(tag: tag, value: value, step: step, wallTime: now()), run: run)
    }

    /// The serialized event of one scalar.
    static func event(tag: String, value: Double, step: Int, wallTime: Double) throws -> [UInt8] {
        var entry = Tensorflow_Summary.Value()
        entry.tag = tag
        entry.simpleValue = Float(value)
        var event = Tensorflow_Event()
        event.wallTime = wallTime
        event.step = Int64(step)
        event.summary = Tensorflow_Summary.with { $0.value = [entry] }
        return try event.serializedBytes()
    }

    private func append(_ bytes: [UInt8], run: Run) throws {
        try file(for: run).append(bytes)
    }
}
