/// Errors in writing or reading checkpoints: each names the file, and the tensor when one is at fault.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// The checkpoint file does not exist.
    case missingFile(path: String)
    /// A system call failed while writing (`operation` is e.g. `open`, `write`, `fsync`, `rename`).
    case writeFailed(path: String, operation: String, reason: String)
    /// The file exists but cannot be read.
    case readFailed(path: String, reason: String)
    /// The file ends inside the 8-byte length or the JSON header.
    case truncatedHeader(path: String, expected: Int, got: Int)
    /// The file ends before a tensor's data does.
    case truncatedData(path: String, tensor: String, expected: Int, got: Int)
    /// The header is not the JSON safetensors expects.
    case badHeader(path: String, reason: String)
    /// A tensor's `data_offsets` are reversed or disagree with its shape.
    case offsetsOutOfRange(path: String, tensor: String, begin: Int, end: Int, reason: String)
    /// Two tensors' byte ranges overlap.
    case overlappingTensors(path: String, first: String, second: String)
    /// A tensor's dtype is not F32.
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// A tensor the model (or optimizer) needs is not in the file.
    case missingTensor(path: String, tensor: String)
    /// A tensor has a different shape from the model's.
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    /// A `__metadata__` entry is missing or unparsable.
    case badMetadata(path: String, key: String, reason: String)

    /// The one-line message: what failed, in which file, and a hint when the fix is known.
    public var description: String {
        switch self {
        case let .missingFile(path):
            return "checkpoint not found: \(path); hint: check the path, or start without --resume"
        case let .writeFailed(path, operation, reason):
            return "cannot write checkpoint \(path): \(operation) failed: \(reason); hint: check free space and permissions of the folder"
        case let .readFailed(path, reason):
            return "cannot read checkpoint \(path): \(reason)"
        case let .truncatedHeader(path, expected, got):
            return "truncated checkpoint \(path): the header needs \(expected) bytes, the file has \(got)"
        case let .truncatedData(path, tensor, expected, got):
            return "truncated checkpoint \(path): tensor \(tensor) needs the file to be at least \(expected) bytes, it has \(got)"
        case let .badHeader(path, reason):
            return "bad checkpoint header in \(path): \(reason); hint: is this a safetensors file?"
        case let .offsetsOutOfRange(path, tensor, begin, end, reason):
            return "bad data_offsets [\(begin), \(end)] for tensor \(tensor) in \(path): \(reason)"
        case let .overlappingTensors(path, first, second):
            return "corrupt checkpoint \(path): the data of tensors \(first) and \(second) overlap"
        case let .unsupportedDType(path, tensor, dtype):
            return "unsupported dtype \(dtype) for tensor \(tensor) in \(path): only F32 is supported"
        case let .missingTensor(path, tensor):
            return "checkpoint \(path) has no tensor \(tensor); hint: was it written for a different model?"
        case let .shapeMismatch(path, tensor, expected, found):
            return "tensor \(tensor) in \(path) has shape \(found), the model expects \(expected); hint: was it written for a different model?"
        case let .badMetadata(path, key, reason):
            return "bad checkpoint metadata \(key) in \(path): \(reason)"
        }
    }
}
