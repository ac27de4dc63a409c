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
        let spec = ModelSpec(name: "all", inputShape: [2, 6, 6], layers: [
            .conv2d(filters: 3, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
            .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: false),
            .relu,
            .avgPool2d(pool: [2, 2], stride: [1, 1], padding: .valid),
            .maxPool2d(pool: [2, 2], stride: [2, 2], padding: .same),
            .flatten, .dropout(rate: 0.3), .dense(units: 4, bias: true)])
        var model = try spec.build()
        model.initializeParameters(seed: 9)
        // The first convolution skips its input gradient, so only parameters are checked. Default
        // tolerance (float32 rounding): with these fixed seeds no max-pool window has its top two
        // values within the step, which would show as one large error.
        checkGradients(model: &model, input: Tensor(shape: [3, 2, 6, 6], values: randomValues(216, seed: 10)),
                       context: ForwardContext(training: true, sampleKeys: [5, 6, 7]), checkInput: false)
    }
}
