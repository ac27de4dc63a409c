import Foundation
import NN
import XCTest

@testable import Export

final class ONNXExporterTests: XCTestCase {
    /// conv (same, stride 2) → batch norm → relu → max pool → dropout → dense, on [3, 9, 9] inputs.
    let spec = ModelSpec(
        name: "small", inputShape: [3, 9, 9],
        layers: [
            .conv2d(filters: 4, kernel: [3, 3], stride: [2, 2], padding: .same, bias: true),
            .batchNorm2d(momentum: 0.1, epsilon: 1e-3, synchronized: false),
            .relu,
            .maxPool2d(pool: [2, 2], stride: [2, 2], padding: .valid),
            .dropout(rate: 0.5),
            .dense(units: 5, bias: false)
        ])

    func export(_ spec: ModelSpec, _ description: ONNXExporter.Description) throws -> (Onnx_ModelProto, Sequential) {
        let model = try spec.build()
        model.initializeParameters(seed: 5)
        return (try ONNXExporter.model(spec: spec, model: model, description: description), model)
    }

    func testInferenceFormNodesInOrder() throws {
        let (onnx, _) = try export(spec, .init(name: "small"))
        XCTAssertEqual(
            onnx.graph.node.map(\.opType),
            ["Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm", "Identity", "Softmax"],
            "dropout leaves no node; the dense layer flattens its 4-D input first")
        XCTAssertEqual(onnx.graph.input.map(\.name), ["input"])
        XCTAssertEqual(onnx.graph.output.map(\.name), ["logits", "probabilities"])
        XCTAssertEqual(onnx.opsetImport.map(\.version), [ONNXExporter.opsetVersion])
        let dims = onnx.graph.input[0].type.tensorType.shape.dim
        XCTAssertEqual(dims.map(\.dimParam), ["N", "", "", ""])
        XCTAssertEqual(dims.dropFirst().map(\.dimValue), [3, 9, 9])
    }

    /// "same" with stride 2 on 9: output 5, total padding (5−1)·2 + 3 − 9 = 2, split 1 and 1.
    func testConvPadsAndAttributes() throws {
        let (onnx, _) = try export(spec, .init(name: "small"))
        let conv = onnx.graph.node[0]
        func ints(_ name: String) -> [Int64]? { conv.attribute.first { $0.name == name }?.ints }
        XCTAssertEqual(ints("kernel_shape"), [3, 3])
        XCTAssertEqual(ints("strides"), [2, 2])
        XCTAssertEqual(ints("pads"), [1, 1, 1, 1])
        XCTAssertEqual(conv.input, ["input", "0.conv2d.weight", "0.conv2d.bias"])
        let norm = onnx.graph.node[1]
        XCTAssertEqual(
            norm.input.dropFirst(),
            [
                "1.batchnorm2d.gamma", "1.batchnorm2d.beta", "1.batchnorm2d.running_mean",
                "1.batchnorm2d.running_var"
            ])
        XCTAssertEqual(norm.attribute.first { $0.name == "epsilon" }?.f, 1e-3)
        let gemm = onnx.graph.node[5]
        XCTAssertEqual(gemm.input, ["5.dense.flatten", "5.dense.weight"], "no bias input without a bias")
        XCTAssertEqual(gemm.attribute.first { $0.name == "transB" }?.i, 1)
    }

    func testInitializersHoldTheArenasValuesUnderTheCheckpointsNames() throws {
        let (onnx, model) = try export(spec, .init(name: "small"))
        XCTAssertEqual(Set(onnx.graph.initializer.map(\.name)), Set(model.arena.slots.map(\.name)))
        for tensor in onnx.graph.initializer {
            let slot = model.arena.slot(named: tensor.name)!
            XCTAssertEqual(tensor.dims, slot.shape.map(Int64.init), tensor.name)
            let values = tensor.rawData.withUnsafeBytes { raw in
                (0 ..< slot.count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            XCTAssertEqual(values, Array(model.arena.parameter(slot).storage), tensor.name)
        }
    }

    func testNormalizationNodesAndMetadata() throws {
        let description = ONNXExporter.Description(
            name: "small", normalization: ([0.5, 0.25, 0], [0.5, 2, 1]),
            classNames: ["a", "b", "c", "d", "e"], metadata: ["step": "12"])
        let (onnx, _) = try export(spec, description)
        XCTAssertEqual(Array(onnx.graph.node.prefix(2).map(\.opType)), ["Mul", "Add"])
        XCTAssertEqual(onnx.graph.node[2].input[0], "normalize.add")
        let metadata = Dictionary(uniqueKeysWithValues: onnx.metadataProps.map { ($0.key, $0.value) })
        XCTAssertEqual(metadata["class_names"], #"["a","b","c","d","e"]"#)
        XCTAssertEqual(metadata["step"], "12")
        XCTAssertEqual(metadata["normalize"], "0.5,0.25,0.0,0.5,2.0,1.0")
        let scale = onnx.graph.initializer.first { $0.name == "normalize.scale" }!
        XCTAssertEqual(scale.dims, [1, 3, 1, 1])
    }

    func testBinaryModelEndsWithASigmoid() throws {
        let binary = ModelSpec(
            name: "binary", inputShape: [1, 4, 4], layers: [.flatten, .dense(units: 1, bias: true)],
            loss: .sigmoidBinaryCrossEntropy)
        let (onnx, _) = try export(binary, .init(name: "binary"))
        XCTAssertEqual(onnx.graph.node.map(\.opType), ["Flatten", "Gemm", "Identity", "Sigmoid"])
    }

    func testWrittenFileParsesBack() throws {
        let (onnx, _) = try export(spec, .init(name: "small"))
        let path = NSTemporaryDirectory() + "model-\(UUID().uuidString.prefix(8)).onnx"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ONNXExporter.write(onnx, to: path)
        let back = try Onnx_ModelProto(serializedBytes: [UInt8](FileManager.default.contents(atPath: path)!))
        XCTAssertEqual(back, onnx)
        XCTAssertEqual(back.irVersion, ONNXExporter.irVersion)
    }
}
