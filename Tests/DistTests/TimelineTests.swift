import Foundation
import XCTest

@testable import Dist
@testable import NN

final class TimelineTests: XCTestCase {
    func testRankIsInsertedBeforeTheExtension() {
        XCTAssertEqual(Timeline.path(for: "trace.json", rank: 0), "trace.rank0.json")
        XCTAssertEqual(Timeline.path(for: "/tmp/out/run.trace.json", rank: 12), "/tmp/out/run.trace.rank12.json")
        XCTAssertEqual(Timeline.path(for: "out.d/trace", rank: 1), "out.d/trace.rank1")
        XCTAssertEqual(Timeline.path(for: ".json", rank: 1), ".json.rank1")
    }

    /// The trace parses as JSON in the traceEvents format: complete events with rank and lane.
    func testTraceIsChromeJSON() throws {
        let t = Timeline(rank: 3)
        let s = Timeline.now()
        t.record("backward 2 \"quoted\\name\"", lane: .compute, from: s, to: s + 1500)
        t.record("allreduce bucket 0", lane: .comm, from: s + 100, to: s + 2_000_100, detail: "40 floats")
        let object = try JSONSerialization.jsonObject(with: Data(t.json().utf8)) as? [String: Any]
        let events = try XCTUnwrap(object?["traceEvents"] as? [[String: Any]])
        let spans = events.filter { $0["ph"] as? String == "X" }
        XCTAssertEqual(spans.count, 2)
        XCTAssertEqual(spans[0]["name"] as? String, "backward 2 \"quoted\\name\"")
        XCTAssertEqual(spans[0]["pid"] as? Int, 3)
        XCTAssertEqual(spans[1]["tid"] as? Int, 1)
        XCTAssertEqual(spans[1]["dur"] as? Double ?? 0, 2000, accuracy: 1e-6)
        XCTAssertEqual((spans[1]["args"] as? [String: Any])?["detail"] as? String, "40 floats")
        XCTAssertEqual(events.filter { $0["ph"] as? String == "M" }.count, 3, "process and two lane names")
    }

    /// A trainer with a timeline records forward, each layer's backward, bucket reductions, the
    /// wait and the optimizer step.
    func testTrainerRecordsEveryPhase() {
        let data = SyntheticPatterns.make(count: 32, shape: [1, 8, 8], classes: 3, seed: 2)
        let results = runRanks(2) { c -> [String] in
            var config = TrainingConfiguration()
            config.globalBatchSize = 8
            config.bucketCapacity = 16
            let spec = try ModelSpec.builtin("tiny", inputShape: data.sampleShape, classes: data.classCount)
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: try SGD(learningRate: 0.1), loss: SoftmaxCrossEntropy(),
                communicator: c, configuration: config)
            trainer.timeline = Timeline(rank: c.rank)
            try trainer.synchronize(dataset: data)
            _ = try trainer.computeGradients(indices: DistributedSampler.slice(count: 8, rank: c.rank, size: 2), epoch: 0, dataset: data)
            try trainer.reduceGradients(globalBatchSize: 8)
            try trainer.applyUpdate()
            let object = try JSONSerialization.jsonObject(with: Data(trainer.timeline!.json().utf8)) as? [String: Any]
            return ((object?["traceEvents"] as? [[String: Any]]) ?? []).filter { $0["ph"] as? String == "X" }.compactMap { $0["name"] as? String }
        }
        guard let names = values(results) else { return }
        for n in names {
            XCTAssertEqual(n.filter { $0 == "forward" }.count, 1)
            XCTAssertEqual(n.filter { $0.hasPrefix("backward ") }.count, 5, "one span per layer: \(n)")
            XCTAssertTrue(n.contains("allreduce bucket 0") && n.contains("wait for reductions") && n.contains("optimizer step"), "\(n)")
        }
    }
}
