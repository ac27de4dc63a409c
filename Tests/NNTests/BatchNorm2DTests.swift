import Foundation
import XCTest

@testable import NN

/// An in-process stand-in for an allreduce across `replicas` threads: each call blocks until every
/// replica has made its matching call, then hands each the elementwise sum.
final class ThreadedSumReducer: StatisticsReducer {
    let replicas: Int
    private let condition = NSCondition()
    private var pending: [[Double]] = []
    private var result: [Double] = []
    private var round = 0
    private var readers = 0
    private(set) var calls = 0

    init(replicas: Int) { self.replicas = replicas }

    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        condition.lock()
        defer { condition.unlock() }
        while readers > 0 { condition.wait() }  // the previous round is still being read
        pending.append(Array(values))
        let myRound = round
        if pending.count == replicas {
            result = pending.dropFirst().reduce(pending[0]) { zip($0, $1).map(+) }
            pending = []
            round += 1
            readers = replicas
            calls += 1
            condition.broadcast()
        } else {
            while round == myRound { condition.wait() }
        }
        for i in values.indices { values[i] = result[i] }
        readers -= 1
        if readers == 0 { condition.broadcast() }
    }
}

final class BatchNorm2DTests: XCTestCase {
    // Fixture computed with numpy in float64: x = round(uniform(-2, 2, (2,2,2,3)), 2) and
    // gy = round(uniform(-1, 1, ...), 2) from default_rng(7); forward by the textbook formula,
    // backward by the staged chain rule (dxhat → dvar → dmu → dx), running statistics with
    // momentum 0.1 and the unbiased variance (ddof = 1).
    let x: [Float] = [
        0.5, 1.59, 1.1, -1.1, -0.8, 1.49, -1.98, 1.28, 1.19, -0.13, -0.79, -0.89,
        -0.98, -0.22, 0.02, 0.21, 1.98, 1.17, 0.49, 1.96, -1.14, -1.36, 0.45, -1.82
    ]
    let gy: [Float] = [
        -0.93, 0.03, -0.07, 0.83, 0.26, 0.03, -0.01, -0.5, -0.98, -0.62, 0.38, -0.6,
        -0.26, -0.99, 0.66, -0.69, -0.46, 0.76, 0.02, 0.69, 0.28, 0.48, -0.82, 0.08
    ]

    func makeModel(inputShape: [Int] = [2, 2, 3]) throws -> Sequential {
        let model = try Sequential(inputShape: inputShape, layers: [BatchNorm2D()])
        model.initializeParameters(seed: 0)
        model.arena.setParameter(model.arena.slots[0], [1.5, -0.5])
        model.arena.setParameter(model.arena.slots[1], [0.25, 1.0])
        return model
    }

    func testMatchesNumpyFixture() throws {
        var model = try makeModel()
        let y = forwardBatch(&model, Tensor(shape: [2, 2, 2, 3], values: x), training: true)
        // Tolerance: float32 inputs and arithmetic against a float64 reference, values O(1), ~1e-6;
        // 1e-5 leaves room for the 1/std amplification.
        assertClose(
            y.storage,
            [
                0.37814056, 1.98975467, 1.26526761, -1.98753154, -1.54396808, 1.84190022,
                1.70484638, 0.39306759, 0.42928233, 0.96043205, 1.22600686, 1.26624548,
                -1.81010615, -0.68641185, -0.33156105, -0.05063750, 2.56638741, 1.36876583,
                0.71095263, 0.11944503, 1.36684203, 1.45536696, 0.72704809, 1.64046454
            ], tolerance: 1e-5, "y")
        model.arena.zeroGradients()
        let gx = model.backward(Tensor(shape: [2, 2, 2, 3], values: gy))
        assertClose(
            gx.storage,
            [
                -1.26335787, 0.27455782, 0.07342708, 1.16491830, 0.35476568, 0.26368510,
                0.02499992, 0.08328094, 0.28026062, 0.19163854, -0.18262910, 0.21596966,
                -0.43364864, -1.43035399, 1.03533983, -0.94003790, -0.40752574, 1.30823040,
                -0.09230288, -0.42452907, -0.12747919, -0.19858358, 0.24740560, -0.01803142
            ], tolerance: 1e-5, "gx")
        let slots = model.arena.slots
        assertClose(model.arena.gradient(slots[0]).storage, [-0.89524263, -1.57874858], tolerance: 1e-5, "dgamma")
        assertClose(model.arena.gradient(slots[1]).storage, [-0.83, -1.6], tolerance: 1e-5, "dbeta")
        assertClose(model.arena.parameter(slots[2]).storage, [0.04133333, -0.02283333], tolerance: 1e-6, "running mean")
        assertClose(model.arena.parameter(slots[3]).storage, [1.01227879, 1.06843793], tolerance: 1e-6, "running var")
        XCTAssertEqual(slots.map(\.trainable), [true, true, false, false])
    }

