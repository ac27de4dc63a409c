import XCTest

@testable import NN

/// Optimizer steps against values computed independently in float64 numpy.
///
/// Every fixture starts from θ0 = [0.5, -1, 2, 0, -0.25, 1.5] (slot "w", shape [2, 3]) and applies
/// three steps with the gradients below; the expected parameters come from a direct numpy
/// transcription of each update rule (PyTorch's SGD/Adam/AdamW formulas), printed with %.9g.
/// Tolerance 2e-6: float32 rounding over three steps of O(1) values.
final class OptimizerTests: XCTestCase {
    static let theta0: [Float] = [0.5, -1.0, 2.0, 0.0, -0.25, 1.5]
    static let gradients: [[Float]] = [
        [0.1, -0.2, 0.3, -0.4, 0.5, -0.6],
        [-0.3, 0.1, 0.2, 0.05, -0.5, 0.4],
        [0.2, 0.2, -0.1, 0.3, 0.0, -0.2]
    ]
    static let statistics: [Float] = [3, 4]

    /// An arena with a trainable weight and a non-trainable running statistic.
    func makeArena() -> ParameterArena {
        let arena = ParameterArena(tensors: [
            (name: "w", shape: [2, 3], trainable: true),
            (name: "stat", shape: [2], trainable: false)
        ])
        arena.setParameter(arena.slots[0], Self.theta0)
        arena.setParameter(arena.slots[1], Self.statistics)
        return arena
    }

    /// Runs the three fixture steps; the non-trainable slot gets a gradient too, which must be ignored.
    func run(_ optimizer: Optimizer) -> ParameterArena {
        let arena = makeArena()
        for g in Self.gradients {
            arena.zeroGradients()
            for (i, x) in g.enumerated() { arena.gradients[arena.slots[0].offset + i] = x }
            arena.gradients[arena.slots[1].offset] = 7
            arena.gradients[arena.slots[1].offset + 1] = -7
            optimizer.step(arena: arena)
        }
        XCTAssertEqual(arena.parameter(arena.slots[1]).storage, Self.statistics, "non-trainable slot changed")
        return arena
    }

    func testSGDPlainWithWeightDecay() throws {
        // numpy: th = th - lr*g - lr*wd*th, lr=0.1, wd=0.01
        let arena = run(try SGD(learningRate: 0.1, weightDecay: 0.01))
        assertClose(
            arena.parameter(arena.slots[0]).storage,
            [0.498491489, -1.00703298, 1.95408597, 0.00492504, -0.2492008, 1.53542456], tolerance: 2e-6)
    }

