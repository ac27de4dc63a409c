import XCTest

@testable import NN

/// Asserts that two float arrays agree elementwise within `tolerance` (absolute, scaled up by the
/// magnitude for large values: |a − b| ≤ tolerance · max(1, |b|)).
func assertClose(
    _ actual: [Float], _ expected: [Float], tolerance: Float, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "count differs \(message)", file: file, line: line)
    var worst: (index: Int, error: Float) = (-1, 0)
    for i in 0 ..< min(actual.count, expected.count) {
        let err = abs(actual[i] - expected[i]) / max(1, abs(expected[i]))
        if !(err <= worst.error) { worst = (i, err.isNaN ? .infinity : err) }
    }
    if worst.error > tolerance {
        XCTFail(
            "max error \(worst.error) > \(tolerance) at \(worst.index): \(actual[worst.index]) vs \(expected[worst.index]) \(message)",
            file: file, line: line)
    }
}

/// Deterministic test data: `count` values uniform in [low, high).
func randomValues(_ count: Int, seed: UInt64, low: Float = -1, high: Float = 1) -> [Float] {
    var g = SplitMix64(seed: seed)
    return (0 ..< count).map { _ in low + (high - low) * g.nextUnitFloat() }
}

/// Checks a model's backward against central finite differences.
///
/// The scalar checked is `L = Σ output · v` for a fixed random `v`, so `∂L/∂output = v`. The
/// differences are taken in Double from Float forward passes with step `eps`; float32 rounding in
/// the forward pass limits agreement to about `1e-2` relative for eps = 1e-2 on O(1) values, which
/// is what `tolerance` should allow. Checks the input gradient (unless `checkInput` is false) and
/// every parameter tensor, sampling at most `maxPerTensor` elements of each.
func checkGradients(
    model: inout Sequential, input: Tensor, context: ForwardContext = ForwardContext(training: true),
    eps: Double = 1e-2, tolerance: Double = 2e-2, maxPerTensor: Int = 40, checkInput: Bool = true,
    file: StaticString = #filePath, line: UInt = #line
) {
    let y = model.forward(input, context: context)
    let v = randomValues(y.count, seed: 99)
    func loss(_ x: Tensor) -> Double {
        var m = model
        let out = m.forward(x, context: context)
        var s = 0.0
        for i in 0 ..< out.count { s += Double(out.storage[i]) * Double(v[i]) }
        return s
    }
    model.arena.zeroGradients()
    _ = model.forward(input, context: context)
    let gradInput = model.backward(Tensor(shape: y.shape, values: v))
    func compare(_ analytic: Float, _ numeric: Double, _ what: String) {
        let err = abs(Double(analytic) - numeric) / max(1, abs(numeric))
        if err > tolerance {
            XCTFail("\(what): analytic \(analytic) vs numeric \(numeric) (error \(err) > \(tolerance))", file: file, line: line)
        }
    }
    if checkInput {
        let stride = max(1, input.count / maxPerTensor)
        for i in Swift.stride(from: 0, to: input.count, by: stride) {
            var plus = input, minus = input
            plus.storage[i] += Float(eps)
            minus.storage[i] -= Float(eps)
            let h = Double(plus.storage[i]) - Double(minus.storage[i])
            compare(gradInput.storage[i], (loss(plus) - loss(minus)) / h, "input[\(i)]")
        }
    }
    // Non-trainable slots (running statistics) get no gradient by design.
    for slot in model.arena.slots where slot.trainable {
        let stride = max(1, slot.count / maxPerTensor)
        for j in Swift.stride(from: 0, to: slot.count, by: stride) {
            let p = model.arena.parameters + slot.offset + j
            let saved = p.pointee
            p.pointee = saved + Float(eps)
            let up = Double(p.pointee)
            let lp = loss(input)
            p.pointee = saved - Float(eps)
            let down = Double(p.pointee)
            let lm = loss(input)
            p.pointee = saved
            compare(model.arena.gradients[slot.offset + j], (lp - lm) / (up - down), "\(slot.name)[\(j)]")
        }
    }
}

/// `count` distinct values spaced 0.1 apart, shuffled, centred on zero: a finite-difference step
/// of 1e-2 never changes which element of a pooling window is largest.
func distinctValues(_ count: Int, seed: UInt64) -> [Float] {
    var g = SplitMix64(seed: seed)
    return (0 ..< count).map { Float($0 - count / 2) * 0.1 }.shuffled(using: &g)
}

/// Runs one model forward on a batch and returns the output.
func forwardBatch(_ model: inout Sequential, _ input: Tensor, training: Bool = false, keys: [UInt64]? = nil) -> Tensor {
    let context = ForwardContext(training: training, sampleKeys: keys ?? (0 ..< input.batchSize).map(UInt64.init))
    return model.forward(input, context: context)
}

/// One plain gradient-descent step on every trainable parameter: `p −= learningRate · g`.
func gradientDescentStep(_ model: Sequential, learningRate: Float) {
    for slot in model.arena.slots where slot.trainable {
        for i in slot.range { model.arena.parameters[i] -= learningRate * model.arena.gradients[i] }
    }
}

/// One training step on a fixed batch (forward, loss, zero, backward, descent); returns the
/// summed loss before the step.
@discardableResult
func trainStep(_ model: inout Sequential, loss: any Loss, input: Tensor, labels: [Int32], learningRate: Float) -> Double {
    let keys = (0 ..< input.batchSize).map { UInt64($0) }
    let logits = model.forward(input, context: ForwardContext(training: true, sampleKeys: keys))
    let (sum, gradient) = loss.evaluate(logits: logits, labels: labels)
    model.arena.zeroGradients()
    model.backward(gradient)
    gradientDescentStep(model, learningRate: learningRate)
    return sum
}
