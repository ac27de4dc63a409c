import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Named Float32 tensors and string metadata in the safetensors format.
///
/// Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON
/// `{"__metadata__": {string: string}, name: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, …}`
/// padded with spaces so the data starts on an 8-byte boundary, then the raw little-endian data
/// (offsets are relative to the data's start). numpy, PyTorch and the `safetensors` package read it.
/// Writes are atomic: `<path>.tmp` is written, fsynced, renamed over `path`, and the folder fsynced,
/// so an existing checkpoint survives any failure.
public struct Checkpoint {
    /// One tensor to write: its name, shape, and a closure that fills its values.
    public struct Entry {
        /// The tensor's name in the file.
        public var name: String
        /// Its shape.
        public var shape: [Int]
        /// Writes `shape.reduce(1, *)` values into the buffer; may throw to abandon the write.
        public var fill: (UnsafeMutableBufferPointer<Float>) throws -> Void

        /// An entry whose values a closure provides (e.g. straight from an arena).
        ///
        /// - Parameters:
        ///   - name: the tensor's name.
        ///   - shape: its shape.
        ///   - fill: writes the values.
        public init(name: String, shape: [Int], fill: @escaping (UnsafeMutableBufferPointer<Float>) throws -> Void) {
            self.name = name
            self.shape = shape
            self.fill = fill
        }

        /// An entry holding a tensor's values.
        ///
        /// - Parameters:
        ///   - name: the tensor's name.
        ///   - tensor: the values and shape.
        public init(name: String, tensor: Tensor) {
            self.init(name: name, shape: tensor.shape) { buffer in
                _ = buffer.update(fromContentsOf: tensor.storage)
            }
        }
    }

    /// The tensor names in file order (by data offset).
    public var names: [String]
    /// The tensors by name.
    public var tensors: [String: Tensor]
    /// The `__metadata__` entries.
    public var metadata: [String: String]
    /// The file it was read from (for error messages).
    public var path: String

    /// Writes tensors and metadata atomically.
    ///
    /// - Parameters:
    ///   - entries: the tensors, in the order their data is laid out; names must be unique and
    ///     must not be `__metadata__`.
    ///   - metadata: string pairs stored in the header.
    ///   - path: the destination; `<path>.tmp` is used on the way and removed on failure.
    /// - Throws: `CheckpointError.writeFailed` naming the failing system call, or whatever an
    ///   entry's `fill` throws. Either way an existing file at `path` is unchanged.
    public static func write(_ entries: [Entry], metadata: [String: String], to path: String) throws {
        var seen = Set<String>()
        for entry in entries {
            precondition(
                entry.name != "__metadata__" && seen.insert(entry.name).inserted,
                "Checkpoint tensor name \(entry.name) is reserved or used twice.")
            precondition(entry.shape.allSatisfy { $0 >= 0 }, "Checkpoint tensor \(entry.name) has a negative extent in \(entry.shape).")
        }
        let header = SafetensorsHeader.encode(entries.map { ($0.name, $0.shape) }, metadata: metadata)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointError.writeFailed(path: temporary, operation: "open", reason: errnoText()) }
        var closed = false
        do {
            defer { if !closed { close(fd) } }
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try writeAll(fd, $0, path: temporary) }
            try header.withUnsafeBytes { try writeAll(fd, $0, path: temporary) }
            var buffer: [Float] = []
            for entry in entries {
                let count = entry.shape.reduce(1, *)
                if buffer.count < count { buffer = [Float](repeating: 0, count: count) }
                try buffer.withUnsafeMutableBufferPointer { values in
                    let slice = UnsafeMutableBufferPointer(rebasing: values[0 ..< count])
                    try entry.fill(slice)
                    #if _endian(big)
                        for i in 0 ..< count { slice[i] = Float(bitPattern: slice[i].bitPattern.littleEndian) }
                    #endif
                    try writeAll(fd, UnsafeRawBufferPointer(slice), path: temporary)
                }
            }
            guard fsync(fd) == 0 else { throw CheckpointError.writeFailed(path: temporary, operation: "fsync", reason: errnoText()) }
            closed = true
            guard close(fd) == 0 else { throw CheckpointError.writeFailed(path: temporary, operation: "close", reason: errnoText()) }
            guard rename(temporary, path) == 0 else {
                throw CheckpointError.writeFailed(path: path, operation: "rename", reason: errnoText())
            }
        } catch {
            unlink(temporary)
            throw error
        }
        // Make the rename itself durable.
        let folder = (path as NSString).deletingLastPathComponent
        let dirfd = open(folder.isEmpty ? "." : folder, O_RDONLY)
        if dirfd >= 0 {
            defer { close(dirfd) }
            guard fsync(dirfd) == 0 else { throw CheckpointError.writeFailed(path: folder, operation: "fsync", reason: errnoText()) }
        }
    }

    /// Reads and validates a checkpoint.
    ///
    /// - Parameter path: the file.
    /// - Returns: every tensor and the metadata.
    /// - Throws: `CheckpointError` for a missing or unreadable file, a truncated header or data,
    ///   bad JSON, reversed or shape-inconsistent offsets, overlapping tensors or a dtype other
    ///   than F32.
    public static func read(from path: String) throws -> Checkpoint {
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missingFile(path: path) }
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CheckpointError.readFailed(path: path, reason: error.localizedDescription)
        }
        return try decode(bytes, path: path)
    }

    /// Validates and decodes the bytes of a safetensors file (what `read(from:)` does once the
    /// file is read).
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - path: where the bytes came from, for messages.
    /// - Returns: every tensor and the metadata.
    /// - Throws: `CheckpointError`, as `read(from:)`.
    public static func decode(_ bytes: [UInt8], path: String) throws -> Checkpoint {
        let header = try SafetensorsHeader.decode(bytes, path: path)
        var tensors: [String: Tensor] = [:]
        for info in header.tensors {
            let count = info.shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { raw in
                bytes.withUnsafeBytes { file in
                    raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: file[header.dataStart + info.begin ..< header.dataStart + info.end]))
                }
            }
            #if _endian(big)
                for i in 0 ..< count { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
            #endif
            tensors[info.name] = Tensor(shape: info.shape, values: values)
        }
        return Checkpoint(names: header.tensors.map(\.name), tensors: tensors, metadata: header.metadata, path: path)
    }

    /// The tensor with this name, checked against the shape the caller expects.
    ///
    /// - Parameters:
    ///   - name: the tensor's name.
    ///   - shape: the expected shape.
    /// - Returns: the tensor.
    /// - Throws: `CheckpointError.missingTensor` or `.shapeMismatch` naming the tensor and both shapes.
    public func tensor(named name: String, shape: [Int]) throws -> Tensor {
        guard let tensor = tensors[name] else { throw CheckpointError.missingTensor(path: path, tensor: name) }
        guard tensor.shape == shape else {
            throw CheckpointError.shapeMismatch(path: path, tensor: name, expected: shape, found: tensor.shape)
        }
        return tensor
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CheckpointError.writeFailed(path: path, operation: "write", reason: errnoText()) }
            done += n
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

// `write` inside `Checkpoint` names the static method; this reaches the system call.
#if canImport(Glibc)
    private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { Glibc.write(fd, buffer, count) }
#elseif canImport(Darwin)
    private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { Darwin.write(fd, buffer, count) }
#endif
