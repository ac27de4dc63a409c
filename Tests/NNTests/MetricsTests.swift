import XCTest

@testable import NN

final class MetricsTests: XCTestCase {
    // Four samples, three classes; worked out by hand.
    let logits = Tensor(
        shape: [4, 3],
        values: [
            0.1, 0.7, 0.2,  // argmax 1
            0.5, 0.4, 0.1,  // argmax 0, second 1
            0.3, 0.3, 0.3,  // tie: argmax 0, then 1, then 2
            -1, -2, -3
        ])  // argmax 0, last 2

    func testAccuracyCountsArgmaxHits() {
        XCTAssertEqual(Metrics.correctCount(logits: logits, labels: [1, 1, 0, 0]), 3)
        XCTAssertEqual(Metrics.correctCount(logits: logits, labels: [0, 0, 1, 2]), 1)
    }

    func testTopKCountsLabelsAmongTheKHighest() {
        let labels: [Int32] = [2, 1, 1, 2]
        XCTAssertEqual(Metrics.topKCorrectCount(logits: logits, labels: labels, k: 1), 0)
        XCTAssertEqual(Metrics.topKCorrectCount(logits: logits, labels: labels, k: 2), 3)
        XCTAssertEqual(Metrics.topKCorrectCount(logits: logits, labels: labels, k: 3), 4)
    }

    func testTopOneAgreesWithAccuracyOnRandomLogits() {
        let z = Tensor(shape: [50, 7], values: randomValues(350, seed: 4))
        let labels = (0 ..< 50).map { Int32($0 % 7) }
        XCTAssertEqual(Metrics.topKCorrectCount(logits: z, labels: labels, k: 1), Metrics.correctCount(logits: z, labels: labels))
    }

    /// The training loop and evaluation count through `correctPredictions`: a one-output model is
    /// thresholded at zero (an arg max over one column would always say class 0), others take
    /// the arg max.
    func testCorrectPredictionsFollowsTheModelsHead() {
        let binary = Tensor(shape: [4, 1], values: [2, -1, 0.5, -3])
        XCTAssertEqual(Metrics.correctPredictions(logits: binary, labels: [1, 0, 1, 1]), 3)
        XCTAssertEqual(Metrics.correctPredictions(logits: binary, labels: [1, 1, 1, 1]), 2)
        XCTAssertEqual(Metrics.correctPredictions(logits: logits, labels: [1, 1, 0, 0]), 3)
    }

    func testBinaryAccuracyThresholdsAtZero() {
        let z = Tensor(shape: [5, 1], values: [2, -1, 0, 0.1, -0.1])
        // 0 is "not > 0", so it predicts class 0.
        XCTAssertEqual(Metrics.binaryCorrectCount(logits: z, labels: [1, 0, 0, 1, 1]), 4)
    }
}
