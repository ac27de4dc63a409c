import Foundation
import NN

/// Turns a trained `Sequential` model into an ONNX model (`onnx.ModelProto`) for inference
/// runtimes: ONNX Runtime, OpenCV's DNN module, TensorRT, or `onnx2torch`.
///
/// The graph takes `input`, float32 `[N, C, H, W]` pixels scaled to [0, 1] (N is free), and gives
/// `logits` `[N, K]` (the model's raw outputs, as `ddp predict --json` prints them) and
/// `probabilities` (softmax over the classes, or the sigmoid of a one-output binary model: the
/// probability of class 1). The model is exported in its inference form:
///
/// | layer | ONNX (opset 13) |
/// |---|---|
/// | input normalization | `Mul` by 1/std, `Add` −mean/std (per channel, as `ddp predict` computes it) |
/// | `conv2d` | `Conv` with explicit `pads` [top, left, bottom, right] |
/// | `dense` | `Gemm` with `transB = 1` (weight `[units, in]`), after a `Flatten` when its input is 4-D |
/// | `relu`, `flatten` | `Relu`, `Flatten(axis 1)` (row-major NCHW, as the trainer flattens) |
/// | `maxpool2d`, `avgpool2d` | `MaxPool`, `AveragePool` (padding left out of the average) |
/// | `dropout` | nothing (identity at inference) |
/// | `batchnorm2d` | `BatchNormalization` with the running statistics and the layer's epsilon |
///
/// Tensor names are the checkpoint's (`0.conv2d.weight`), so a reader can match them.
public enum ONNXExporter {
    /// The ONNX IR version written (ONNX 1.10+; ONNX Runtime 1.10+ reads it).
    public static let irVersion: Int64 = 8
    /// The default-domain operator set the nodes use.
    public static let opsetVersion: Int64 = 13

    /// What to record besides the graph.
    public struct Description {
        /// The model's name (the graph's name).
        public var name: String
        /// Per-channel mean and standard deviation applied after scaling pixels to [0, 1], if any.
        public var normalization: (mean: [Float], std: [Float])?
        /// Class names by index, stored as JSON in the metadata key `class_names`.
        public var classNames: [String]?
        /// Further metadata (string keys and values), e.g. the checkpoint's step.
        public var metadata: [String: String]

        /// - Parameters:
        ///   - name: the graph's name.
        ///   - normalization: per-channel mean and standard deviation, or nil for none.
        ///   - classNames: the class names by index, or nil.
        ///   - metadata: further `metadata_props`.
        public init(
            name: String, normalization: (mean: [Float], std: [Float])? = nil, classNames: [String]? = nil,
            metadata: [String: String] = [:]
        ) {
            self.name = name
            self.normalization = normalization
            self.classNames = classNames
            self.metadata = metadata
        }
    }

