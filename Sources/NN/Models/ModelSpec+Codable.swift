/// The JSON/YAML form of model descriptions, written for people:
///
/// ```yaml
/// name: small-cnn
/// input: [1, 28, 28]          # optional in files: the data's shape is used when absent
/// classes: 10                 # optional: the data's class count is used when absent
/// loss: softmax-cross-entropy # or sigmoid-binary-cross-entropy; default softmax-cross-entropy
/// layers:
///   - {type: conv2d, filters: 32, kernel: 5, stride: 1, padding: same}
///   - {type: relu}
///   - {type: maxpool2d, pool: 2}
///   - {type: flatten}
///   - {type: dense, units: classes}
/// ```
///
/// Sizes (`kernel`, `stride`, `pool`) are an integer or `[height, width]`; `padding` is `same`,
/// `valid`, an integer, `[vertical, horizontal]` or `[top, bottom, left, right]`. Layer types
/// ignore case, `_` and `-` (`MaxPool2D`, `max_pool2d`). Decoding throws `ModelFileError`
/// (without a file name; `ModelSpec.load` adds it).
extension ModelSpec: Codable {
    /// `userInfo` key of the input shape (`[Int]`) used when the description has no `input`.
    public static let defaultInputShapeKey = CodingUserInfoKey(rawValue: "SwiftDDP.ModelSpec.inputShape")!
    /// `userInfo` key of the class count (`Int`) used when the description has no `classes`.
    public static let defaultClassesKey = CodingUserInfoKey(rawValue: "SwiftDDP.ModelSpec.classes")!
    /// `userInfo` key of the name (`String`) used when the description has no `name`.
    public static let defaultNameKey = CodingUserInfoKey(rawValue: "SwiftDDP.ModelSpec.name")!

    /// `userInfo` key of a `ResolvedClasses` box that decoding fills with the class count it used.
    static let resolvedClassesKey = CodingUserInfoKey(rawValue: "SwiftDDP.ModelSpec.resolvedClasses")!

    /// The top-level keys of a model description.
    public static let fileOptions = ["name", "input", "classes", "loss", "layers"]

    public init(from decoder: Decoder) throws {
        guard let container = try? decoder.container(keyedBy: ModelCodingKey.self) else {
            throw ModelFileError(problem: .syntax(reason: "expected a mapping with the keys \(ModelSpec.fileOptions.joined(separator: ", "))"))
        }
        let top = OptionReader(container: container, layer: nil, layerType: nil)
        try top.rejectUnknown(ModelSpec.fileOptions)
        name = try top.string("name") ?? decoder.userInfo[ModelSpec.defaultNameKey] as? String ?? "model"
        guard let input = try top.intList("input") ?? decoder.userInfo[ModelSpec.defaultInputShapeKey] as? [Int] else {
            throw ModelFileError(problem: .missingOption("input", hint: "set input: [C, H, W] or train on a dataset, which supplies it"))
        }
        guard !input.isEmpty, input.allSatisfy({ $0 > 0 }) else {
            throw ModelFileError(problem: .invalidValue(option: "input", reason: "extents must be positive, got \(input)"))
        }
        inputShape = input
        let classes = try top.int("classes") ?? decoder.userInfo[ModelSpec.defaultClassesKey] as? Int
        if let classes, classes < 1 {
            throw ModelFileError(problem: .invalidValue(option: "classes", reason: "must be positive, got \(classes)"))
        }
        (decoder.userInfo[ModelSpec.resolvedClassesKey] as? ResolvedClasses)?.value = classes
        if let lossName = try top.string("loss") {
            guard let parsed = LossSpec.parse(lossName) else {
                throw ModelFileError(
                    problem: .invalidValue(
                        option: "loss",
                        reason: "unknown loss '\(lossName)'; hint: known losses are \(LossSpec.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
            loss = parsed
        } else {
            loss = .softmaxCrossEntropy
        }
        guard container.contains(ModelCodingKey("layers")) else {
            throw ModelFileError(problem: .missingOption("layers", hint: "list the layers, e.g. layers: [{type: flatten}, {type: dense, units: classes}]"))
        }
        guard var list = try? container.nestedUnkeyedContainer(forKey: ModelCodingKey("layers")) else {
            throw ModelFileError(problem: .wrongType(option: "layers", expected: "a list of layers", got: top.describe("layers")))
        }
        var layers: [LayerSpec] = []
        while !list.isAtEnd {
            let index = list.currentIndex
            guard let entry = try? list.nestedContainer(keyedBy: ModelCodingKey.self) else {
                throw ModelFileError(layer: index, problem: .syntax(reason: "each layer must be a mapping such as {type: relu}"))
            }
            layers.append(try LayerSpec.decode(entry, index: index, classes: classes))
        }
        guard !layers.isEmpty else {
            throw ModelFileError(problem: .invalidValue(option: "layers", reason: "a model needs at least one layer"))
        }
        self.layers = layers
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: ModelCodingKey.self)
        try container.encode(name, forKey: ModelCodingKey("name"))
        try container.encode(inputShape, forKey: ModelCodingKey("input"))
        try container.encode(loss.rawValue, forKey: ModelCodingKey("loss"))
        var list = container.nestedUnkeyedContainer(forKey: ModelCodingKey("layers"))
        for layer in layers {
            try layer.encode(to: list.superEncoder())
        }
    }
}

extension LossSpec {
    /// The loss named `name` (case-insensitive; `_` and `-` optional), or nil.
    public static func parse(_ name: String) -> LossSpec? {
        switch normalizedName(name) {
        case "softmaxcrossentropy", "crossentropy", "categoricalcrossentropy": return .softmaxCrossEntropy
        case "sigmoidbinarycrossentropy", "binarycrossentropy", "bce": return .sigmoidBinaryCrossEntropy
        default: return nil
        }
    }
}

/// Lowercased, without `_`, `-` and spaces: how type and loss names are compared.
func normalizedName(_ name: String) -> String {
    String(name.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " })
}

/// Where decoding reports the class count it resolved (the description's own, else the default),
/// which the output check after decoding needs.
final class ResolvedClasses {
    var value: Int?
}

/// A coding key for any string (model descriptions are read key by key to report unknown ones).
struct ModelCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}