    func testBackwardMatchesFiniteDifferencesInTraining() throws {
        var model = try Sequential(inputShape: [3, 4, 4], layers: [BatchNorm2D()])
        model.initializeParameters(seed: 1)
        model.arena.setParameter(model.arena.slots[0], [1.2, 0.7, -0.9])
        model.arena.setParameter(model.arena.slots[1], [0.1, -0.3, 0.5])
        // Values O(1) and normalization by ~0.6 std: float32 forward rounding stays within 2e-2 at eps 1e-2.
        checkGradients(model: &model, input: Tensor(shape: [3, 3, 4, 4], values: randomValues(144, seed: 2)))
    }

    func testBackwardMatchesFiniteDifferencesAtInference() throws {
        var model = try Sequential(inputShape: [4], layers: [Dense(units: 3), BatchNorm2D()])
        model.initializeParameters(seed: 1)
        model.arena.setParameter(model.arena.slots[4], [0.5, -0.2, 0.1])
        model.arena.setParameter(model.arena.slots[5], [2, 0.5, 1.5])
        // An affine map at inference: only float32 rounding limits agreement.
        checkGradients(
            model: &model, input: Tensor(shape: [5, 4], values: randomValues(20, seed: 3)),
            context: ForwardContext(training: false))
    }

    func testInferenceUsesRunningStatistics() throws {
        var model = try makeModel(inputShape: [2, 1, 1])
        model.arena.setParameter(model.arena.slots[2], [1, -2])
        model.arena.setParameter(model.arena.slots[3], [4, 0.25])
        let y = forwardBatch(&model, Tensor(shape: [1, 2, 1, 1], values: [3, -1]))
        // gamma · (x − running mean) / sqrt(running var + eps) + beta, in Double; float32 rounding only.
        let channel0: Double = 2 / (4 + 1e-5).squareRoot() * 1.5 + 0.25
        let channel1: Double = 1 / (0.25 + 1e-5).squareRoot() * -0.5 + 1
        assertClose(y.storage, [Float(channel0), Float(channel1)], tolerance: 1e-6)
    }

    func testRunningStatisticsConvergeToDataStatistics() throws {
        var model = try Sequential(inputShape: [1, 1, 1], layers: [BatchNorm2D(momentum: 0.5)])
        model.initializeParameters(seed: 0)
        // A batch of [2, 4, 6]: mean 4, unbiased variance 4. After 30 updates with momentum 0.5 the
        // initial (0, 1) has weight 2^-30.
        for _ in 0 ..< 30 { _ = forwardBatch(&model, Tensor(shape: [3, 1, 1, 1], values: [2, 4, 6]), training: true) }
        assertClose(model.arena.parameter(model.arena.slots[2]).storage, [4], tolerance: 1e-6)
        assertClose(model.arena.parameter(model.arena.slots[3]).storage, [4], tolerance: 1e-6)
    }

    func testSynchronizedTwoReplicasMatchOneReplicaOnConcatenatedBatch() throws {
        let n = 5, shape = [2, 3, 3]
        let input = randomValues(n * 18, seed: 11, low: -2, high: 3)
        let gradOut = randomValues(n * 18, seed: 12)
        // One replica, whole batch, no reducer.
        var whole = try Sequential(inputShape: shape, layers: [BatchNorm2D(synchronized: true)])
        whole.initializeParameters(seed: 0)
        whole.arena.setParameter(whole.arena.slots[0], [1.3, 0.6])
        whole.arena.setParameter(whole.arena.slots[1], [0.2, -0.4])
        let yWhole = forwardBatch(&whole, Tensor(shape: [n] + shape, values: input), training: true)
        let gxWhole = whole.backward(Tensor(shape: [n] + shape, values: gradOut))

        // Two replicas on threads, 3 + 2 samples (uneven on purpose), sharing a reducer.
        final class Replica {
            var model: Sequential
            var y = Tensor(shape: [0])
            var gx = Tensor(shape: [0])
            init(_ m: Sequential) { model = m }
        }
        let reducer = ThreadedSumReducer(replicas: 2)
        let splits = [0 ..< 3, 3 ..< 5]
        var replicas: [Replica] = []
        for _ in splits {
            let m = try Sequential(inputShape: shape, layers: [BatchNorm2D(synchronized: true)])
            m.arena.copyParameters(from: whole.arena)
            // Undo the whole-batch running-statistics update so both start from the same state.
            m.arena.setParameter(m.arena.slots[2], [0, 0])
            m.arena.setParameter(m.arena.slots[3], [1, 1])
            replicas.append(Replica(m))
        }
        let done = DispatchGroup()
        for (r, range) in splits.enumerated() {
            done.enter()
            let replica = replicas[r]
            let thread = Thread {
                let x = Tensor(shape: [range.count] + shape, values: Array(input[range.lowerBound * 18 ..< range.upperBound * 18]))
                let g = Tensor(shape: [range.count] + shape, values: Array(gradOut[range.lowerBound * 18 ..< range.upperBound * 18]))
                replica.y = replica.model.forward(x, context: ForwardContext(training: true, sampleKeys: [], statisticsReducer: reducer))
                replica.gx = replica.model.backward(g)
                done.leave()
            }
            thread.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "replicas deadlocked")
        XCTAssertEqual(reducer.calls, 2, "one reduction in forward, one in backward")
        // Same statistics, different summation order: float32 rounding, O(1) values.
        assertClose(replicas[0].y.storage + replicas[1].y.storage, yWhole.storage, tolerance: 1e-5, "output")
        assertClose(replicas[0].gx.storage + replicas[1].gx.storage, gxWhole.storage, tolerance: 1e-5, "input gradient")
        // Parameter gradients stay local; their sum over replicas is the whole batch's.
        for slot in whole.arena.slots {
            let sum = zip(replicas[0].model.arena.gradient(slot).storage, replicas[1].model.arena.gradient(slot).storage).map(+)
            assertClose(sum, whole.arena.gradient(slot).storage, tolerance: 1e-5, slot.name)
            if !slot.trainable {
                assertClose(replicas[0].model.arena.parameter(slot).storage, whole.arena.parameter(slot).storage, tolerance: 1e-6, slot.name)
                assertClose(replicas[1].model.arena.parameter(slot).storage, whole.arena.parameter(slot).storage, tolerance: 1e-6, slot.name)
            }
        }
    }

