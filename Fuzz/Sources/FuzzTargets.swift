import Foundation

@testable import Dist
@testable import NN

/// The fuzz targets: each hands libFuzzer's bytes to one reader of outside bytes, as the program
/// would, and goes on with what the reader accepted as far as the program would go (a model file
/// is built, a checkpoint's tensors are loaded into its model). Typed errors are expected and
/// ignored; a trap, a sanitizer report, a leak or a huge allocation is a finding.
enum FuzzTargets {
    /// Every target by its name in `scripts/fuzz.sh`.
    static let all: [String: ([UInt8]) -> Void] = [
        "safetensors": safetensors,
        "checkpoint": checkpoint,
        "idx": idx,
        "cifar": cifar,
        "png": image,
        "pnm": image,
        "model-yaml": { modelFile($0, format: .yaml) },
        "model-json": { modelFile($0, format: .json) },
        "normalize": normalize,
        "options": options
    ]

    /// Models larger than this are measured but not built, so one input cannot take seconds.
    static let buildLimit = 1 << 20

    /// The safetensors header and tensors (`Checkpoint.read` after the file is read).
    static func safetensors(_ bytes: [UInt8]) {
        guard let checkpoint = try? Checkpoint.decode(bytes, path: "fuzz.safetensors") else { return }
        for name in checkpoint.names { _ = checkpoint.tensors[name]?.count }
    }

    /// The `tiny` model for 1x8x8 samples and 3 classes, whose checkpoints the seeds are.
    static let tinyModel: Sequential = try! ModelSpec.builtin("tiny", inputShape: [1, 8, 8], classes: 3).build()

    /// What `ddp predict`/`eval` and `--resume` do with a checkpoint: rebuild the recorded model
    /// spec and load the tensors into it; load into the `tiny` model; read the recorded options.
    static func checkpoint(_ bytes: [UInt8]) {
        guard let checkpoint = try? Checkpoint.decode(bytes, path: "fuzz.safetensors") else { return }
        _ = try? Checkpoint.load(checkpoint, into: tinyModel.arena)
        if let text = checkpoint.metadata["model_spec"], let spec = try? ModelSpec.parse(text, format: .json),
            let count = try? spec.parameterCount(), count <= buildLimit, let model = try? spec.build()
        {
            _ = try? Checkpoint.load(checkpoint, into: model.arena)
        }
        if let text = checkpoint.metadata["options"] { options(Array(text.utf8)) }
    }

    /// IDX images and labels, raw or gzip'd (`FileBytes.read` then `IDXReader`).
    static func idx(_ bytes: [UInt8]) {
        var data = bytes
        if bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B {
            guard let inflated = try? FileBytes.gunzip(bytes, path: "fuzz.gz") else { return }
            data = inflated
        }
        if let (dims, pixels) = try? IDXReader.parse(data, path: "fuzz", dimensions: 3, what: "images") {
            let labels = [Int32](repeating: 0, count: dims[0])
            _ = InMemoryDataset(pixels: pixels, labels: labels, sampleShape: [1, dims[1], dims[2]], classNames: ["a"])
        }
        _ = try? IDXReader.parse(data, path: "fuzz", dimensions: 1, what: "labels")
    }

    /// A CIFAR-10 binary batch.
    static func cifar(_ bytes: [UInt8]) {
        _ = try? CIFAR10Reader.parseBatch(bytes, path: "fuzz.bin")
    }

    /// A PNG or PGM/PPM image, kept as it is and converted to 1 and 3 channels.
    static func image(_ bytes: [UInt8]) {
        guard let image = try? ImageDecoder.decode(bytes, path: "fuzz.img", channels: nil) else { return }
        _ = ImageDecoder.convert(image, to: image.channels == 1 ? 3 : 1)
    }

    /// A model file: parsed, checked, measured, and built when it is small.
    static func modelFile(_ bytes: [UInt8], format: ModelFileFormat) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let spec = try? ModelSpec.parse(text, format: format, inputShape: [1, 8, 8], classes: 3),
            let count = try? spec.parameterCount(), count <= buildLimit
        else { return }
        _ = try? spec.build()
    }

    /// A `--normalize` value (or the one a checkpoint records), turned into an augmentation.
    static func normalize(_ bytes: [UInt8]) {
        guard case let .success((mean, std)) = NormalizationText.parse(String(decoding: bytes, as: UTF8.self)) else { return }
        _ = try? Augmentation(mean: mean, std: std)
    }

    /// A checkpoint's `options` text: the training record `--resume` decodes and checks, and the
    /// lookups `eval`/`predict` make in it (class names, normalization).
    static func options(_ bytes: [UInt8]) {
        let data = Data(bytes)
        if let record = try? JSONDecoder().decode(CheckpointRecord.self, from: data) { _ = record.problem }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return }
        let nested = object["options"] as? [String: Any]
        if let names = (object["class_names"] ?? nested?["class_names"]) as? String {
            _ = (try? JSONSerialization.jsonObject(with: Data(names.utf8))) as? [String]
        }
        if let text = (object["normalize"] ?? nested?["normalize"]) as? String { normalize(Array(text.utf8)) }
    }
}
