import ArgumentParser
import Dist
import Foundation
import NN

/// `ddp eval`: a checkpoint's loss and accuracy on a dataset, split across the ranks.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint on a dataset: loss, accuracy and top-5 accuracy, split across ranks.",
        discussion: """
            Rebuilds the model from the checkpoint's model_spec metadata (or --model) and loads its \
            parameters. Each rank evaluates a contiguous shard of the data, every sample exactly once, \
            and the loss sums and correct counts are added over ranks, so any number of ranks gives \
            the same counts. Rank 0 prints the result.
            """)

    @OptionGroup(title: "Launch") var launch: LaunchOptions

    @Option(help: ArgumentHelp("A checkpoint written by ddp train (safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: ArgumentHelp("A dataset folder: IDX files (MNIST, Fashion-MNIST), CIFAR-10 binary batches, or class folders.", valueName: "dir"))
    var data = IDXReader.defaultFashionMNISTDirectory

    @Option(help: "Which part of the dataset to evaluate on: test or train.")
    var split: DataSplit = .test

    @Option(help: "Samples per forward pass on each rank (memory and speed only; the results do not depend on it).")
    var batchSize = 64

    @Option(
        help: ArgumentHelp(
            "Build this model (a built-in name or a .yaml/.json model file, for the data's shape and classes) instead of the checkpoint's own; the checkpoint's tensors must fit it.",
            valueName: "name|file"))
    var model: String?

    @Option(help: InputNormalization.inferenceHelp)
    var normalize: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard !checkpoint.isEmpty else { throw ValidationError("--checkpoint must name a file") }
    }

    func run() throws {
        try launch.relaunchIfRequested()
        RankSession.run(agreeingOnSetup: true) { communicator in
            let (trained, dataset, dataDescription) = try loadModelAndData()
            var model = trained.model
            let normalization = try InputNormalization.resolve(option: normalize, checkpoint: trained)
            // Every rank must hold the same parameters and data, or the shards would not add up.
            let fingerprint = ReplicaFingerprint(
                spec: trained.spec, model: model, optimizer: nil, loss: trained.spec.makeLoss(),
                dataset: dataset,
                options: [
                    ("parameters", ParameterDigest.hex(model.arena)),
                    ("normalize", normalization?.description ?? "none")
                ])
            try RankSession.endSetup(communicator)
            try fingerprint.verify(across: communicator)
            let topK = trained.isBinary || trained.classCount <= 5 ? nil : 5
            let started = Date()
            let totals = try Evaluation.run(
                model: &model, loss: trained.spec.makeLoss(), dataset: dataset, topK: topK,
                batchSize: batchSize, communicator: communicator,
                preprocessing: try normalization?.augmentation() ?? .none)
            guard communicator.isRoot else { return }
            let seconds = Date().timeIntervalSince(started)
            if json {
                printLine(
                    EvalReport(
                        checkpoint: checkpoint, model: trained.spec.name, data: data, split: split.rawValue,
                        ranks: communicator.size, totals: totals, topK: topK, seconds: seconds
                    ).jsonLine)
            } else {
                let normalized = normalization.map { ", normalized \($0.description)" } ?? ""
                printLine(
                    "eval: checkpoint \(checkpoint) (\(trained.summary)) on \(dataDescription), \(communicator.size) rank\(communicator.size == 1 ? "" : "s")\(normalized)"
                )
                var line = String(format: "loss %.4f  accuracy %.4f", totals.meanLoss, totals.accuracy)
                if topK != nil { line += String(format: "  top-5 accuracy %.4f", totals.topKAccuracy) }
                line += "  samples \(totals.count)" + String(format: "  (%.2f s)", seconds)
                printLine(line)
            }
        }
    }

    /// Reads the checkpoint and the data, and checks that they fit each other.
    ///
    /// - Throws: the reading errors (`CheckpointError`, `DataError`, `ModelFileError`) and
    ///   `InferenceError.shapeMismatch` or `.classMismatch` naming both sides.
    func loadModelAndData() throws -> (CheckpointModel, InMemoryDataset, String) {
        if let model {
            // The model is built for the data, so the data comes first.
            let (dataset, description) = try EvaluationData.load(data, split: split, channels: nil)
            let trained = try CheckpointModel.load(checkpoint) { _ in
                try ModelSpec.resolve(model, inputShape: dataset.sampleShape, classes: dataset.classCount)
            }
            try check(trained, against: dataset, description: description)
            return (trained, dataset, description)
        }
        let trained = try CheckpointModel.load(checkpoint)
        let channels = trained.spec.inputShape.first.flatMap { [1, 3].contains($0) ? $0 : nil }
        // IDX files record no classes: the model's (names or numbers) make labels beyond them errors.
        let names =
            trained.classNames
            ?? (trained.classCount == IDXReader.fashionMNISTClassNames.count
                ? IDXReader.fashionMNISTClassNames : (0 ..< trained.classCount).map { "\($0)" })
        let (dataset, description) = try EvaluationData.load(data, split: split, channels: channels, idxClasses: names)
        try check(trained, against: dataset, description: description)
        return (trained, dataset, description)
    }

    func check(_ trained: CheckpointModel, against dataset: Dataset, description: String) throws {
        guard trained.model.inputShape == dataset.sampleShape else {
            throw InferenceError.shapeMismatch(
                checkpoint: checkpoint, modelShape: trained.model.inputShape,
                data: description, dataShape: dataset.sampleShape)
        }
        guard trained.classCount == dataset.classCount else {
            throw InferenceError.classMismatch(
                checkpoint: checkpoint, modelClasses: trained.classCount,
                data: description, dataClasses: dataset.classCount)
        }
    }
}

/// `ddp eval --json`'s output.
struct EvalReport: Encodable {
    var checkpoint: String
    var model: String
    var data: String
    var split: String
    var ranks: Int
    var samples: Int
    var loss: Double
    var accuracy: Double
    var top5Accuracy: Double?
    var seconds: Double

    init(
        checkpoint: String, model: String, data: String, split: String, ranks: Int, totals: EvaluationTotals, topK: Int?,
        seconds: Double
    ) {
        self.checkpoint = checkpoint
        self.model = model
        self.data = data
        self.split = split
        self.ranks = ranks
        samples = totals.count
        loss = totals.meanLoss
        accuracy = totals.accuracy
        top5Accuracy = topK == nil ? nil : totals.topKAccuracy
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case checkpoint, model, data, split, ranks, samples, loss, accuracy, seconds
        case top5Accuracy = "top5_accuracy"
    }

    /// One line of JSON with sorted keys.
    var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

/// A 64-bit FNV-1a hash of a model's parameter bits, to check that every rank loaded the same
/// checkpoint.
enum ParameterDigest {
    /// The hash as hexadecimal text.
    static func hex(_ arena: ParameterArena) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for i in 0 ..< arena.count {
            h = (h ^ UInt64(arena.parameters[i].bitPattern)) &* 0x0000_0100_0000_01B3
        }
        return String(h, radix: 16)
    }
}
