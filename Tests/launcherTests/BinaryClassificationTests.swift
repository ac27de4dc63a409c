import Foundation
import NN
import XCTest

/// Keras's `class_mode='binary'` workflow: two class folders (sorted names are classes 0 and 1), a
/// model with one sigmoid output, binary accuracy in training and `ddp eval`, and `ddp predict`
/// printing the predicted class and its probability.
final class BinaryClassificationTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
        dir = InferenceFixtures.makeDirectory(name)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A small twin of examples/binary-classifier.yaml for 16x16 images (the input comes from the data).
    static let twin = """
        name: binary-twin
        loss: sigmoid-binary-cross-entropy
        layers:
          - {type: conv2d, filters: 8, kernel: 3, padding: same}
          - {type: relu}
          - {type: conv2d, filters: 8, kernel: 3, stride: 2, padding: same}
          - {type: relu}
          - {type: maxpool2d, pool: 2}
          - {type: flatten}
          - {type: dense, units: 16}
          - {type: relu}
          - {type: dense, units: 1}
        """

    func testBinaryModelTrainsOnTwoClassFoldersOnTwoRanksThenEvaluatesAndPredicts() throws {
        let data = PNGFixtures.catsAndDogs(in: "\(dir)/pets")
        let model = InferenceFixtures.write(BinaryClassificationTests.twin, to: "\(dir)/twin.yaml")
        // --min-delta 10: no epoch after the first improves val_loss by 10, so patience 1 stops after epoch 2.
        let r = try DDPProcess.mpirun(
            2,
            [
                "train", "--data", data, "--model", model, "--epochs", "5", "--batch-size", "8",
                "--lr", "0.01", "--shear", "10", "--zoom", "0.1", "--flip",
                "--validation-data", "test", "--early-stopping-patience", "1", "--min-delta", "10",
                "--checkpoint-dir", "\(dir)/ck", "--log-interval", "0"
            ], timeout: 240)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("data: 48 training samples of shape [3, 16, 16], 2 classes, 16 validation"), r.stdout)
        XCTAssertTrue(r.stdout.contains("epoch 2: train loss"), r.stdout)
        XCTAssertFalse(r.stdout.contains("epoch 3:"), r.stdout)
        XCTAssertTrue(r.stdout.contains("early stopping after epoch 2: val_loss has not improved for 1 epochs"), r.stdout)
        XCTAssertFalse(r.stdout.contains("test: loss"), "the test split was the validation set: \(r.stdout)")

        let checkpoint = "\(dir)/ck/best.safetensors"
        let eval = try DDPProcess.mpirun(2, ["eval", "--checkpoint", checkpoint, "--data", data, "--json"], timeout: 120)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let report = try XCTUnwrap(InferenceFixtures.jsonObjects(eval.stdout).first)
        XCTAssertEqual(report["samples"] as? Int, 16)
        let accuracy = try XCTUnwrap(report["accuracy"] as? Double)
        XCTAssertTrue((0 ... 1).contains(accuracy), "\(report)")
        XCTAssertNil(report["top5_accuracy"], "a binary model has no top-5")

        let images = ["\(data)/test/cats/cats-0.png", "\(data)/test/dogs/dogs-0.png"]
        let predict = try DDPProcess.bare(["predict", "--checkpoint", checkpoint] + images, timeout: 60)
        XCTAssertEqual(predict.status, 0, predict.stderr)
        let lines = predict.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, predict.stdout)
        for (line, image) in zip(lines, images) {
            // The predicted class and its probability, which is at least 0.5.
            XCTAssertTrue(line.hasPrefix("\(image): cats (0) probability ") || line.hasPrefix("\(image): dogs (1) probability "), line)
            let probability = try XCTUnwrap(Double(line.split(separator: " ").last!))
            XCTAssertTrue((0.5 ... 1).contains(probability), line)
        }
    }

    func testASigmoidModelOnThreeClassesIsRefusedNamingTheClassCount() throws {
        let data = PNGFixtures.catsAndDogs(in: "\(dir)/pets", side: 8, train: 2, test: 1)
        for split in ["train", "test"] { try FileManager.default.copyItem(atPath: "\(data)/\(split)/cats", toPath: "\(data)/\(split)/birds") }
        let model = InferenceFixtures.write(BinaryClassificationTests.twin, to: "\(dir)/twin.yaml")
        let r = try DDPProcess.bare(["train", "--data", data, "--model", model], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("a one-output sigmoid model needs data with 2 classes, the data has 3; hint:"), r.stderr)
    }

    func testPredictPrintsClassZeroWithItsProbabilityWhenTheLogitIsNegative() throws {
        let checkpoint = "\(dir)/binary.safetensors"
        let spec = ModelSpec(
            name: "binary", inputShape: [1, 4, 4], layers: [.flatten, .dense(units: 1, bias: true)],
            loss: .sigmoidBinaryCrossEntropy)
        // Logit = 2·(mean pixel) − 1: a black image gives −1, so class 0 with probability 1 − sigmoid(−1).
        InferenceFixtures.checkpoint(spec, at: checkpoint, options: #"{"class_names": ["dark", "light"]}"#) { model in
            model.arena.setParameter(model.arena.slot(named: "1.dense.weight")!, [Float](repeating: 2.0 / 16, count: 16))
            model.arena.setParameter(model.arena.slot(named: "1.dense.bias")!, [-1])
        }
        let image = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 4, height: 4, channels: 1, pixels: [UInt8](repeating: 0, count: 16)),
            to: "\(dir)/black.pgm")
        let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, image], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(image): dark (0) probability \(String(format: "%.4f", 1 / (1 + exp(-1.0))))\n")
        let json = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--json", image], timeout: 60)
        let object = try XCTUnwrap(InferenceFixtures.jsonObjects(json.stdout).first)
        XCTAssertEqual(object["logits"] as? [Double], [-1])
    }
}
