import XCTest

@testable import Dist
@testable import NN

final class ReplicaFingerprintTests: XCTestCase {
    func fingerprint(_ units: Int, options: [(String, String)] = []) throws -> ReplicaFingerprint {
        let spec = ModelSpec(
            name: "m", inputShape: [1, 4, 4],
            layers: [.flatten, .dense(units: 8, bias: true), .relu, .dense(units: units, bias: true)])
        return ReplicaFingerprint(
            spec: spec, model: try spec.build(), optimizer: try SGD(learningRate: 0.1),
            loss: SoftmaxCrossEntropy(), dataset: nil, options: options)
    }

    func testFirstDifferenceNamesTheLayerAndBothValues() throws {
        let mine = try fingerprint(128), reference = try fingerprint(256)
        XCTAssertNil(mine.firstDifference(from: mine, rank: 1))
        XCTAssertEqual(mine.firstDifference(from: reference, rank: 1)?.message, "layer 3: rank 1 has dense(128), rank 0 has dense(256)")
    }

    func testOptionsAreComparedAndHashed() throws {
        let a = try fingerprint(4, options: [("lr", "0.1")]), b = try fingerprint(4, options: [("lr", "0.2")])
        XCTAssertEqual(a.firstDifference(from: b, rank: 2)?.message, "option lr: rank 2 has 0.1, rank 0 has 0.2")
        XCTAssertNotEqual(a.digest, b.digest)
        XCTAssertEqual(a.digest, try fingerprint(4, options: [("lr", "0.1")]).digest)
    }

    func testEveryRankThrowsTheSameErrorNamingTheFirstDifference() {
        // Rank 2 differs at layer 3, rank 1 only later (an option): layer 3 comes first.
        let results = runRanks(3) { c -> Void in
            let units = c.rank == 2 ? 5 : 4
            let print = try self.fingerprint(units, options: [("seed", c.rank == 1 ? "9" : "1")])
            try print.verify(across: c)
        }
        for r in results {
            guard case let .failure(error) = r else {
                XCTFail("every rank must fail")
                continue
            }
            XCTAssertEqual(error as? DistError, .replicaMismatch("layer 3: rank 2 has dense(5), rank 0 has dense(4)"))
        }
    }

    func testIdenticalReplicasPass() {
        let results = runRanks(3) { c -> Void in try self.fingerprint(4).verify(across: c) }
        XCTAssertNotNil(values(results))
    }

    func testBroadcastMakesRankZerosParametersAndOptimizerStateWin() throws {
        let results = runRanks(3) { c -> ([Float], OptimizerState) in
            let spec = try ModelSpec.builtin("mlp", inputShape: [1, 4, 4], classes: 3)
            let model = try spec.build()
            model.initializeParameters(seed: UInt64(100 + c.rank))
            let sgd = try SGD(learningRate: 0.1, momentum: 0.9)
            sgd.state = OptimizerState(step: 10 + c.rank, buffers: ["momentum": [Float](repeating: Float(c.rank), count: model.arena.count)])
            try ReplicaBroadcast.broadcastParameters(model.arena, communicator: c)
            try ReplicaBroadcast.broadcastOptimizerState(sgd, communicator: c)
            return (model.arena.parameterSnapshot(), sgd.state)
        }
        guard let all = values(results) else { return }
        for (params, state) in all {
            XCTAssertEqual(params, all[0].0)
            XCTAssertEqual(state.step, 10)
            XCTAssertEqual(state.buffers["momentum"]?.allSatisfy { $0 == 0 }, true)
        }
    }
}
