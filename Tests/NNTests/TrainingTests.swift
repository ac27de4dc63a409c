import Foundation
import XCTest

@testable import NN

/// Small end-to-end training runs with plain gradient descent (the real optimizers live elsewhere).
final class TrainingTests: XCTestCase {
    let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples")

    func testMLPOverfitsThirtyTwoRandomSamples() throws {
        var model = try ModelSpec.builtin("mlp", inputShape: [1, 6, 6], classes: 4).build()
        model.initializeParameters(seed: 1)
        let input = Tensor(shape: [32, 1, 6, 6], values: randomValues(32 * 36, seed: 2))
        let labels = (0 ..< 32).map { Int32(($0 * 7) % 4) }
        var first = 0.0, last = 0.0
        for step in 0 ..< 300 {
            // Gradients are sums over the batch: dividing the rate by 32 makes it a mean step of 0.1.
            last = trainStep(&model, loss: SoftmaxCrossEntropy(), input: input, labels: labels, learningRate: 0.1 / 32)
            if step == 0 { first = last }
        }
        // Chance level is 32·ln 4 ≈ 44; memorizing 32 samples with 256 hidden units drives it far
        // below. The bound (mean loss 0.1) is loose enough for any seed.
        XCTAssertEqual(first, 32 * log(4.0), accuracy: 15)
        XCTAssertLessThan(last, 3.2)
        let logits = forwardBatch(&model, input)
        XCTAssertEqual(Metrics.correctCount(logits: logits, labels: labels), 32)
    }

    func testTinyCNNLossFalls() throws {
        var model = try ModelSpec.builtin("tiny", inputShape: [1, 8, 8], classes: 3).build()
        model.initializeParameters(seed: 3)
        let input = Tensor(shape: [16, 1, 8, 8], values: randomValues(16 * 64, seed: 4))
        let labels = (0 ..< 16).map { Int32($0 % 3) }
        var losses: [Double] = []
        for _ in 0 ..< 150 {
            losses.append(trainStep(&model, loss: SoftmaxCrossEntropy(), input: input, labels: labels, learningRate: 0.2 / 16))
        }
        // 32 conv features and 99 dense weights on 16 random samples: the loss must at least halve.
        XCTAssertLessThan(losses.last!, losses.first! / 2, "\(losses.first!) → \(losses.last!)")
    }

    func testBatchNormCNNTrainsAndEvaluates() throws {
        let spec = try ModelSpec.builtin("fmnist-cnn-bn", inputShape: [1, 8, 8], classes: 2)
        var model = try spec.build()
        model.initializeParameters(seed: 5)
        let input = Tensor(shape: [4, 1, 8, 8], values: randomValues(256, seed: 6))
        let labels: [Int32] = [0, 1, 1, 0]
        var losses: [Double] = []
        for _ in 0 ..< 4 {
            losses.append(trainStep(&model, loss: spec.makeLoss(), input: input, labels: labels, learningRate: 0.01 / 4))
        }
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)")
        // Inference (running statistics, no dropout) gives finite logits.
        XCTAssertTrue(forwardBatch(&model, input).storage.allSatisfy(\.isFinite))
    }

    /// Loads an example file for 3x32x32 images, trains a few steps on random data and returns the losses.
    func trainExample(_ file: String, classes: Int, labels: [Int32], learningRate: Float, steps: Int) throws -> [Double] {
        var spec = try ModelSpec.load(file: examples.appendingPathComponent(file).path)
        XCTAssertEqual(spec.inputShape, [3, 64, 64], "the file's own input shape")
        spec.inputShape = [3, 32, 32]  // smaller images keep the reference convolutions quick
        try spec.checkOutput(classes: classes)
        var model = try spec.build()
        model.initializeParameters(seed: 7)
        let input = Tensor(shape: [labels.count, 3, 32, 32], values: randomValues(labels.count * 3072, seed: 8, low: 0, high: 1))
        return (0 ..< steps).map { _ in
            trainStep(&model, loss: spec.makeLoss(), input: input, labels: labels, learningRate: learningRate)
        }
    }

    func testFourConvClassifierExampleTrains() throws {
        // A small rate: the 16M-weight head overshoots at a mean step of 0.01.
        let losses = try trainExample(
            "four-conv-classifier.yaml", classes: 1000, labels: [3, 999],
            learningRate: 0.001 / 2, steps: 3)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        // Two samples at chance give about 2·ln 1000 ≈ 13.8; the same batch must fit better.
        XCTAssertLessThan(losses.first!, 2 * 30, "\(losses)")
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)")
    }

    func testBinaryClassifierExampleTrains() throws {
        let losses = try trainExample(
            "binary-classifier.yaml", classes: 2, labels: [0, 1, 1, 0],
            learningRate: 0.01 / 4, steps: 5)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        XCTAssertLessThan(losses.first!, 4 * 5, "\(losses)")  // chance is 4·ln 2 ≈ 2.8
        XCTAssertLessThan(losses.last!, losses.first!, "\(losses)")
    }
}