    /// Builds the ONNX model of `model`, whose layers `spec` describes.
    ///
    /// - Parameters:
    ///   - spec: the model description the model was built from.
    ///   - model: the model with its trained parameters.
    ///   - description: name, normalization, class names and metadata.
    /// - Returns: the model.
    /// - Throws: `ExportError.unsupported` for an input that is not `[C, H, W]`, a normalization
    ///   of the wrong width, or a layer the trainer does not know; `ModelError` when the spec does not fit.
    public static func model(spec: ModelSpec, model: Sequential, description: Description) throws -> Onnx_ModelProto {
        guard spec.inputShape.count == 3 else {
            throw ExportError.unsupported(what: spec.name, reason: "the input shape \(spec.inputShape) is not [C, H, W]")
        }
        var graph = GraphBuilder(arena: model.arena)
        graph.graph.name = spec.name
        let c = spec.inputShape[0]
        graph.graph.input = [valueInfo("input", elementShape: spec.inputShape, doc: "pixels scaled to [0, 1], NCHW")]
        var current = "input"
        if let (mean, std) = description.normalization {
            guard mean.count == c, std.count == c else {
                throw ExportError.unsupported(what: spec.name, reason: "normalization of \(mean.count) channels for an input of \(c)")
            }
            let inverse = std.map { 1 / $0 }
            let offset = zip(mean, inverse).map { -$0 * $1 }
            graph.constant("normalize.scale", inverse, shape: [1, c, 1, 1])
            graph.constant("normalize.offset", offset, shape: [1, c, 1, 1])
            current = graph.node("Mul", [current, "normalize.scale"], name: "normalize.mul")
            current = graph.node("Add", [current, "normalize.offset"], name: "normalize.add")
        }
        var shape = spec.inputShape
        let shapes = try spec.outputShapes()
        for (i, layer) in spec.layers.enumerated() {
            current = try graph.add(layer, index: i, input: current, inputShape: shape)
            shape = shapes[i]
        }
        let width = shape.reduce(1, *)
        if shape.count != 1 { current = graph.node("Flatten", [current], name: "logits.flatten", attributes: [int("axis", 1)]) }
        graph.graph.node.append(node("Identity", [current], ["logits"], name: "logits"))
        let binary = spec.loss == .sigmoidBinaryCrossEntropy
        graph.graph.node.append(
            binary
                ? node("Sigmoid", ["logits"], ["probabilities"], name: "probabilities")
                : node("Softmax", ["logits"], ["probabilities"], name: "probabilities", attributes: [int("axis", 1)]))
        graph.graph.output = [
            valueInfo("logits", elementShape: [width], doc: "the model's raw outputs"),
            valueInfo(
                "probabilities", elementShape: [width],
                doc: binary ? "sigmoid of the logit: the probability of class 1" : "softmax over the classes")
        ]

        var result = Onnx_ModelProto()
        result.irVersion = irVersion
        result.opsetImport = [
            Onnx_OperatorSetIdProto.with {
                $0.domain = ""
                $0.version = opsetVersion
            }
        ]
        result.producerName = "SwiftDDP"
        result.producerVersion = "1"
        result.docString = "\(spec.name) exported by ddp export: input pixels scaled to [0, 1] (NCHW), outputs logits and probabilities"
        result.graph = graph.graph
        var metadata = description.metadata
        metadata["model"] = spec.name
        metadata["loss"] = spec.loss.rawValue
        metadata["input"] = "float32 [N, \(spec.inputShape.map(String.init).joined(separator: ", "))], pixels scaled to [0, 1]"
        if let (mean, std) = description.normalization {
            metadata["normalize"] = (mean + std).map { "\($0)" }.joined(separator: ",")
        }
        if let names = description.classNames {
            metadata["class_names"] = String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
        }
        result.metadataProps = metadata.keys.sorted().map { key in
            Onnx_StringStringEntryProto.with {
                $0.key = key
                $0.value = metadata[key]!
            }
        }
        return result
    }

    /// Serializes `model` to `path` (through a temporary file and a rename).
    ///
    /// - Throws: `ExportError.cannotWrite`.
    public static func write(_ model: Onnx_ModelProto, to path: String) throws {
        let bytes: [UInt8]
        do { bytes = try model.serializedBytes() } catch { throw ExportError.cannotWrite(path: path, reason: "\(error)") }
        let temporary = path + ".tmp"
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw ExportError.cannotWrite(path: path, reason: "\(error)")
        }
    }

    /// A value's type: float32 `[N] + elementShape`, N named `N`.
    static func valueInfo(_ name: String, elementShape: [Int], doc: String) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape.dim =
            [Onnx_TensorShapeProto.Dimension.with { $0.dimParam = "N" }]
            + elementShape.map { d in Onnx_TensorShapeProto.Dimension.with { $0.dimValue = Int64(d) } }
        return Onnx_ValueInfoProto.with {
            $0.name = name
            $0.type = Onnx_TypeProto.with { $0.tensorType = tensor }
            $0.docString = doc
        }
    }

    static func node(
        _ op: String, _ inputs: [String], _ outputs: [String], name: String,
        attributes: [Onnx_AttributeProto] = []
    ) -> Onnx_NodeProto {
        Onnx_NodeProto.with {
            $0.opType = op
            $0.input = inputs
            $0.output = outputs
            $0.name = name
            $0.attribute = attributes
        }
    }

    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        Onnx_AttributeProto.with {
            $0.name = name
            $0.type = .int
            $0.i = Int64(value)
        }
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        Onnx_AttributeProto.with {
            $0.name = name
            $0.type = .ints
            $0.ints = values.map(Int64.init)
        }
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        Onnx_AttributeProto.with {
            $0.name = name
            $0.type = .float
            $0.f = value
        }
    }
}
