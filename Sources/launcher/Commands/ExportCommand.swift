import ArgumentParser
import Export
import Foundation
import NN

/// `ddp export`: a checkpoint as a model file for other runtimes.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a checkpoint's model for inference runtimes (ONNX).",
        discussion: """
            Writes the model in its inference form (dropout removed, batch norm with its running \
            statistics) as ONNX (IR 8, opset 13). Input 'input': float32 [N, C, H, W], pixels scaled to \
            [0, 1]; the training normalization (--normalize, or what the checkpoint records) is part of \
            the graph. Outputs 'logits' (as ddp predict --json prints them) and 'probabilities' (softmax, \
            or the sigmoid of a one-output binary model). The class names, the normalization and the \
            checkpoint's step are in the model's metadata. Runs as one process, without MPI.
            """)

    /// Formats `export` writes.
    enum Format: String, CaseIterable, ExpressibleByArgument {
        case onnx
    }

    @Option(help: ArgumentHelp("A checkpoint written by ddp train (safetensors).", valueName: "file"))
    var checkpoint: String

    @Option(help: "The file format.")
    var format: Format = .onnx

    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("The file to write.", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("The input normalization to build in: MEAN,STD or M1,..,MC,S1,..,SC. Default: the checkpoint's, if any.", valueName: "mean,std"))
    var normalize: String?

    func validate() throws {
        guard !checkpoint.isEmpty else { throw ValidationError("--checkpoint must name a file") }
        guard !output.isEmpty else { throw ValidationError("-o must name a file") }
    }

    func run() throws {
        let trained = try CheckpointModel.load(checkpoint)
        let normalization = try InputNormalization.resolve(option: normalize, checkpoint: trained)
        var metadata: [String: String] = ["checkpoint": (checkpoint as NSString).lastPathComponent]
        for key in ["step", "epoch"] { if let value = trained.metadata[key] { metadata[key] = value } }
        let description = ONNXExporter.Description(
            name: trained.spec.name, normalization: normalization.map { ($0.mean, $0.std) },
            classNames: trained.classNames, metadata: metadata)
        let model = try ONNXExporter.model(spec: trained.spec, model: trained.model, description: description)
        try ONNXExporter.write(model, to: output)
        let shape = ["N"] + trained.spec.inputShape.map(String.init)
        print(
            "export: \(checkpoint) (\(trained.summary)) -> \(output): ONNX opset \(ONNXExporter.opsetVersion), "
                + "\(model.graph.node.count) nodes, \(model.graph.initializer.count) tensors; input [\(shape.joined(separator: ", "))] "
                + "pixels in [0, 1]\(normalization.map { ", normalized \($0.description)" } ?? ""); outputs logits, probabilities"
                + (trained.classNames.map { "; classes \($0.joined(separator: ", "))" } ?? ""))
    }
}
