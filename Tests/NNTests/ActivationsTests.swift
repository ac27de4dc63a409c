import XCTest

@testable import NN

final class ActivationsTests: XCTestCase {
    func testReLUMatchesHandComputedValues() throws {
        var model = try Sequential(inputShape: [5], layers: [ReLU()])
        let y = forwardBatch(&model, Tensor(shape: [1, 5], values: [-2, -0.5, 0, 0.5, 3]))
        XCTAssertEqual(y.storage, [0, 0, 0, 0.5, 3])
        // The subgradient at 0 is 0, like PyTorch.
        XCTAssertEqual(model.backward(Tensor(shape: [1, 5], repeating: 1)).storage, [0, 0, 0, 1, 1])
    }

    func testReLUBackwardMatchesFiniteDifferences() throws {
        var model = try Sequential(inputShape: [2, 3, 3], layers: [ReLU()])
        // Values at least 0.05 from the kink, so the eps = 1e-2 step never crosses it.
        let x = distinctValues(36, seed: 1).map { $0 + 0.05 }
        checkGradients(model: &model, input: Tensor(shape: [2, 2, 3, 3], values: x))
    }

    func testReLUFastKernelsMatchReference() {
        // Odd counts exercise the scalar tail; exact zeros and -0 the boundary of both passes.
        for count in [1, 7, 8, 29, 100] {
            var x = randomValues(count, seed: UInt64(count))
            for i in stride(from: 0, to: count, by: 5) { x[i] = 0 }
            if count > 3 { x[3] = -0.0 }
            let gy = randomValues(count, seed: UInt64(count) + 100)
            var y = [Float](repeating: 9, count: count), yRef = y
            ReLU.forward(&y, x, count)
            ReLU.forwardReference(&yRef, x, count)
            // Both select an existing value or 0: exact equality (bit patterns, so -0 counts).
            XCTAssertEqual(y.map(\.bitPattern), yRef.map(\.bitPattern), "forward, count \(count)")
            var gx = [Float](repeating: 9, count: count), gxRef = gx
            ReLU.backward(&gx, gy, y, count)
            ReLU.backwardReference(&gxRef, gy, y, count)
            XCTAssertEqual(gx, gxRef, "backward, count \(count)")
        }
    }

    func testReLUReusesItsBuffersWithoutChangingEarlierResults() throws {
        // Results handed out earlier must keep their values when the layer writes its buffers again.
        var model = try Sequential(inputShape: [3], layers: [ReLU()])
        let y1 = forwardBatch(&model, Tensor(shape: [1, 3], values: [1, -1, 2]))
        let g1 = model.backward(Tensor(shape: [1, 3], values: [5, 6, 7]))
        let y2 = forwardBatch(&model, Tensor(shape: [1, 3], values: [-3, 4, 0]))
        let g2 = model.backward(Tensor(shape: [1, 3], values: [1, 1, 1]))
        XCTAssertEqual(y1.storage, [1, 0, 2])
        XCTAssertEqual(g1.storage, [5, 0, 7])
        XCTAssertEqual(y2.storage, [0, 4, 0])
        XCTAssertEqual(g2.storage, [0, 1, 0])
    }

    func testFlattenKeepsValuesAndRestoresTheShape() throws {
        var model = try Sequential(inputShape: [2, 3, 4], layers: [Flatten()])
        let x = Tensor(shape: [2, 2, 3, 4], values: randomValues(48, seed: 2))
        let y = forwardBatch(&model, x)
        XCTAssertEqual(y.shape, [2, 24])
        XCTAssertEqual(y.storage, x.storage)
        XCTAssertEqual(model.backward(y).shape, [2, 2, 3, 4])
    }

    func testComposedModelBackwardMatchesFiniteDifferences() throws {
        // Every layer type in one model, built from its description, checked end to end.
        let spec = ModelSpec(
            name: "all", inputShape: [2, 6, 6],
            layers: [
                .conv2d(filters: 3, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
                .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: false),
                .relu,
                .avgPool2d(pool: [2, 2], stride: [1, 1], padding: .valid),
                .maxPool2d(pool: [2, 2], stride: [2, 2], padding: .same),
                .flatten, .dropout(rate: 0.3), .dense(units: 4, bias: true)
            ])
        var model = try spec.build()
        model.initializeParameters(seed: 9)
        // The first convolution skips its input gradient, so only parameters are checked. Default
        // tolerance (float32 rounding): with these fixed seeds no max-pool window has its top two
        // values within the step, which would show as one large error.
        checkGradients(
            model: &model, input: Tensor(shape: [3, 2, 6, 6], values: randomValues(216, seed: 10)),
            context: ForwardContext(training: true, sampleKeys: [5, 6, 7]), checkInput: false)
    }
}
