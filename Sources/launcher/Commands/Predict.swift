import ArgumentParser
import Dist
import Foundation
import NN

/// `ddp predict`: a checkpoint's most likely classes for image files.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images (PNG, PGM, PPM) with a checkpoint: the top-k classes and their probabilities.",
        discussion: """
            Images are converted to the model's channels (gray <-> RGB) and must have the model's \
            width and height unless --resize scales them. Pixels become bytes / 255, then are \
            normalized as in training (--normalize, or what the checkpoint records). \
            Probabilities are the softmax of the logits; a model with one sigmoid output prints the \
            predicted class (1 where the sigmoid exceeds 0.5) and its probability. --json adds the raw logits. Class names come from the checkpoint when it records them. Runs \
            on one process (under mpirun, rank 0 does the work).
            """)

    @Option(help: ArgumentHelp("A checkpoint written by ddp train (safetensors).", valueName: "file"))
    var checkpoint: String

    @Argument(help: ArgumentHelp("Image files to classify.", valueName: "image"))
    var images: [String]

    @Option(help: "How many of the most likely classes to print per image.")
    var topK = 3

    @Option(help: "Fit other image sizes to the model's: none (require its size), nearest or bilinear.")
    var resize: ResizeMethod = .none

    @Option(help: InputNormalization.inferenceHelp)
    var normalize: String?

    @Flag(help: "Print one JSON object per image instead of text.")
    var json = false

    /// Images per forward pass.
    static let chunk = 64

    func validate() throws {
        guard topK > 0 else { throw ValidationError("--top-k must be positive, got \(topK)") }
        guard !images.isEmpty else { throw ValidationError("name at least one image file") }
    }

    func run() throws {
        RankSession.run { communicator in
            if communicator.isRoot { try predict() }
            try communicator.barrier()
        }
    }

    /// Decodes every image first (so a bad one fails before any output), then classifies them in
    /// chunks of `chunk` and prints one line (or JSON object) per image, in the order given.
    func predict() throws {
        var trained = try CheckpointModel.load(checkpoint)
        let shape = trained.model.inputShape
        guard shape.count == 3 else {
            throw InferenceError.badModel(checkpoint: checkpoint, reason: "it takes samples of shape \(shape), not images [C, H, W]")
        }
        let (C, H, W) = (shape[0], shape[1], shape[2])
        guard C == 1 || C == 3 else { throw InferenceError.unsupportedChannels(checkpoint: checkpoint, channels: C) }
        let normalization = try InputNormalization.resolve(option: normalize, checkpoint: trained)
        let sampleSize = C * H * W
        var samples = [Float](repeating: 0, count: images.count * sampleSize)
        for (n, path) in images.enumerated() {
            guard FileManager.default.fileExists(atPath: path) else { throw InferenceError.missingImage(path: path) }
            let image = try ImageDecoder.decode(path: path, channels: C)
            if resize == .none && (image.width != W || image.height != H) {
                throw InferenceError.imageSize(path: path, found: "\(image.width)x\(image.height)", expected: "\(W)x\(H)")
            }
            var planes = ImageInput.planes(image, height: H, width: W, method: resize)
            normalization?.apply(to: &planes)
            samples.replaceSubrange(n * sampleSize ..< (n + 1) * sampleSize, with: planes)
        }
        // Forward in chunks: a long list of images must not hold every activation at once.
        var logits: [Float] = []
        for start in stride(from: 0, to: images.count, by: Predict.chunk) {
            let end = min(start + Predict.chunk, images.count)
            let chunk = Tensor(shape: [end - start, C, H, W], values: Array(samples[start * sampleSize ..< end * sampleSize]))
            logits += trained.model.forward(chunk, context: ForwardContext(training: false)).storage
        }
        let names = trained.classNames
        func label(_ k: Int) -> String { names.map { "\($0[k]) (\(k))" } ?? "class \(k)" }
        let width = logits.count / images.count
        for (n, path) in images.enumerated() {
            let row = logits[n * width ..< (n + 1) * width]
            let ranked: [(index: Int, probability: Double)]
            if trained.isBinary {
                // The predicted class (1 where the logit is positive) and the probability of that class.
                let p1 = ImageInput.sigmoid(row.first!)
                ranked = [p1 > 0.5 ? (index: 1, probability: p1) : (index: 0, probability: 1 - p1)]
            } else {
                ranked = ImageInput.ranked(ImageInput.softmax(row), top: topK)
            }
            if json {
                let entries = ranked.map { PredictionEntry(class: $0.index, name: names?[$0.index], probability: $0.probability) }
                printLine(PredictionLine(file: path, predictions: entries, logits: Array(row)).jsonLine)
            } else if trained.isBinary {
                printLine("\(path): \(label(ranked[0].index)) probability \(String(format: "%.4f", ranked[0].probability))")
            } else {
                printLine("\(path): " + ranked.map { "\(label($0.index)) \(String(format: "%.4f", $0.probability))" }.joined(separator: ", "))
            }
        }
    }
}

/// One class of `ddp predict --json`'s output.
struct PredictionEntry: Encodable {
    var `class`: Int
    var name: String?
    var probability: Double
}

/// One line of `ddp predict --json`'s output.
struct PredictionLine: Encodable {
    var file: String
    var predictions: [PredictionEntry]
    /// The model's raw outputs for the image (one logit for a binary model), to compare with other runtimes.
    var logits: [Float]

    /// One line of JSON with sorted keys.
    var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
