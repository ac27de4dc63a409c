import Foundation

/// The JSON header of a safetensors file: encoding with stable key order, decoding with validation.
struct SafetensorsHeader {
    /// One tensor's entry; `begin`/`end` are byte offsets from the start of the data.
    struct TensorInfo {
        var name: String
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// Tensors sorted by `begin`.
    var tensors: [TensorInfo]
    var metadata: [String: String]
    /// The byte where the data starts: 8 + the header length.
    var dataStart: Int

    /// The header bytes for tensors laid out back to back in the given order, `__metadata__` first
    /// (keys sorted), padded with spaces to a multiple of 8 bytes.
    static func encode(_ tensors: [(name: String, shape: [Int])], metadata: [String: String]) -> [UInt8] {
        var json = "{\"__metadata__\":{"
        json += metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",")
        json += "}"
        var offset = 0
        for (name, shape) in tensors {
            let size = shape.reduce(1, *) * MemoryLayout<Float>.size
            json += ",\(quote(name)):{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],"
            json += "\"data_offsets\":[\(offset),\(offset + size)]}"
            offset += size
        }
        json += "}"
        var bytes = Array(json.utf8)
        while bytes.count % 8 != 0 { bytes.append(UInt8(ascii: " ")) }
        return bytes
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Parses and validates the header of a whole file.
    static func decode(_ file: [UInt8], path: String) throws -> SafetensorsHeader {
        guard file.count >= 8 else { throw CheckpointError.truncatedHeader(path: path, expected: 8, got: file.count) }
        let length = file[0 ..< 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(file.count - 8) else {
            throw CheckpointError.truncatedHeader(path: path, expected: 8 &+ Int(truncatingIfNeeded: length), got: file.count)
        }
        let dataStart = 8 + Int(length)
        let dataSize = file.count - dataStart
        guard let object = try? JSONSerialization.jsonObject(with: Data(file[8 ..< dataStart])),
            let root = object as? [String: Any]
        else {
            throw CheckpointError.badHeader(path: path, reason: "the \(length)-byte header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        if let raw = root["__metadata__"] {
            guard let dictionary = raw as? [String: Any] else {
                throw CheckpointError.badHeader(path: path, reason: "__metadata__ is not an object")
            }
            for (key, value) in dictionary {
                guard let string = value as? String else {
                    throw CheckpointError.badHeader(path: path, reason: "__metadata__ value \(key) is not a string")
                }
                metadata[key] = string
            }
        }
        var tensors: [TensorInfo] = []
        for (name, value) in root where name != "__metadata__" {
            guard let entry = value as? [String: Any] else {
                throw CheckpointError.badHeader(path: path, reason: "the entry of tensor \(name) is not an object")
            }
            guard let dtype = entry["dtype"] as? String else {
                throw CheckpointError.badHeader(path: path, reason: "tensor \(name) has no dtype")
            }
            guard dtype == "F32" else { throw CheckpointError.unsupportedDType(path: path, tensor: name, dtype: dtype) }
            guard let shape = integers(entry["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
                throw CheckpointError.badHeader(path: path, reason: "tensor \(name) has no valid shape")
            }
            guard let offsets = integers(entry["data_offsets"]), offsets.count == 2 else {
                throw CheckpointError.badHeader(path: path, reason: "tensor \(name) has no valid data_offsets")
            }
            let (begin, end) = (offsets[0], offsets[1])
            var size = MemoryLayout<Float>.size, tooLarge = false
            for extent in shape {
                let (product, overflow) = size.multipliedReportingOverflow(by: extent)
                size = product
                tooLarge = tooLarge || overflow
            }
            guard !tooLarge else {
                throw CheckpointError.offsetsOutOfRange(
                    path: path, tensor: name, begin: begin, end: end,
                    reason: "shape \(shape) is too large")
            }
            guard begin >= 0, begin <= end else {
                throw CheckpointError.offsetsOutOfRange(
                    path: path, tensor: name, begin: begin, end: end,
                    reason: "the range is reversed or negative")
            }
            guard end - begin == size else {
                throw CheckpointError.offsetsOutOfRange(
                    path: path, tensor: name, begin: begin, end: end,
                    reason: "\(end - begin) bytes, but shape \(shape) of F32 needs \(size)")
            }
            guard end <= dataSize else {
                throw CheckpointError.truncatedData(path: path, tensor: name, expected: dataStart + end, got: file.count)
            }
            tensors.append(TensorInfo(name: name, shape: shape, begin: begin, end: end))
        }
        tensors.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        for (a, b) in zip(tensors, tensors.dropFirst()) where b.begin < a.end {
            throw CheckpointError.overlappingTensors(path: path, first: a.name, second: b.name)
        }
        return SafetensorsHeader(tensors: tensors, metadata: metadata, dataStart: dataStart)
    }

    /// JSON numbers as integers, or nil if any is not a non-fractional number.
    private static func integers(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var result: [Int] = []
        for element in array {
            guard let number = element as? NSNumber, let int = Int(exactly: number.doubleValue) else { return nil }
            result.append(int)
        }
        return result
    }
}
