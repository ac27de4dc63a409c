/// Problems found while evaluating or applying a trained model (`ddp eval`, `ddp predict`): each
/// names the checkpoint, data folder or image at fault and ends with a hint when the fix is known.
///
/// Reading errors of the files themselves come from NN (`CheckpointError`, `DataError`,
/// `ModelFileError`); these are the mismatches between them.
enum InferenceError: Error, Equatable, CustomStringConvertible {
    /// The checkpoint file does not exist.
    case missingCheckpoint(path: String)
    /// The checkpoint holds no model description to rebuild the model from.
    case noModelSpec(checkpoint: String, hint: String)
    /// The checkpoint's model description cannot be built.
    case badModel(checkpoint: String, reason: String)
    /// The model's per-sample input shape differs from the data's.
    case shapeMismatch(checkpoint: String, modelShape: [Int], data: String, dataShape: [Int])
    /// The model's number of classes differs from the data's.
    case classMismatch(checkpoint: String, modelClasses: Int, data: String, dataClasses: Int)
    /// The data folder has no such split.
    case missingSplit(directory: String, split: String, hint: String)
    /// The model takes a channel count images cannot be converted to.
    case unsupportedChannels(checkpoint: String, channels: Int)
    /// A normalization (option or recorded in the checkpoint) that cannot be used.
    case badNormalization(source: String, value: String, reason: String)
    /// An image file does not exist.
    case missingImage(path: String)
    /// An image has another size than the model takes.
    case imageSize(path: String, found: String, expected: String)

    var description: String {
        switch self {
        case let .missingCheckpoint(path):
            return "checkpoint not found: \(path); hint: check the path (ddp train writes checkpoints as .safetensors files)"
        case let .noModelSpec(checkpoint, hint):
            return "checkpoint \(checkpoint) has no model_spec metadata, so the model cannot be rebuilt; hint: \(hint)"
        case let .badModel(checkpoint, reason):
            return "checkpoint \(checkpoint): its model cannot be built: \(reason)"
        case let .shapeMismatch(checkpoint, modelShape, data, dataShape):
            return
                "shape mismatch: the model in \(checkpoint) takes samples of shape \(modelShape) (C, H, W), but \(data) has samples of shape \(dataShape); hint: evaluate on data like the model was trained on"
        case let .classMismatch(checkpoint, modelClasses, data, dataClasses):
            return
                "class mismatch: the model in \(checkpoint) predicts \(modelClasses) classes, but \(data) has \(dataClasses); hint: evaluate on data like the model was trained on"
        case let .missingSplit(directory, split, hint):
            return "\(directory) has no \(split) split; hint: \(hint)"
        case let .unsupportedChannels(checkpoint, channels):
            return "the model in \(checkpoint) takes \(channels)-channel samples, but images are read as 1 (gray) or 3 (RGB) channels"
        case let .badNormalization(source, value, reason):
            return "invalid normalization \(value) from \(source): \(reason)"
        case let .missingImage(path):
            return "image not found: \(path); hint: check the path"
        case let .imageSize(path, found, expected):
            return "image \(path) is \(found) (width x height) but the model takes \(expected); hint: pass --resize bilinear (or nearest) to scale it"
        }
    }
}
