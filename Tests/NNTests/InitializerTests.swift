import XCTest

@testable import NN

final class InitializerTests: XCTestCase {
    func sample(_ initializer: Initializer, shape: [Int], seed: UInt64) -> [Float] {
        var values = [Float](repeating: 0, count: shape.reduce(1, *))
        var g = SplitMix64(seed: seed)
        values.withUnsafeMutableBufferPointer { initializer.fill($0.baseAddress!, shape: shape, generator: &g) }
        return values
    }

    func variance(_ v: [Float]) -> Double {
        let mean = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
        return v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(v.count)
    }

    func testVariancesMatchTheirDefinitions() {
        // A conv weight [K=64, C=32, 5, 5]: fanIn = 800, fanOut = 1600; 51,200 samples.
        let shape = [64, 32, 5, 5]
        let expected: [(Initializer, Double)] = [
            (.heUniform, 2.0 / 800), (.heNormal, 2.0 / 800),
            (.glorotUniform, 2.0 / 2400), (.glorotNormal, 2.0 / 2400)
        ]
        for (initializer, target) in expected {
            let v = sample(initializer, shape: shape, seed: 1)
            // The sample variance of 51,200 draws has relative standard error ≤ sqrt(2/51200) ≈ 0.6%;
            // 3% is five standard errors.
            XCTAssertEqual(variance(v) / target, 1, accuracy: 0.03, "\(initializer)")
        }
    }

    func testUniformInitializersStayWithinTheirLimit() {
        let limit = Float((6.0 / 800).squareRoot())
        XCTAssertTrue(sample(.heUniform, shape: [64, 32, 5, 5], seed: 2).allSatisfy { abs($0) <= limit })
    }

    func testSameSeedGivesSameValuesAndDifferentSeedsDiffer() {
        for initializer in [Initializer.heUniform, .heNormal, .glorotUniform, .glorotNormal] {
            XCTAssertEqual(sample(initializer, shape: [10, 20], seed: 7), sample(initializer, shape: [10, 20], seed: 7))
            XCTAssertNotEqual(sample(initializer, shape: [10, 20], seed: 7), sample(initializer, shape: [10, 20], seed: 8))
        }
    }

    func testModelInitializationIsReproducible() throws {
        let spec = try ModelSpec.builtin("lenet5", inputShape: [1, 28, 28], classes: 10)
        let a = try spec.build(), b = try spec.build()
        a.initializeParameters(seed: 42)
        b.initializeParameters(seed: 42)
        XCTAssertEqual(a.arena.parameterSnapshot(), b.arena.parameterSnapshot())
    }
}
