/// Errors of exporting a model or writing training logs in other programs' formats.
public enum ExportError: Error, Equatable, CustomStringConvertible {
    /// A file or folder could not be written.
    case cannotWrite(path: String, reason: String)
    /// The model holds something the format cannot express.
    case unsupported(what: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotWrite(path, reason):
            return "cannot write \(path): \(reason); hint: check that the folder exists and is writable"
        case let .unsupported(what, reason):
            return "cannot export \(what): \(reason)"
        }
    }
}
