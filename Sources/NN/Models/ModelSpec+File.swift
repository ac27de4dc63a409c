import Foundation
import Yams

/// The text formats of model files.
public enum ModelFileFormat: Equatable {
    /// JSON (`.json` files).
    case json
    /// YAML (`.yaml`, `.yml` and any other extension).
    case yaml

    /// The format for a path: `.json` is JSON, anything else YAML (a superset of JSON).
    public init(path: String) {
        self = path.lowercased().hasSuffix(".json") ? .json : .yaml
    }
}

extension ModelSpec {
    /// Reads a model file (JSON or YAML, by extension) and checks that every layer fits.
    ///
    /// The file's own `input` and `classes` win; the arguments fill in what it omits (the launcher
    /// passes the dataset's sample shape and class count). The caller should still compare the
    /// result's `inputShape` with its data. The file's base name is the model's name unless the
    /// file sets `name`.
    ///
    /// - Parameters:
    ///   - path: the file.
    ///   - inputShape: the per-sample input shape to use when the file has no `input`.
    ///   - classes: the class count to use when the file has no `classes` (for `units: classes`
    ///     and for checking the output against the loss).
    /// - Returns: the model description.
    /// - Throws: `ModelFileError`, one line naming the file, the layer index and the problem.
    public static func load(file path: String, inputShape: [Int]? = nil, classes: Int? = nil) throws -> ModelSpec {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "not readable UTF-8 text" : "no such file"
            throw ModelFileError(file: path, problem: .unreadable(reason: reason))
        }
        let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        do {
            return try parse(text, format: ModelFileFormat(path: path), name: base, inputShape: inputShape, classes: classes)
        } catch var error as ModelFileError {
            error.file = path
            throw error
        }
    }

    /// Parses a model description from text and checks that every layer fits; see `load(file:inputShape:classes:)`.
    ///
    /// - Parameters:
    ///   - text: the JSON or YAML text.
    ///   - format: which syntax `text` is in.
    ///   - name: the name to use when the text has no `name`.
    ///   - inputShape: the input shape to use when the text has no `input`.
    ///   - classes: the class count to use when the text has no `classes`.
    /// - Throws: `ModelFileError` (with an empty `file`).
    public static func parse(
        _ text: String, format: ModelFileFormat, name: String = "model",
        inputShape: [Int]? = nil, classes: Int? = nil
    ) throws -> ModelSpec {
        let resolvedClasses = ResolvedClasses()
        var userInfo: [CodingUserInfoKey: Any] = [defaultNameKey: name, resolvedClassesKey: resolvedClasses]
        if let inputShape { userInfo[defaultInputShapeKey] = inputShape }
        if let classes { userInfo[defaultClassesKey] = classes }
        let spec: ModelSpec
        do {
            switch format {
            case .json:
                let decoder = JSONDecoder()
                decoder.userInfo = userInfo
                spec = try decoder.decode(ModelSpec.self, from: Data(text.utf8))
            case .yaml:
                if let node = try Yams.compose(yaml: text), let bad = overflowingSexagesimal(in: node) {
                    throw ModelFileError(
                        problem: .syntax(reason: "'\(bad)' reads as a base-60 (sexagesimal) integer too large for 64 bits; hint: write sizes as plain integers")
                    )
                }
                spec = try YAMLDecoder().decode(ModelSpec.self, from: text, userInfo: userInfo)
            }
        } catch let error as ModelFileError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            // Decoders wrap what the description's own decoding threw; unwrap it.
            if let inner = context.underlyingError as? ModelFileError { throw inner }
            if let yaml = context.underlyingError as? YamlError { throw ModelFileError(problem: .syntax(reason: describe(yaml))) }
            let reason = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            throw ModelFileError(problem: .syntax(reason: oneLine(reason)))
        } catch let error as YamlError {
            throw ModelFileError(problem: .syntax(reason: describe(error)))
        } catch {
            throw ModelFileError(problem: .syntax(reason: oneLine("\(error)")))
        }
        try spec.checkShapes(classes: resolvedClasses.value)
        return spec
    }

    /// Resolves a `--model` argument: a built-in name, or else a model file.
    ///
    /// - Parameters:
    ///   - nameOrPath: a name from `builtinNames` or a path to a JSON/YAML file.
    ///   - inputShape: the data's per-sample shape.
    ///   - classes: the data's class count.
    /// - Throws: `ModelError.unknown` when it is neither, or the errors of `load`.
    public static func resolve(_ nameOrPath: String, inputShape: [Int], classes: Int) throws -> ModelSpec {
        if builtinNames.contains(nameOrPath) { return try builtin(nameOrPath, inputShape: inputShape, classes: classes) }
        guard FileManager.default.fileExists(atPath: nameOrPath) else {
            throw ModelError.unknown(kind: "model", name: nameOrPath, known: builtinNames + ["a path to a .yaml or .json model file"])
        }
        return try load(file: nameOrPath, inputShape: inputShape, classes: classes)
    }

    /// Runs the shape checks of `outputShapes()` and `checkOutput(classes:)`, turning their
    /// errors into `ModelFileError`s that name the layer.
    private func checkShapes(classes: Int?) throws {
        do {
            try checkOutput(classes: classes)
        } catch let ModelError.shapeMismatch(_, index, input, reason) {
            if index < 0 { throw ModelFileError(problem: .invalidValue(option: "input", reason: reason)) }
            throw ModelFileError(
                layer: index, layerType: layers[index].typeName,
                problem: .shapeMismatch(inputShape: input, reason: reason))
        } catch let ModelError.outputMismatch(output, reason) {
            throw ModelFileError(
                layer: layers.count - 1, layerType: layers.last?.typeName,
                problem: .outputMismatch(outputShape: output, reason: reason))
        } catch let ModelError.invalidHyperparameter(layer, reason) {
            throw ModelFileError(layerType: layer, problem: .invalidValue(option: "", reason: reason))
        }
    }
}

