import CCodecs
import Foundation

/// Reading whole files, transparently inflating gzip (magic bytes 1f 8b) through zlib.
enum FileBytes {
    /// The file's bytes, decompressed if it is gzip.
    ///
    /// - Parameters:
    ///   - path: the file.
    ///   - hint: what to say when the file is missing.
    /// - Throws: `DataError.missingFile`, `.unreadable` or `.corruptGzip`.
    static func read(_ path: String, missingHint: String) throws -> [UInt8] {
        let raw = try readRaw(path, missingHint: missingHint)
        if raw.count >= 2 && raw[0] == 0x1F && raw[1] == 0x8B { return try gunzip(raw, path: path) }
        return raw
    }

    /// The file's bytes as stored.
    static func readRaw(_ path: String, missingHint: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.missingFile(path: path, hint: missingHint)
        }
        if isDirectory.boolValue { throw DataError.unreadable(path: path, reason: "it is a directory, not a file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DataError.unreadable(path: path, reason: "permission denied or I/O error")
        }
        defer { try? handle.close() }
        do {
            return [UInt8](try handle.readToEnd() ?? Data())
        } catch {
            throw DataError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
    }

    /// Inflates a gzip stream (all members, as `gzip -d` does).
    static func gunzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        // The trailer's ISIZE (size mod 2^32) is a good first guess for the output size.
        var capacity = 1 << 16
        if input.count >= 18 {
            let n = input.count
            let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            // A corrupt trailer must not make us allocate gigabytes: deflate expands at most ~1032:1.
            capacity = max(capacity, min(isize + 1, input.count * 1032))
        }
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header and trailer, not a raw zlib stream.
        guard inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError.corruptGzip(path: path, reason: "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        try input.withUnsafeBufferPointer { inBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress!)
            stream.avail_in = UInt32(inBuffer.count)
            while true {
                if produced == output.count { output.append(contentsOf: [UInt8](repeating: 0, count: output.count)) }
                let status: Int32 = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress! + produced
                    let room = min(out.count - produced, Int(UInt32.max))
                    stream.avail_out = UInt32(room)
                    let result = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return result
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow (concatenated .gz files); trailing zeros end it.
                    if stream.avail_in == 0 || stream.next_in.pointee == 0 { return }
                    guard inflateReset(&stream) == Z_OK else {
                        throw DataError.corruptGzip(path: path, reason: "cannot start the next gzip member")
                    }
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw DataError.corruptGzip(path: path, reason: "the compressed stream ends early (file truncated)")
                case Z_BUF_ERROR:
                    continue
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "inflate error \(status)"
                    throw DataError.corruptGzip(path: path, reason: message)
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }
}
