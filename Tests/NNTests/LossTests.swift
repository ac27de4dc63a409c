import XCTest

@testable import NN

final class LossTests: XCTestCase {
    /// Central differences of a loss's sum with respect to each logit, in Double on Float logits.
    func numericGradient(_ loss: any Loss, logits: Tensor, labels: [Int32], eps: Float = 1e-2) -> [Double] {
        (0 ..< logits.count).map { i in
            var plus = logits, minus = logits
            plus.storage[i] += eps
            minus.storage[i] -= eps
            let h = Double(plus.storage[i]) - Double(minus.storage[i])
            return (loss.evaluate(logits: plus, labels: labels).sum - loss.evaluate(logits: minus, labels: labels).sum) / h
        }
    }

    func testSigmoidBinaryCrossEntropyMatchesNumpyFixture() {
        // Computed with numpy in float64: sum of logaddexp(0, z) − z·y and sigmoid(z) − y.
        let logits = Tensor(shape: [6, 1], values: [-30, -2, 0, 0.5, 3, 40])
        let (sum, gradient) = SigmoidBinaryCrossEntropy().evaluate(logits: logits, labels: [1, 0, 1, 0, 1, 0])
        // Double arithmetic on exactly representable logits: agreement to ~1e-12 relative.
        XCTAssertEqual(sum, 71.84273952735685, accuracy: 1e-9)
        assertClose(gradient.storage, [-1.0, 0.11920292, -0.5, 0.62245935, -0.047425874, 1.0], tolerance: 1e-7)
    }

    func testSigmoidBinaryCrossEntropyIsFiniteForExtremeLogits() {
        let logits = Tensor(shape: [4, 1], values: [-1e4, 1e4, -1e4, 1e4])
        let (sum, gradient) = SigmoidBinaryCrossEntropy().evaluate(logits: logits, labels: [0, 1, 1, 0])
        // Two confident right answers cost 0; two confident wrong ones cost |z| each.
        XCTAssertEqual(sum, 2e4, accuracy: 1e-6)
        XCTAssertEqual(gradient.storage, [0, 0, -1, 1])
    }

    func testSigmoidBinaryCrossEntropyGradientMatchesFiniteDifferences() {
        let logits = Tensor(shape: [8, 1], values: randomValues(8, seed: 1, low: -4, high: 4))
        let labels: [Int32] = [0, 1, 1, 0, 1, 0, 0, 1]
        let loss = SigmoidBinaryCrossEntropy()
        let numeric = numericGradient(loss, logits: logits, labels: labels)
        // The loss is computed in Double; central differences with h = 2e-2 have O(h²·f''') ≈ 1e-5 error.
        assertClose(loss.evaluate(logits: logits, labels: labels).gradient.storage, numeric.map(Float.init), tolerance: 1e-4)
    }

    func testSoftmaxCrossEntropyMatchesNumpyFixture() {
        // Computed with numpy in float64 (log-sum-exp minus the label's logit; softmax − one-hot).
        let logits = Tensor(shape: [2, 3], values: [1, 2, 0.5, -1, 0, 3])
        let (sum, gradient) = SoftmaxCrossEntropy().evaluate(logits: logits, labels: [1, 0])
        XCTAssertEqual(sum, 4.530252687865374, accuracy: 1e-6)  // Float max subtraction, Double sums
        assertClose(gradient.storage, [0.2312239, -0.37146828, 0.14024438, -0.98285217, 0.046612623, 0.93623955], tolerance: 1e-6)
    }

    func testSoftmaxCrossEntropyGradientMatchesFiniteDifferences() {
        let logits = Tensor(shape: [4, 5], values: randomValues(20, seed: 3, low: -3, high: 3))
        let labels: [Int32] = [0, 4, 2, 2]
        let loss = SoftmaxCrossEntropy()
        let numeric = numericGradient(loss, logits: logits, labels: labels)
        // Double loss, h = 2e-2: truncation error ~1e-5; gradient stored as Float.
        assertClose(loss.evaluate(logits: logits, labels: labels).gradient.storage, numeric.map(Float.init), tolerance: 1e-4)
    }

    func testSpecNamesItsLoss() {
        XCTAssertEqual(LossSpec.softmaxCrossEntropy.makeLoss().name, "softmax-cross-entropy")
        XCTAssertEqual(LossSpec.sigmoidBinaryCrossEntropy.makeLoss().name, "sigmoid-binary-cross-entropy")
        XCTAssertEqual(LossSpec.parse("Binary_Cross_Entropy"), .sigmoidBinaryCrossEntropy)
        XCTAssertNil(LossSpec.parse("hinge"))
    }
}