/// The first scalar (outside `name`) that Yams would decode as an integer by its YAML 1.1 base-60
/// rule (`1:30:00`) with an overflow: Yams multiplies without overflow checks and traps, even for
/// a quoted string such as `"a:b:…"` with many colons (found by fuzzing). Nil when none would.
private func overflowingSexagesimal(in node: Node) -> String? {
    switch node {
    case let .scalar(scalar):
        return sexagesimalOverflows(scalar.string) ? scalar.string : nil
    case let .mapping(mapping):
        for (key, value) in mapping where key.string != "name" {
            if let bad = overflowingSexagesimal(in: key) ?? overflowingSexagesimal(in: value) { return bad }
        }
        return nil
    case let .sequence(sequence):
        return sequence.lazy.compactMap(overflowingSexagesimal(in:)).first
    }
}

/// Whether Yams' integer reading of `text` takes the base-60 path and overflows: it does when the
/// text contains `:` and, after a sign, does not start with `0` (the radix prefixes); the numeric
/// parts, last first, are multiplied by 1, 60, 60², … and summed.
private func sexagesimalOverflows(_ text: String) -> Bool {
    guard text.contains(":") else { return false }
    let unsigned = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
    guard !unsigned.hasPrefix("0") else { return false }
    var base = 1, value = 0
    for digit in unsigned.components(separatedBy: ":").compactMap({ Int($0, radix: 10) }).reversed() {
        guard case let (term, false) = digit.multipliedReportingOverflow(by: base),
            case let (sum, false) = value.addingReportingOverflow(term),
            case let (next, false) = base.multipliedReportingOverflow(by: 60)
        else { return true }
        (value, base) = (sum, next)
    }
    return false
}

/// The first line of a (possibly multi-line) message.
private func oneLine(_ message: String) -> String {
    String(message.split(separator: "\n", omittingEmptySubsequences: true).first ?? "")
}

/// A YAML error on one line: where, what, and while doing what (Yams' own text spans lines).
private func describe(_ error: YamlError) -> String {
    switch error {
    case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
        let during = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
        return "line \(mark.line), column \(mark.column): \(problem)\(during)"
    default:
        return oneLine("\(error)")
    }
}
