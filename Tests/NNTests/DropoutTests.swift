import XCTest

@testable import NN

final class DropoutTests: XCTestCase {
    let arena = ParameterArena(tensors: [])

    func testSameKeyGivesSameMaskAtAnyBatchPosition() {
        // Sample key 42 at position 0 of a batch of 1 and at position 2 of a batch of 3 (as if on
        // another rank) must be dropped identically.
        var a = Dropout(rate: 0.5), b = Dropout(rate: 0.5)
        let ones = [Float](repeating: 1, count: 20)
        let alone = a.forward(
            Tensor(shape: [1, 20], values: ones), arena: arena,
            context: ForwardContext(training: true, sampleKeys: [42]))
        let batched = b.forward(
            Tensor(shape: [3, 20], repeating: 1), arena: arena,
            context: ForwardContext(training: true, sampleKeys: [7, 8, 42]))
        XCTAssertEqual(alone.storage, Array(batched.storage[40 ..< 60]))
        XCTAssertNotEqual(Array(batched.storage[0 ..< 20]), Array(batched.storage[20 ..< 40]), "different keys, different masks")
    }

    func testMaskMatchesIndependentSplitMix64() {
        // Computed in Python with an independent SplitMix64 (same seed/key mixing, 24-bit unit
        // floats): seed 12345, stream key 0xD50F0000, rate 0.25; keep when u ≥ rate, scale 4/3.
        var layer = Dropout(rate: 0.25)
        let y = layer.forward(
            Tensor(shape: [1, 10], repeating: 1), arena: arena,
            context: ForwardContext(training: true, sampleKeys: [12345]))
        let s: Float = 1 / 0.75
        XCTAssertEqual(y.storage, [s, s, s, s, 0, 0, s, s, 0, 0])
    }

    func testInferenceIsIdentity() {
        var layer = Dropout(rate: 0.9)
        let x = Tensor(shape: [2, 5], values: randomValues(10, seed: 1))
        let y = layer.forward(x, arena: arena, context: ForwardContext(training: false))
        XCTAssertEqual(y, x)
        let g = Tensor(shape: [2, 5], values: randomValues(10, seed: 2))
        XCTAssertEqual(layer.backward(g, arena: arena), g)
    }

    func testKeptUnitsAreScaledAndExpectationIsPreserved() {
        let rate: Float = 0.4, n = 64, f = 1000
        var layer = Dropout(rate: rate)
        let y = layer.forward(
            Tensor(shape: [n, f], repeating: 1), arena: arena,
            context: ForwardContext(training: true, sampleKeys: (0 ..< n).map { UInt64($0) * 7919 }))
        XCTAssertTrue(y.storage.allSatisfy { $0 == 0 || $0 == 1 / (1 - rate) })
        let kept = Double(y.storage.filter { $0 > 0 }.count) / Double(n * f)
        let mean = y.storage.reduce(0.0) { $0 + Double($1) } / Double(n * f)
        // 64,000 Bernoulli draws: the kept fraction's standard error is sqrt(0.24 / 64000) ≈ 0.002,
        // so 0.01 is five standard errors.
        XCTAssertEqual(kept, 0.6, accuracy: 0.01)
        XCTAssertEqual(mean, 1, accuracy: 0.01 / 0.6)
    }

    func testBackwardMatchesFiniteDifferences() throws {
        var model = try Sequential(inputShape: [12], layers: [Dense(units: 8), Dropout(rate: 0.5), Dense(units: 3)])
        model.initializeParameters(seed: 3)
        // The mask is fixed by the keys, so the function is smooth; default tolerance (float32 rounding).
        checkGradients(
            model: &model, input: Tensor(shape: [4, 12], values: randomValues(48, seed: 4)),
            context: ForwardContext(training: true, sampleKeys: [1, 2, 3, 4]))
    }

    func testLayersWithDifferentStreamKeysDrawDifferentMasks() {
        var a = Dropout(rate: 0.5, streamKey: 1), b = Dropout(rate: 0.5, streamKey: 2)
        let context = ForwardContext(training: true, sampleKeys: [9])
        let x = Tensor(shape: [1, 32], repeating: 1)
        XCTAssertNotEqual(a.forward(x, arena: arena, context: context), b.forward(x, arena: arena, context: context))
    }
}
