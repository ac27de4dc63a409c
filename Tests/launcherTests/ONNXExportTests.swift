import Foundation
import NN
import XCTest

/// `ddp export --format onnx`, run by ONNX Runtime (from PyPI, in `.venv-onnx`) on real
/// Fashion-MNIST test images: its logits match `ddp predict --json`'s within 1e-4.
final class ONNXExportTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
        dir = InferenceFixtures.makeDirectory(name)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let data = IDXReader.defaultFashionMNISTDirectory

    /// Batch norm (running statistics), explicit and same padding, average pooling with padding
    /// left out of the average, dropout, and a dense layer after flatten.
    static let batchNormModel = """
        name: bn-check
        layers:
          - {type: conv2d, filters: 8, kernel: 3, padding: same}
          - {type: batchnorm2d}
          - {type: relu}
          - {type: maxpool2d, pool: 2}
          - {type: conv2d, filters: 8, kernel: 3, stride: 2, padding: 1, bias: false}
          - {type: batchnorm2d}
          - {type: relu}
          - {type: avgpool2d, pool: 3, stride: 2, padding: 1}
          - {type: dropout, rate: 0.25}
          - {type: flatten}
          - {type: dense, units: classes}
        """

    /// The first `count` test images as PGM files.
    func testImages(count: Int) throws -> [String] {
        let file = (try FileManager.default.contentsOfDirectory(atPath: ONNXExportTests.data)).first { $0.hasPrefix("t10k-images") }!
        let images = try IDXReader.readImages(path: "\(ONNXExportTests.data)/\(file)")
        let size = images.rows * images.columns
        return (0 ..< count).map { i in
            InferenceFixtures.write(
                InferenceFixtures.pnm(
                    width: images.columns, height: images.rows, channels: 1,
                    pixels: Array(images.pixels[i * size ..< (i + 1) * size])),
                to: "\(dir)/images/test-\(i).pgm")
        }
    }

    /// Trains `model` for a few steps, exports it, and compares ONNX Runtime's logits with ddp predict's.
    func checkExport(model: String, extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        guard FileManager.default.fileExists(atPath: ONNXExportTests.data) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(ONNXExportTests.data) (apt-get install dataset-fashion-mnist)")
        }
        let python = try PythonTools.python(venv: ".venv-onnx", packages: ["onnxruntime", "numpy"])
        let ck = "\(dir)/ck-\(UUID().uuidString.prefix(6))"
        let train = try DDPProcess.bare(
            [
                "train", "--data", ONNXExportTests.data, "--model", model, "--epochs", "1",
                "--max-steps", "15", "--batch-size", "64", "--checkpoint-dir", ck,
                "--log-interval", "0"
            ] + extra, timeout: 300)
        XCTAssertEqual(train.status, 0, train.stderr, file: file, line: line)
        let checkpoint = "\(ck)/" + (try FileManager.default.contentsOfDirectory(atPath: ck).filter { $0.hasPrefix("step-") }.sorted().last!)
        let onnx = "\(dir)/model.onnx"
        let export = try DDPProcess.bare(["export", "--checkpoint", checkpoint, "--format", "onnx", "-o", onnx], timeout: 60)
        XCTAssertEqual(export.status, 0, export.stderr, file: file, line: line)
        XCTAssertTrue(export.stdout.contains("classes T-shirt/top, Trouser"), export.stdout, file: file, line: line)

        let images = try testImages(count: 32)
        let predict = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--json"] + images, timeout: 60)
        XCTAssertEqual(predict.status, 0, predict.stderr, file: file, line: line)
        let ours = InferenceFixtures.jsonObjects(predict.stdout).map { $0["logits"] as! [Double] }
        let theirs = try PythonTools.run(python, script: "onnx-logits.py", [onnx] + images).map { $0["logits"] as! [Double] }
        XCTAssertEqual(ours.count, images.count, file: file, line: line)
        XCTAssertEqual(theirs.count, images.count, file: file, line: line)
        var worst = 0.0
        for (a, b) in zip(ours, theirs) {
            XCTAssertEqual(a.count, 10, file: file, line: line)
            XCTAssertEqual(a.count, b.count, file: file, line: line)
            for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) }
        }
        // Float32 through different kernels (im2col + GEMM here, ONNX Runtime's MLAS there).
        XCTAssertLessThanOrEqual(worst, 1e-4, "max |logit difference| over \(images.count) images", file: file, line: line)
        print("onnx-check \(model): max |ddp predict - onnxruntime| = \(worst) over \(images.count) images")
    }

    func testTinyModelWithNormalizationMatchesOnnxRuntime() throws {
        try checkExport(model: "tiny", extra: ["--normalize", "0.286,0.353"])
    }

    func testBatchNormModelMatchesOnnxRuntime() throws {
        let model = InferenceFixtures.write(ONNXExportTests.batchNormModel, to: "\(dir)/bn-check.yaml")
        try checkExport(model: model)
    }
}
