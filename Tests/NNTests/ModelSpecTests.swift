import Foundation
import XCTest

@testable import NN

final class ModelSpecTests: XCTestCase {
    /// Parses YAML text, asserting that it throws a `ModelFileError`, and returns it.
    func fileError(_ yaml: String, classes: Int? = 10, file: StaticString = #filePath, line: UInt = #line) -> ModelFileError? {
        do {
            _ = try ModelSpec.parse(yaml, format: .yaml, inputShape: [1, 28, 28], classes: classes)
            XCTFail("expected an error", file: file, line: line)
        } catch let error as ModelFileError {
            XCTAssertFalse("\(error)".contains("\n"), "one line: \(error)", file: file, line: line)
            return error
        } catch {
            XCTFail("expected a ModelFileError, got \(error)", file: file, line: line)
        }
        return nil
    }

    func testBuiltinsBuildWithTheExpectedOutputShapes() throws {
        for name in ModelSpec.builtinNames {
            let spec = try ModelSpec.builtin(name, inputShape: [1, 28, 28], classes: 10)
            let model = try spec.build()
            XCTAssertEqual(model.outputShape, [10], name)
            try spec.checkOutput(classes: 10)
        }
        let cnn = try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10).build()
        XCTAssertEqual(cnn.outputShapes[5], [64, 7, 7])
        // 5·5·1·32 + 32 + 5·5·32·64 + 64 + 3136·1024 + 1024 + 1024·10 + 10, as in the Keras model.
        XCTAssertEqual(cnn.arena.parameterCount, 3_274_634)
        let lenet = try ModelSpec.builtin("lenet5", inputShape: [1, 28, 28], classes: 10).build()
        XCTAssertEqual(lenet.outputShapes[5], [16, 5, 5])
        XCTAssertThrowsError(try ModelSpec.builtin("resnet", inputShape: [1, 28, 28], classes: 10)) { error in
            XCTAssertTrue("\(error)".contains("fmnist-cnn"), "the hint lists the known models: \(error)")
        }
    }

    func testBatchNormModelMarksRunningStatisticsNonTrainable() throws {
        let model = try ModelSpec.builtin("fmnist-cnn-bn", inputShape: [1, 28, 28], classes: 10).build()
        let names = model.arena.slots.filter { !$0.trainable }.map(\.name)
        XCTAssertEqual(
            names,
            [
                "1.batchnorm2d.running_mean", "1.batchnorm2d.running_var",
                "5.batchnorm2d.running_mean", "5.batchnorm2d.running_var"
            ])
    }

    func testJSONRoundTripsEveryBuiltin() throws {
        for name in ModelSpec.builtinNames {
            let spec = try ModelSpec.builtin(name, inputShape: [3, 32, 32], classes: 7)
            let data = try JSONEncoder().encode(spec)
            XCTAssertEqual(try JSONDecoder().decode(ModelSpec.self, from: data), spec, name)
        }
    }

    func testEncodesInUserFriendlyForm() throws {
        let spec = ModelSpec(
            name: "m", inputShape: [1, 28, 28],
            layers: [
                .conv2d(filters: 32, kernel: [5, 5], stride: [1, 1], padding: .same, bias: true),
                .maxPool2d(pool: [2, 3], stride: [2, 3], padding: .explicit(top: 1, bottom: 0, left: 1, right: 0)),
                .flatten, .dense(units: 10, bias: true)
            ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(spec), as: UTF8.self)
        XCTAssertTrue(json.contains(#"{"bias":true,"filters":32,"kernel":5,"padding":"same","stride":1,"type":"conv2d"}"#), json)
        XCTAssertTrue(json.contains(#"{"padding":[1,0,1,0],"pool":[2,3],"stride":[2,3],"type":"maxpool2d"}"#), json)
        XCTAssertTrue(json.contains(#""loss":"softmax-cross-entropy""#), json)
    }

    func testParsesJSONWithShorthandsAndDefaults() throws {
        let json = """
            {"name": "small", "input": [1, 28, 28], "loss": "softmax-cross-entropy",
             "layers": [{"type": "conv2d", "filters": 8, "kernel": [3, 5], "stride": 2, "padding": "same"},
                        {"type": "BatchNorm2D", "synchronized": true},
                        {"type": "relu"}, {"type": "max_pool2d"}, {"type": "avgpool2d", "pool": 1, "padding": 0},
                        {"type": "dropout", "rate": 0.25}, {"type": "flatten"}, {"type": "dense", "units": "classes"}]}
            """
        let spec = try ModelSpec.parse(json, format: .json, classes: 10)
        XCTAssertEqual(
            spec.layers,
            [
                .conv2d(filters: 8, kernel: [3, 5], stride: [2, 2], padding: .same, bias: true),
                .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: true), .relu,
                .maxPool2d(pool: [2, 2], stride: [2, 2], padding: .valid),
                .avgPool2d(pool: [1, 1], stride: [1, 1], padding: .explicit(top: 0, bottom: 0, left: 0, right: 0)),
                .dropout(rate: 0.25), .flatten, .dense(units: 10, bias: true)
            ])
        XCTAssertEqual(spec.name, "small")
        XCTAssertEqual(try spec.build().outputShape, [10])
    }

    func testFileValuesWinAndArgumentsFillTheGaps() throws {
        let yaml = "layers: [{type: flatten}, {type: dense, units: classes}]"
        let fromArguments = try ModelSpec.parse(yaml, format: .yaml, name: "x", inputShape: [2, 3, 3], classes: 4)
        XCTAssertEqual(fromArguments.inputShape, [2, 3, 3])
        XCTAssertEqual(fromArguments.layers.last, .dense(units: 4, bias: true))
        XCTAssertEqual(fromArguments.name, "x")
        let own = try ModelSpec.parse("input: [1, 2, 2]\nclasses: 3\n" + yaml, format: .yaml, inputShape: [2, 3, 3], classes: 4)
        XCTAssertEqual(own.inputShape, [1, 2, 2])
        XCTAssertEqual(own.layers.last, .dense(units: 3, bias: true))
    }

    func testUnknownLayerTypeListsTheKnownOnes() {
        guard let error = fileError("layers: [{type: flatten}, {type: conv3d, filters: 2}]") else { return }
        XCTAssertEqual(error.layer, 1)
        XCTAssertEqual(error.problem, .unknownLayerType("conv3d", known: LayerSpec.typeNames))
        XCTAssertTrue("\(error)".contains("layer 1: unknown layer type 'conv3d'; hint: known layer types are conv2d, dense"), "\(error)")
    }

    func testUnknownOptionIsNamed() {
        guard let error = fileError("layers: [{type: conv2d, filters: 4, kernel: 3, strides: 2}]") else { return }
        XCTAssertEqual(error.layer, 0)
        XCTAssertEqual(error.problem, .unknownOption("strides", known: LayerSpec.options["conv2d"]!))
        XCTAssertTrue("\(error)".contains("layer 0 (conv2d): unknown option 'strides'; hint: conv2d takes"), "\(error)")
        guard let top = fileError("layer: []") else { return }
        XCTAssertEqual(top.problem, .unknownOption("layer", known: ModelSpec.fileOptions))
    }

    func testMissingRequiredOptionIsNamed() {
        guard let error = fileError("layers: [{type: flatten}, {type: relu}, {type: dense}]") else { return }
        XCTAssertEqual(error.layer, 2)
        XCTAssertEqual(error.layerType, "dense")
        guard case .missingOption("units", _) = error.problem else { return XCTFail("\(error)") }
        guard let noType = fileError("layers: [{filters: 3}]"), case .missingOption("type", _) = noType.problem else {
            return XCTFail("a layer without a type")
        }
        guard let noLayers = fileError("input: [1, 2, 2]"), case .missingOption("layers", _) = noLayers.problem else {
            return XCTFail("a model without layers")
        }
    }

    func testWrongValueTypeIsNamedWithTheValue() {
        guard let error = fileError("layers: [{type: conv2d, filters: many, kernel: 3}]") else { return }
        XCTAssertEqual(error.problem, .wrongType(option: "filters", expected: "an integer", got: "'many'"))
        XCTAssertTrue("\(error)".contains("layer 0 (conv2d): option 'filters' must be an integer, got 'many'"), "\(error)")
        guard let kernel = fileError("layers: [{type: conv2d, filters: 2, kernel: [3, 3, 3]}]") else { return }
        XCTAssertEqual(kernel.problem, .wrongType(option: "kernel", expected: "an integer or [height, width]", got: "[3, 3, 3]"))
        guard let padding = fileError("layers: [{type: maxpool2d, padding: full}]") else { return }
        guard case .invalidValue(option: "padding", _) = padding.problem else { return XCTFail("\(padding)") }
    }

    func testShapeThatDoesNotFitNamesTheLayerAndShape() {
        // 28 → 14 → 7 → 3 → 1, and a fifth 2x2 pool cannot take 1x1.
        let pools = Array(repeating: "{type: maxpool2d}", count: 5).joined(separator: ", ")
        guard let error = fileError("layers: [\(pools), {type: flatten}, {type: dense, units: classes}]") else { return }
        XCTAssertEqual(error.layer, 4)
        XCTAssertEqual(error.layerType, "maxpool2d")
        guard case .shapeMismatch(inputShape: [1, 1, 1], _) = error.problem else { return XCTFail("\(error)") }
        XCTAssertTrue("\(error)".contains("layer 4 (maxpool2d): cannot take input of shape [1, 1, 1]"), "\(error)")
    }

    func testOutputThatDoesNotFitTheLossIsReported() {
        guard let error = fileError("layers: [{type: flatten}, {type: dense, units: 7}]", classes: 10) else { return }
        XCTAssertEqual(error.layer, 1)
        XCTAssertTrue("\(error)".contains("layer 1 (dense): the model's output [7] does not fit softmax-cross-entropy, which needs [10]"), "\(error)")
        guard let binary = fileError("loss: binary-cross-entropy\nlayers: [{type: flatten}, {type: dense, units: 2}]") else { return }
        XCTAssertEqual(
            binary.problem,
            .outputMismatch(outputShape: [2], reason: "does not fit sigmoid-binary-cross-entropy, which needs [1]; hint: end with a dense layer of 1 unit"))
    }

    func testNegativeSizesAreRejected() {
        guard let error = fileError("layers: [{type: conv2d, filters: -3, kernel: 3}]") else { return }
        XCTAssertEqual(error.layer, 0)
        XCTAssertTrue("\(error)".contains("filters must be positive, got -3"), "\(error)")
        XCTAssertThrowsError(try LayerSpec.dense(units: 0, bias: true).makeLayer()) { error in
            XCTAssertEqual(error as? ModelError, .invalidHyperparameter(layer: "dense", reason: "units must be positive, got 0"))
        }
        XCTAssertThrowsError(try LayerSpec.dropout(rate: 1).makeLayer())
        XCTAssertThrowsError(try LayerSpec.maxPool2d(pool: [2, -1], stride: [2, 2], padding: .valid).makeLayer())
        XCTAssertThrowsError(try ModelSpec(name: "m", inputShape: [1, -4, 4], layers: [.flatten]).build())
    }

    func testSyntaxErrorsAndMissingFilesNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("modelspec-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.json").path
        try "{\"layers\": [".write(toFile: bad, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelSpec.load(file: bad, inputShape: [1, 4, 4], classes: 2)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(bad): not a valid model description"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        let wrongOption = dir.appendingPathComponent("m.yaml").path
        try "layers:\n  - type: flatten\n  - type: dense\n    unit: 3\n".write(toFile: wrongOption, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelSpec.load(file: wrongOption, inputShape: [1, 4, 4], classes: 3)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(wrongOption): layer 1 (dense): unknown option 'unit'"), "\(error)")
        }
        let missing = dir.appendingPathComponent("none.yaml").path
        XCTAssertThrowsError(try ModelSpec.load(file: missing)) { error in
            XCTAssertEqual("\(error)", "\(missing): cannot read the model file: no such file")
        }
        let good = dir.appendingPathComponent("good.yml").path
        try "layers: [{type: flatten}, {type: dense, units: classes}]".write(toFile: good, atomically: true, encoding: .utf8)
        let spec = try ModelSpec.load(file: good, inputShape: [1, 4, 4], classes: 3)
        XCTAssertEqual(spec.name, "good")
        XCTAssertEqual(try ModelSpec.resolve(good, inputShape: [1, 4, 4], classes: 3), spec)
        XCTAssertEqual(try ModelSpec.resolve("mlp", inputShape: [1, 4, 4], classes: 3).name, "mlp")
        XCTAssertThrowsError(try ModelSpec.resolve("no-such-model", inputShape: [1, 4, 4], classes: 3))
    }

    func testYAMLSyntaxErrorIsOneLine() {
        guard let error = fileError("layers: [{type: relu}\ninput: [1, 2") else { return }
        guard case let .syntax(reason) = error.problem else { return XCTFail("\(error)") }
        XCTAssertTrue(reason.hasPrefix("line 2, column 1: did not find expected"), reason)
        XCTAssertTrue("\(error)".hasPrefix("model description: not a valid model description"), "\(error)")
    }

    func testClassesPlaceholderNeedsAClassCount() {
        guard let error = fileError("layers: [{type: flatten}, {type: dense, units: classes}]", classes: nil) else { return }
        XCTAssertEqual(error.layer, 1)
        XCTAssertTrue("\(error)".contains("'classes' needs the class count"), "\(error)")
        guard let input = fileError("input: 28\nlayers: [{type: flatten}]") else { return }
        XCTAssertEqual(input.problem, .wrongType(option: "input", expected: "a list of integers such as [1, 28, 28]", got: "28"))
    }

    func testExampleFilesParseAndRoundTripThroughJSON() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples")
        let four = try ModelSpec.load(file: examples.appendingPathComponent("four-conv-classifier.yaml").path)
        XCTAssertEqual(four.name, "four-conv-classifier")
        XCTAssertEqual(four.loss, .softmaxCrossEntropy)
        XCTAssertEqual(four.layers.filter { if case .conv2d = $0 { return true } else { return false } }.count, 4)
        XCTAssertEqual(try four.outputShapes().last, [1000])
        let binary = try ModelSpec.load(file: examples.appendingPathComponent("binary-classifier.yaml").path, classes: 2)
        XCTAssertEqual(binary.loss, .sigmoidBinaryCrossEntropy)
        XCTAssertEqual(try binary.outputShapes()[9], [128, 4, 4])  // 64 → 32 (stride 2) → 16 → 8 (stride 2) → 4
        for spec in [four, binary] {
            let json = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
            XCTAssertEqual(try ModelSpec.parse(json, format: .json), spec)
        }
    }
}
