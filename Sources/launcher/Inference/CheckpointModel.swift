import Foundation
import NN

/// A trained model rebuilt from a checkpoint written by `Checkpoint.save`: the description from
/// the `model_spec` metadata (or one the caller gives), the parameters from the tensors.
///
/// The file is read once; every slot of the built model must be in it with its shape (optimizer
/// tensors and unknown extras are ignored).
struct CheckpointModel {
    /// The checkpoint's path.
    let path: String
    /// The model description the model was built from.
    let spec: ModelSpec
    /// The model, its parameters loaded.
    var model: Sequential
    /// The checkpoint's `__metadata__`.
    let metadata: [String: String]

    /// Reads a checkpoint and rebuilds its model.
    ///
    /// - Parameters:
    ///   - path: the checkpoint.
    ///   - spec: the model to build instead of the one in the metadata; given a checkpoint's spec
    ///     (or nil when it has none), returns the spec to use. Nil: the checkpoint's own.
    /// - Throws: `InferenceError.missingCheckpoint`, `.noModelSpec` or `.badModel`;
    ///   `CheckpointError` for a bad file or a tensor that is missing or of another shape than the
    ///   model's; `ModelFileError` for a model description that does not parse (its `file` names
    ///   the checkpoint).
    static func load(_ path: String, spec chooseSpec: ((ModelSpec?) throws -> ModelSpec)? = nil) throws -> CheckpointModel {
        // NN's own message for a missing file suggests --resume, which eval and predict lack.
        guard FileManager.default.fileExists(atPath: path) else { throw InferenceError.missingCheckpoint(path: path) }
        let checkpoint = try Checkpoint.read(from: path)
        let stored = try storedSpec(checkpoint)
        let spec: ModelSpec
        if let chooseSpec {
            spec = try chooseSpec(stored)
        } else if let stored {
            spec = stored
        } else {
            throw InferenceError.noModelSpec(checkpoint: path, hint: "pass --model NAME|FILE to name the model it holds")
        }
        let model: Sequential
        do {
            model = try spec.build()
        } catch let error as ModelError {
            throw InferenceError.badModel(checkpoint: path, reason: "\(error)")
        }
        // Validate every tensor before touching the arena.
        let values = try model.arena.slots.map { try checkpoint.tensor(named: $0.name, shape: $0.shape).storage }
        for (slot, v) in zip(model.arena.slots, values) { model.arena.setParameter(slot, v) }
        return CheckpointModel(path: path, spec: spec, model: model, metadata: checkpoint.metadata)
    }

    /// The model description in the checkpoint's `model_spec` metadata, or nil when there is none.
    ///
    /// - Throws: `ModelFileError` (naming the checkpoint) when the description does not parse.
    static func storedSpec(_ checkpoint: Checkpoint) throws -> ModelSpec? {
        guard let text = checkpoint.metadata["model_spec"], !text.isEmpty else { return nil }
        do {
            return try ModelSpec.parse(text, format: .json)
        } catch var error as ModelFileError {
            error.file = "\(checkpoint.path) (model_spec metadata)"
            throw error
        }
    }

    /// The number of classes the model predicts: its output width, or 2 for one sigmoid output.
    var classCount: Int {
        let output = model.outputShape.reduce(1, *)
        return output == 1 ? 2 : output
    }

    /// Whether the model has one output read through a sigmoid (the probability of class 1).
    var isBinary: Bool { model.outputShape.reduce(1, *) == 1 }

    /// A short description for output: `tiny, step 1200, epoch 3`.
    var summary: String {
        var parts = [spec.name]
        if let step = metadata["step"] { parts.append("step \(step)") }
        if let epoch = metadata["epoch"] { parts.append("epoch \(epoch)") }
        return parts.joined(separator: ", ")
    }

    /// The class names, when the checkpoint records them or they can be derived; nil otherwise.
    ///
    /// Looked up in order: the metadata key `class_names` (a JSON array of strings); the key
    /// `class_names` (or `classNames`) of the `options` JSON; the options' `data` folder, whose
    /// format gives the names (IDX: Fashion-MNIST's, as the IDX reader labels it; CIFAR-10's;
    /// class folders: the sorted sub-folder names of `train/` or of the folder). A list whose
    /// length is not `classCount` is ignored.
    var classNames: [String]? {
        let count = classCount
        func valid(_ names: [String]?) -> [String]? { names.flatMap { $0.count == count ? $0 : nil } }
        if let names = valid(CheckpointModel.stringArray(metadata["class_names"])) { return names }
        for key in ["class_names", "classNames"] {
            if let names = valid(recordedValue(key) as? [String] ?? CheckpointModel.stringArray(recordedValue(key) as? String)) {
                return names
            }
        }
        guard let directory = recordedOption("data") else { return nil }
        return valid(CheckpointModel.classNames(ofDataset: directory))
    }

    /// The `options` metadata as a JSON object (empty when absent or not an object).
    var recordedOptions: [String: Any] {
        guard let text = metadata["options"], let data = text.data(using: .utf8) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// A value of the `options` JSON: at its top level, or in its `options` object (where the
    /// trainer's checkpoint record keeps the launcher's options).
    func recordedValue(_ key: String) -> Any? {
        let options = recordedOptions
        return options[key] ?? (options["options"] as? [String: Any])?[key]
    }

    /// A recorded option as text (strings as they are, numbers printed).
    func recordedOption(_ key: String) -> String? {
        switch recordedValue(key) {
        case let text as String: return text
        case let number as NSNumber: return number.stringValue
        default: return nil
        }
    }

    /// A JSON array of strings, decoded.
    static func stringArray(_ json: String?) -> [String]? {
        guard let json, let data = json.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String]
    }

    /// The class names of a dataset folder, found without reading its samples.
    static func classNames(ofDataset directory: String) -> [String]? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        switch DatasetDirectory.format(of: directory) {
        case .idx: return IDXReader.fashionMNISTClassNames
        case .cifar10: return CIFAR10Reader.classNames
        case .imageFolder:
            let train = (directory as NSString).appendingPathComponent("train")
            let root = fm.fileExists(atPath: train) ? train : directory
            let names = (try? fm.contentsOfDirectory(atPath: root))?.filter { name in
                var sub: ObjCBool = false
                return !name.hasPrefix(".") && fm.fileExists(atPath: (root as NSString).appendingPathComponent(name), isDirectory: &sub) && sub.boolValue
            }.sorted()
            return names?.isEmpty == false ? names : nil
        }
    }
}
