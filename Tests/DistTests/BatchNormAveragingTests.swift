import XCTest

@testable import Dist
@testable import NN

/// Batch-norm averaging on in-process ranks whose running statistics differ.
final class BatchNormAveragingTests: XCTestCase {
    /// conv → batch norm (synchronized or not) → dense, for 1×8×8 samples of 3 classes.
    func spec(synchronized: Bool) -> ModelSpec {
        ModelSpec(
            name: "bn", inputShape: [1, 8, 8],
            layers: [
                .conv2d(filters: 2, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
                .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: synchronized), .relu, .flatten, .dense(units: 3, bias: true)
            ])
    }

    /// Sets every running statistic of rank r to r + 1 (and the first one of each slot to 10·r),
    /// runs `modelWillBeRead` on every rank and returns each rank's running statistics.
    func statisticsAfterAveraging(
        ranks: Int, synchronized: Bool = false,
        configure: @escaping (inout TrainingConfiguration) -> Void = { _ in }
    ) -> [[Float]]? {
        let spec = self.spec(synchronized: synchronized)
        return values(
            runRanks(ranks) { c -> [Float] in
                let loop = try makeLoop(spec: spec, communicator: c, configure: configure)
                let arena = loop.trainer.model.arena
                let running = arena.slots.filter { !$0.trainable }
                XCTAssertFalse(running.isEmpty, "the batch-norm layer has running statistics")
                for slot in running {
                    var values = [Float](repeating: Float(c.rank + 1), count: slot.count)
                    values[0] = Float(10 * c.rank)
                    arena.setParameter(slot, values)
                }
                try BatchNormAveraging().modelWillBeRead(loop)
                return running.flatMap { Array(UnsafeBufferPointer(start: arena.parameters + $0.offset, count: $0.count)) }
            })
    }

    /// Unsynchronized layers in fast mode on 2 ranks: every rank ends with the mean.
    func testUnsynchronizedStatisticsBecomeTheirMean() {
        guard let ranks = statisticsAfterAveraging(ranks: 2) else { return }
        XCTAssertEqual(ranks[0], ranks[1])
        XCTAssertEqual(Set(ranks[0]), [5, 1.5], "(0 + 10) / 2 for the first of each slot, (1 + 2) / 2 for the rest")
    }

    /// Synchronized layers, deterministic mode and a single rank already agree: nothing changes.
    func testAgreeingStatisticsAreLeftAlone() {
        guard let synchronized = statisticsAfterAveraging(ranks: 2, synchronized: true),
            let exact = statisticsAfterAveraging(ranks: 2, configure: { $0.reduction = .deterministic }),
            let one = statisticsAfterAveraging(ranks: 1)
        else { return }
        XCTAssertEqual(Set(synchronized[1]), [10, 2])
        XCTAssertEqual(Set(exact[1]), [10, 2])
        XCTAssertEqual(Set(one[0]), [0, 1])
    }
}
