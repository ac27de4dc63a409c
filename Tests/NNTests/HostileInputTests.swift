import Foundation
import XCTest

@testable import NN

/// Inputs found by fuzzing (`scripts/fuzz.sh`) or reported as crashes, each kept as a regression
/// test: a model description, a data file or a checkpoint that once trapped or allocated without
/// bound now ends in a typed error naming the problem.
final class HostileInputTests: XCTestCase {
    /// Parses a YAML model for 1x8x8 samples and 3 classes and returns the error's text.
    func yamlError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let spec = try ModelSpec.parse(text, format: .yaml, inputShape: [1, 8, 8], classes: 3)
            XCTFail("accepted \(spec)", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error is ModelFileError, "\(type(of: error)): \(error)", file: file, line: line)
            return "\(error)"
        }
    }

    func testKernelOf2To32IsRefusedBeforeTheArenaOverflows() {
        // Once an integer overflow in ParameterArena.init ("Illegal instruction").
        let message = yamlError("layers:\n  - {type: conv2d, filters: 4, kernel: 4294967296}\n  - {type: flatten}\n  - {type: dense, units: classes}\n")
        XCTAssertTrue(message.contains("layer 0 (conv2d)") && message.contains("kernel [4294967296, 4294967296] exceeds the largest size"), message)
        XCTAssertTrue(message.contains("hint: "), message)
    }

    func testThreeBillionFiltersIsRefusedBeforeAllocating() {
        // Once "failed to allocate 94200000000064 bytes".
        let message = yamlError("layers:\n  - {type: conv2d, filters: 3000000000, kernel: 3}\n  - {type: flatten}\n  - {type: dense, units: classes}\n")
        XCTAssertTrue(message.contains("filters 3000000000 exceeds the largest width"), message)
    }

    func testTooManyParametersIsRefusedBeforeAllocating() {
        // Each size is allowed; the dense layer's 2^20 x 2^20 weight is not.
        do {
            _ = try ModelSpec(name: "big", inputShape: [1, 1024, 1024], layers: [.flatten, .dense(units: 1 << 20, bias: true)]).build()
            XCTFail("built a model of 2^40 parameters")
        } catch {
            XCTAssertTrue("\(error)".contains("more than \(ModelSpec.maxParameterCount) parameters"), "\(error)")
        }
    }

    func testLayerOutputTooLargeIsRefused() {
        let spec = ModelSpec(
            name: "wide", inputShape: [1, 1024, 1024],
            layers: [.conv2d(filters: 1 << 10, kernel: [1, 1], stride: [1, 1], padding: .valid, bias: false), .flatten, .dense(units: 2, bias: true)])
        XCTAssertThrowsError(try spec.outputShapes()) { error in
            guard case let ModelError.shapeMismatch(_, index, _, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(index, 0)
            XCTAssertTrue(reason.contains("more than \(ModelSpec.maxActivationCount) values per sample"), reason)
        }
    }

    func testHugeInputShapeIsRefused() {
        let message = yamlError("input: [4294967296, 4294967296, 4294967296]\nlayers:\n  - {type: flatten}\n  - {type: dense, units: classes}\n")
        XCTAssertTrue(message.contains("invalid 'input'"), message)
    }

    func testCheckpointModelSpecWithHugeKernelGivesAnError() {
        // What `ddp predict` parses from a checkpoint's model_spec metadata (JSON).
        let json =
            #"{"input": [1, 8, 8], "layers": [{"type": "conv2d", "filters": 3000000000, "kernel": 4294967296}, {"type": "flatten"}, {"type": "dense", "units": 3}]}"#
        XCTAssertThrowsError(try ModelSpec.parse(json, format: .json)) { error in
            XCTAssertTrue("\(error)".contains("exceeds the largest"), "\(error)")
        }
    }

    func testIDXImagesWithoutPixelsAreRefused() {
        // A header claiming 2^32-1 images of 0x0 pixels passed the length check (0 bytes needed).
        let bytes: [UInt8] = [0, 0, 8, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertThrowsError(try IDXReader.parse(bytes, path: "zero.idx", dimensions: 3, what: "images")) { error in
            XCTAssertTrue("\(error)".contains("zero.idx") && "\(error)".contains("no pixels"), "\(error)")
        }
    }

    func testArenaLayoutOverflowIsCaughtByTheSizeCheckFirst() throws {
        // The spec check runs before `ParameterArena.init`, whose own overflow check is a precondition.
        let spec = ModelSpec(
            name: "k", inputShape: [1, 8, 8],
            layers: [.conv2d(filters: 1, kernel: [1 << 32, 1 << 32], stride: [1, 1], padding: .valid, bias: false)])
        XCTAssertThrowsError(try spec.build())
    }

    func testIDXHeaderWithZeroImagesOfHugeSizeIsRefused() {
        // Found by fuzzing (idx): 0 images of 0xDCDCDCDC x 0xDCDCDCDC pixels needed no bytes, and the
        // dataset's size check then overflowed.
        let bytes: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 0, 0xDC, 0xDC, 0xDC, 0xDC, 0xDC, 0xDC, 0xDC, 0xDC]
        XCTAssertThrowsError(try IDXReader.parse(bytes, path: "huge.idx", dimensions: 3, what: "images")) { error in
            XCTAssertTrue("\(error)".contains("huge.idx") && "\(error)".contains("pixels each"), "\(error)")
        }
    }

    func testOverflowingBase60IntegerIsASyntaxErrorNotATrapInYams() {
        // Found by fuzzing (model-yaml): Yams reads `1:2:3` as a base-60 integer with unchecked
        // arithmetic, so twelve parts (60^11 > 2^63) or one large part trapped inside the decoder.
        for text in [
            "classes: 9999999999999999:59:59\nlayers: [{type: flatten}, {type: dense, units: classes}]\n",
            "layers: [{type: conv2d, filters: '1:1:1:1:1:1:1:1:1:1:1:1', kernel: 3}]\n"
        ] {
            let message = yamlError(text)
            XCTAssertTrue(message.contains("base-60 (sexagesimal) integer too large"), message)
        }
        // Small ones still decode as Yams reads them (1:30 = 90), and a name may hold colons.
        XCTAssertEqual(
            try ModelSpec.parse(
                "name: 'a:b:c:d:e:f:g:h:i:j:k:l:m'\nlayers: [{type: flatten}, {type: dense, units: 1:30}]\n",
                format: .yaml, inputShape: [1, 8, 8], classes: 90
            ).layers.last, .dense(units: 90, bias: true))
    }
}
