import XCTest

@testable import Dist
@testable import NN

final class EvaluationTests: XCTestCase {
    // 37 samples: uneven shards for 2, 3 and 4 ranks.
    let data = SyntheticPatterns.make(count: 37, shape: [1, 8, 8], classes: 7, seed: 5)

    func model(_ name: String = "tiny") throws -> Sequential {
        let model = try ModelSpec.builtin(name, inputShape: data.sampleShape, classes: data.classCount).build()
        model.initializeParameters(seed: 3)
        return model
    }

    /// Every rank ends with the totals one rank computes: counts exactly, the loss sum up to
    /// float32 rounding of the per-batch sums (1e-9 relative in Double is far above that noise).
    func testSeveralRanksCountWhatOneRankCounts() throws {
        let data = self.data
        var reference = try model()
        let one = Evaluation.local(
            model: &reference, loss: SoftmaxCrossEntropy(), dataset: data, indices: 0 ..< data.count,
            topK: 5, batchSize: 37)
        XCTAssertEqual(one.count, 37)
        for p in [1, 2, 3, 4] {
            let spec = try ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount)
            let results = runRanks(p) { c -> EvaluationTotals in
                var replica = try spec.build()
                replica.initializeParameters(seed: 3)
                return try Evaluation.run(model: &replica, loss: SoftmaxCrossEntropy(), dataset: data, topK: 5, batchSize: 4, communicator: c)
            }
            guard let all = values(results) else { return }
            for (rank, totals) in all.enumerated() {
                XCTAssertEqual(totals.count, 37, "P=\(p) rank \(rank): each sample exactly once")
                XCTAssertEqual(totals.correct, one.correct, "P=\(p) rank \(rank)")
                XCTAssertEqual(totals.topKCorrect, one.topKCorrect, "P=\(p) rank \(rank)")
                XCTAssertEqual(totals.lossSum, one.lossSum, accuracy: 1e-5 * abs(one.lossSum), "P=\(p) rank \(rank)")
            }
        }
    }

    func testLocalTotalsMatchMetricsOnOneBatch() throws {
        var m = try model("mlp")
        let (input, labels) = BatchLoader.makeBatch(dataset: data, indices: Array(0 ..< data.count), keys: [])
        let logits = m.forward(input, context: ForwardContext(training: false))
        let totals = Evaluation.local(model: &m, loss: SoftmaxCrossEntropy(), dataset: data, indices: 0 ..< data.count, topK: 3, batchSize: 10)
        XCTAssertEqual(totals.correct, Metrics.correctCount(logits: logits, labels: labels))
        XCTAssertEqual(totals.topKCorrect, Metrics.topKCorrectCount(logits: logits, labels: labels, k: 3))
        XCTAssertEqual(totals.lossSum, SoftmaxCrossEntropy().evaluate(logits: logits, labels: labels).sum, accuracy: 1e-4)
        XCTAssertEqual(totals.accuracy, Double(totals.correct) / 37)
    }

    func testBinaryModelCountsThresholdedPredictions() throws {
        // Labels 0/1: dark or light images; the model's logit is 2·mean − 1.
        let pixels = (0 ..< 6).flatMap { i in [UInt8](repeating: i % 2 == 0 ? 10 : 240, count: 4) }
        let binary = InMemoryDataset(pixels: pixels, labels: [0, 1, 0, 1, 1, 0], sampleShape: [1, 2, 2], classNames: ["dark", "light"])
        let spec = ModelSpec(name: "binary", inputShape: [1, 2, 2], layers: [.flatten, .dense(units: 1, bias: true)], loss: .sigmoidBinaryCrossEntropy)
        var m = try spec.build()
        m.arena.setParameter(m.arena.slot(named: "1.dense.weight")!, [0.5, 0.5, 0.5, 0.5])
        m.arena.setParameter(m.arena.slot(named: "1.dense.bias")!, [-1])
        let totals = Evaluation.local(model: &m, loss: spec.makeLoss(), dataset: binary, indices: 0 ..< 6, topK: nil, batchSize: 4)
        // Samples 4 and 5 are mislabelled.
        XCTAssertEqual(totals.correct, 4)
        XCTAssertEqual(totals.topKCorrect, 0)
        XCTAssertEqual(totals.count, 6)
    }
}
