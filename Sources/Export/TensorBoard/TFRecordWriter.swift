import Foundation

/// Appends records to a file in TFRecord framing, the container of TensorBoard event files:
///
///     uint64 length (little-endian) | uint32 masked CRC-32C of the length's 8 bytes
///     data[length]                  | uint32 masked CRC-32C of the data
///
/// Each record is written and flushed to the file at once, so a reader sees whole records while
/// training runs.
public final class TFRecordWriter {
    /// The file's path.
    public let path: String
    private let handle: FileHandle

    /// Creates (or truncates) the file.
    ///
    /// - Parameter path: the file to write; its folder must exist.
    /// - Throws: `ExportError.cannotWrite` when the file cannot be created.
    public init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw ExportError.cannotWrite(path: path, reason: "cannot create the file")
        }
        self.path = path
        self.handle = handle
    }

    deinit { try? handle.close() }

    /// The framed bytes of one record.
    ///
    /// - Parameter data: the record's payload.
    /// - Returns: length, its CRC, the data and its CRC.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        out += length
        out += withUnsafeBytes(of: CRC32C.mask(CRC32C.checksum(length)).littleEndian, Array.init)
        out += data
        out += withUnsafeBytes(of: CRC32C.mask(CRC32C.checksum(data)).littleEndian, Array.init)
        return out
    }

    /// Appends one record.
    ///
    /// - Parameter data: the record's payload.
    /// - Throws: `ExportError.cannotWrite` when the write fails.
    public func append(_ data: [UInt8]) throws {
        do {
            try handle.write(contentsOf: TFRecordWriter.frame(data))
            try handle.synchronize()
        } catch {
            throw ExportError.cannotWrite(path: path, reason: "\(error)")
        }
    }
}