    /// Deterministic mode's path: each chunk's `batchStatistics` and `backwardSums`, added up and
    /// handed to every chunk's synchronized layer in place of its own sum, give what one layer
    /// computes on the whole batch (float32 summation order aside: 1e-5), and
    /// `meanAndVariance` of the added statistics is what forward normalized with.
    func testChunkStatisticsAddedUpReproduceTheWholeBatch() throws {
        final class Preset: StatisticsReducer {
            var values: [Double] = []
            func sumAcrossReplicas(_ buffer: UnsafeMutableBufferPointer<Double>) { for i in buffer.indices { buffer[i] = values[i] } }
        }
        let n = 6, shape = [2, 3, 3], size = 18
        let input = randomValues(n * size, seed: 21, low: -2, high: 3)
        let gradOut = randomValues(n * size, seed: 22)
        var whole = try Sequential(inputShape: shape, layers: [BatchNorm2D(synchronized: true)])
        whole.initializeParameters(seed: 0)
        let yWhole = forwardBatch(&whole, Tensor(shape: [n] + shape, values: input), training: true)
        let gxWhole = whole.backward(Tensor(shape: [n] + shape, values: gradOut))

        let chunks = [0 ..< 4, 4 ..< 6]
        let arena = try Sequential(inputShape: shape, layers: [BatchNorm2D(synchronized: true)]).arena
        var layers = chunks.map { _ in whole.layers[0] as! BatchNorm2D }
        for i in layers.indices { layers[i].bind(slots: Array(arena.slots)) }
        arena.copyParameters(from: whole.arena)
        let xs = chunks.map { Tensor(shape: [$0.count] + shape, values: Array(input[$0.lowerBound * size ..< $0.upperBound * size])) }
        let gs = chunks.map { Tensor(shape: [$0.count] + shape, values: Array(gradOut[$0.lowerBound * size ..< $0.upperBound * size])) }
        let preset = Preset()
        preset.values = zip(layers[0].batchStatistics(of: xs[0]), layers[1].batchStatistics(of: xs[1])).map(+)
        let ys = layers.indices.map { layers[$0].forward(xs[$0], arena: arena, context: ForwardContext(training: true, statisticsReducer: preset)) }
        let (mean, variance) = BatchNorm2D.meanAndVariance(statistics: preset.values)
        XCTAssertEqual(layers[0].lastBatchStatistics?.mean, mean)
        XCTAssertEqual(layers[1].lastBatchStatistics?.variance, variance)
        XCTAssertEqual(layers[1].lastBatchStatistics?.count, n * 9)
        preset.values = zip(layers[0].backwardSums(of: gs[0]), layers[1].backwardSums(of: gs[1])).map(+)
        let gxs = layers.indices.map { layers[$0].backward(gs[$0], arena: arena) }
        assertClose(ys[0].storage + ys[1].storage, yWhole.storage, tolerance: 1e-5, "output")
        assertClose(gxs[0].storage + gxs[1].storage, gxWhole.storage, tolerance: 1e-5, "input gradient")
    }

    func testUnsynchronizedLayerIgnoresTheReducer() throws {
        var model = try Sequential(inputShape: [1, 2, 2], layers: [BatchNorm2D(synchronized: false)])
        model.initializeParameters(seed: 0)
        let reducer = ThreadedSumReducer(replicas: 2)  // would block forever if called
        _ = model.forward(
            Tensor(shape: [2, 1, 2, 2], values: randomValues(8, seed: 1)),
            context: ForwardContext(training: true, statisticsReducer: reducer))
        XCTAssertEqual(reducer.calls, 0)
    }

    func testRejectsInputWithoutChannels() {
        XCTAssertThrowsError(try BatchNorm2D().outputShape(for: [2, 3])) { error in
            XCTAssertTrue("\(error)".contains("[2, 3]"), "\(error)")
        }
    }
}