    func testSGDMomentumWithWeightDecay() throws {
        // numpy: g' = g + wd*th; b = mu*b + g'; th -= lr*b; lr=0.1, mu=0.9, wd=0.01
        let arena = run(try SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01))
        assertClose(
            arena.parameter(arena.slots[0]).storage,
            [0.507105389, -0.979260779, 1.87962357, 0.06875304, -0.28895875, 1.59800426], tolerance: 2e-6)
    }

    func testSGDNesterovWithWeightDecay() throws {
        // numpy: g' = g + wd*th; b = mu*b + g'; th -= lr*(g' + mu*b); lr=0.1, mu=0.9, wd=0.01
        let arena = run(try SGD(learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01))
        assertClose(
            arena.parameter(arena.slots[0]).storage,
            [0.504887062, -0.988454624, 1.84594074, 0.0666164044, -0.284107168, 1.62341428], tolerance: 2e-6)
    }

    func testAdamBiasCorrectionAndL2() throws {
        // numpy: g' = g + wd*th; m,v EMAs; mh = m/(1-b1^t), vh = v/(1-b2^t); th -= lr*mh/(sqrt(vh)+eps)
        // lr=0.01, b1=0.9, b2=0.999, eps=1e-8, wd=0.1
        let arena = run(try Adam(learningRate: 0.01, weightDecay: 0.1))
        assertClose(
            arena.parameter(arena.slots[0]).storage,
            [0.490542701, -0.980489618, 1.97160401, 0.015407151, -0.257933041, 1.50773522], tolerance: 2e-6)
    }

    func testAdamWDecoupledDecay() throws {
        // numpy: th *= 1 - lr*wd; then the Adam update with the raw g; lr=0.01, wd=0.1
        let arena = run(try AdamW(learningRate: 0.01, weightDecay: 0.1))
        assertClose(
            arena.parameter(arena.slots[0]).storage,
            [0.49327057, -0.98708925, 1.96881325, 0.0154324892, -0.258298126, 1.50971336], tolerance: 2e-6)
    }

    func testAdamFirstStepIsLearningRateTimesSign() throws {
        // With bias correction the first step is lr·g/(|g|+eps) ≈ ±lr whatever the gradient's size.
        let arena = makeArena()
        for (i, x) in Self.gradients[0].enumerated() { arena.gradients[i] = x * 1e-3 }
        let adam = try Adam(learningRate: 0.01)
        adam.step(arena: arena)
        let moved = zip(arena.parameter(arena.slots[0]).storage, Self.theta0).map { $0 - $1 }
        assertClose(moved, Self.gradients[0].map { $0 > 0 ? -0.01 : 0.01 }, tolerance: 1e-5)
    }

    func testStateRoundTripResumesExactly() throws {
        // Two steps, save the state, restore into a fresh optimizer: the third step must match a straight run.
        let straight = run(try Adam(learningRate: 0.01, weightDecay: 0.1))
        let arena = makeArena()
        let first = try Adam(learningRate: 0.01, weightDecay: 0.1)
        for g in Self.gradients.prefix(2) {
            arena.zeroGradients()
            for (i, x) in g.enumerated() { arena.gradients[i] = x }
            first.step(arena: arena)
        }
        let second = try Adam(learningRate: 0.01, weightDecay: 0.1)
        second.state = first.state
        XCTAssertEqual(second.state.step, 2)
        XCTAssertEqual(second.state.buffers["m"]?.count, arena.count)
        arena.zeroGradients()
        for (i, x) in Self.gradients[2].enumerated() { arena.gradients[i] = x }
        second.step(arena: arena)
        XCTAssertEqual(arena.parameterSnapshot(), straight.parameterSnapshot())
    }

    func testSGDStateCarriesMomentum() throws {
        let sgd = try SGD(learningRate: 0.1, momentum: 0.9)
        _ = run(sgd)
        XCTAssertEqual(sgd.state.step, 3)
        XCTAssertNotNil(sgd.state.buffers["momentum"])
        XCTAssertTrue(try SGD(learningRate: 0.1).state.buffers.isEmpty)
    }

    func testSummaries() throws {
        XCTAssertEqual(
            try SGD(learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.0005).summary,
            "sgd(momentum=0.9,nesterov,wd=0.0005)")
        XCTAssertEqual(try Adam().summary, "adam(beta1=0.9,beta2=0.999,eps=1e-08,wd=0.0)")
        XCTAssertEqual(try AdamW().summary, "adamw(beta1=0.9,beta2=0.999,eps=1e-08,wd=0.01)")
    }

    func assertInvalid(
        _ make: @autoclosure () throws -> Optimizer, option: String, value: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try make(), file: file, line: line) { error in
            guard case let TrainingConfigError.invalid(o, v, reason) = error else {
                return XCTFail("unexpected error \(error)", file: file, line: line)
            }
            XCTAssertEqual(o, option, file: file, line: line)
            XCTAssertEqual(v, value, file: file, line: line)
            XCTAssertTrue(reason.hasSuffix("."), "reason is not a sentence: \(reason)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(value), "message lacks the value: \(error)", file: file, line: line)
        }
    }

    func testBadHyperparametersThrowWithTheValue() {
        assertInvalid(try SGD(learningRate: -0.1), option: "learning rate", value: "-0.1")
        assertInvalid(try SGD(learningRate: .nan), option: "learning rate", value: "nan")
        assertInvalid(try SGD(learningRate: 0.1, momentum: 1), option: "momentum", value: "1.0")
        assertInvalid(try SGD(learningRate: 0.1, momentum: -0.5), option: "momentum", value: "-0.5")
        assertInvalid(try SGD(learningRate: 0.1, nesterov: true), option: "nesterov", value: "true")
        assertInvalid(try SGD(learningRate: 0.1, weightDecay: -1e-4), option: "weight decay", value: "-0.0001")
        assertInvalid(try Adam(beta1: 1.0), option: "beta1", value: "1.0")
        assertInvalid(try Adam(beta2: -0.1), option: "beta2", value: "-0.1")
        assertInvalid(try Adam(epsilon: 0), option: "epsilon", value: "0.0")
        assertInvalid(try AdamW(learningRate: -1), option: "learning rate", value: "-1.0")
        assertInvalid(try AdamW(weightDecay: -0.01), option: "weight decay", value: "-0.01")
        XCTAssertEqual(
            "\(TrainingConfigError.invalid(option: "momentum", value: "1.0", reason: "The momentum must be in [0, 1)."))",
            "invalid momentum 1.0: The momentum must be in [0, 1).")
    }

    /// Every optimizer steps from the exact reduction's Double sums (`GradientSource.exactSums`) to
    /// the same bits as from the arena holding their mean, `Float(sums · factor)`, and ignores the
    /// non-trainable slot either way. 37 elements: the eight-lane loop and its scalar tail.
    func testStepFromExactSumsMatchesTheMeanWrittenFirst() throws {
        let makers: [() throws -> Optimizer] = [
            { try SGD(learningRate: 0.1, weightDecay: 0.01) },
            { try SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01) },
            { try SGD(learningRate: 0.1, momentum: 0.9, nesterov: true) },
            { try Adam(learningRate: 0.01, weightDecay: 0.01) },
            { try AdamW(learningRate: 0.01) }
        ]
        func makeArena() -> ParameterArena {
            let arena = ParameterArena(tensors: [
                (name: "w", shape: [37], trainable: true), (name: "stat", shape: [2], trainable: false),
                (name: "b", shape: [5], trainable: true)
            ])
            for slot in arena.slots { arena.setParameter(slot, (0 ..< slot.count).map { Float($0 % 7) * 0.3 - 0.9 }) }
            return arena
        }
        for make in makers {
            let viaArena = try make(), viaSums = try make()
            let a = makeArena(), b = makeArena()
            var sums = [Double](repeating: 0, count: a.count)
            var generator = SplitMix64(seed: 11)
            for _ in 0 ..< 3 {
                // Integer-valued sums at per-slot scales, as the exact reduction leaves them.
                let factors = a.slots.indices.map { 1 / (Double(sign: .plus, exponent: 30 + 3 * $0, significand: 1) * 64) }
                for (s, slot) in a.slots.enumerated() {
                    for k in 0 ..< slot.count {
                        let sum = (Double(generator.next() % 2_000_001) - 1_000_000) * 4096
                        sums[slot.offset + k] = sum
                        a.gradients[slot.offset + k] = Float(sum * factors[s])
                    }
                }
                viaArena.step(arena: a)
                sums.withUnsafeBufferPointer { viaSums.step(arena: b, gradients: .exactSums($0.baseAddress!, factors: factors)) }
            }
            for slot in a.slots {
                XCTAssertEqual(
                    a.parameter(slot).storage.map(\.bitPattern), b.parameter(slot).storage.map(\.bitPattern),
                    "\(viaArena.summary), slot \(slot.name)")
            }
        }
    }
}
