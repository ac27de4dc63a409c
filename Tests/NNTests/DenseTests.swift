import XCTest

@testable import NN

final class DenseTests: XCTestCase {
    func testBackwardMatchesFiniteDifferences() throws {
        var model = try Sequential(inputShape: [6], layers: [Dense(units: 4), ReLU(), Dense(units: 3)])
        model.initializeParameters(seed: 1)
        checkGradients(model: &model, input: Tensor(shape: [5, 6], values: randomValues(30, seed: 2)))
    }

    func testForwardMatchesHandComputedValues() throws {
        // y = x·Wᵀ + b worked out by hand: W = [[1,2],[3,4],[5,6]], b = [0.5,-1,2], x = [1,-1].
        var model = try Sequential(inputShape: [2], layers: [Dense(units: 3)])
        model.arena.setParameter(model.arena.slots[0], [1, 2, 3, 4, 5, 6])
        model.arena.setParameter(model.arena.slots[1], [0.5, -1, 2])
        let y = model.forward(Tensor(shape: [1, 2], values: [1, -1]), context: ForwardContext(training: false))
        XCTAssertEqual(y.storage, [-0.5, -2, 1])
    }
}
