/// A problem in a model file (JSON or YAML) or an encoded model description.
///
/// Its description is one line naming the file, the layer (0-based index into the file's
/// `layers` list, and its type) and the problem, with a `hint:` when the fix is known:
/// `model.yaml: layer 2 (maxpool2d): unknown option 'size'; hint: maxpool2d takes type, pool, stride, padding`.
public struct ModelFileError: Error, Equatable, CustomStringConvertible {
    /// What is wrong.
    public enum Problem: Equatable {
        /// The file cannot be read.
        case unreadable(reason: String)
        /// The text is not valid JSON/YAML, or not a mapping.
        case syntax(reason: String)
        /// A layer `type` that does not exist.
        case unknownLayerType(String, known: [String])
        /// An option the layer (or the model) does not take.
        case unknownOption(String, known: [String])
        /// A required option is absent.
        case missingOption(String, hint: String?)
        /// An option has a value of the wrong type.
        case wrongType(option: String, expected: String, got: String)
        /// An option's value is out of range.
        case invalidValue(option: String, reason: String)
        /// The layer cannot take the shape its predecessor produces.
        case shapeMismatch(inputShape: [Int], reason: String)
        /// The last layer's output does not fit the loss.
        case outputMismatch(outputShape: [Int], reason: String)
    }

    /// The file's path (empty when decoding data that came from no file).
    public var file: String
    /// The index of the layer in the file's `layers` list; nil for model-level problems.
    public var layer: Int?
    /// The layer's type, when known.
    public var layerType: String?
    /// The problem.
    public var problem: Problem

    /// - Parameters:
    ///   - file: the file's path.
    ///   - layer: the layer's index, nil for model-level problems.
    ///   - layerType: the layer's type, if known.
    ///   - problem: what is wrong.
    public init(file: String = "", layer: Int? = nil, layerType: String? = nil, problem: Problem) {
        self.file = file
        self.layer = layer
        self.layerType = layerType
        self.problem = problem
    }

    public var description: String {
        var place = file.isEmpty ? "model description" : file
        if let layer { place += ": layer \(layer)" + (layerType.map { " (\($0))" } ?? "") }
        let what: String
        switch problem {
        case let .unreadable(reason): what = "cannot read the model file: \(reason)"
        case let .syntax(reason): what = "not a valid model description: \(reason)"
        case let .unknownLayerType(type, known):
            what = "unknown layer type '\(type)'; hint: known layer types are \(known.joined(separator: ", "))"
        case let .unknownOption(option, known):
            let owner = layerType ?? (layer == nil ? "a model file" : "this layer")
            what = "unknown option '\(option)'; hint: \(owner) takes \(known.joined(separator: ", "))"
        case let .missingOption(option, hint):
            what = "missing required option '\(option)'" + (hint.map { "; hint: \($0)" } ?? "")
        case let .wrongType(option, expected, got):
            what = "option '\(option)' must be \(expected), got \(got)"
        case let .invalidValue(option, reason):
            what = option.isEmpty ? reason : "invalid '\(option)': \(reason)"
        case let .shapeMismatch(inputShape, reason):
            what = "cannot take input of shape \(inputShape): \(reason)"
        case let .outputMismatch(outputShape, reason):
            what = "the model's output \(outputShape) \(reason)"
        }
        return "\(place): \(what)"
    }
}
