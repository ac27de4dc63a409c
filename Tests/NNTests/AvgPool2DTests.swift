import XCTest

@testable import NN

final class AvgPool2DTests: XCTestCase {
    let cases: [(pool: (Int, Int), stride: (Int, Int)?, padding: Padding, input: [Int])] = [
        ((2, 2), nil, .valid, [3, 2, 6, 6]),
        ((3, 3), (2, 2), .same, [2, 3, 7, 5]),
        ((3, 2), (1, 1), .valid, [1, 2, 5, 6]),
        ((2, 3), (2, 1), .explicit(top: 1, bottom: 0, left: 2, right: 1), [2, 1, 5, 4])
    ]

    func testFastMatchesReference() throws {
        for (i, c) in cases.enumerated() {
            let layer = AvgPool2D(poolSize: c.pool, stride: c.stride, padding: c.padding)
            let g = try layer.geometry(for: Array(c.input.dropFirst()))
            let planes = c.input[0] * g.C
            let x = randomValues(c.input.reduce(1, *), seed: UInt64(i))
            var y = [Float](repeating: 0, count: planes * g.PQ), yRef = y
            AvgPool2D.forward(&y, x, planes, g)
            AvgPool2D.forwardReference(&yRef, x, planes, g)
            // Float vs Double sums of at most 9 O(1) values: a few ulps.
            assertClose(y, yRef, tolerance: 1e-6, "case \(i)")
        }
    }

    func testBackwardMatchesFiniteDifferences() throws {
        for c in cases {
            var model = try Sequential(
                inputShape: Array(c.input.dropFirst()),
                layers: [AvgPool2D(poolSize: c.pool, stride: c.stride, padding: c.padding)])
            // Averaging is linear: only float32 rounding in the forward passes limits agreement.
            checkGradients(model: &model, input: Tensor(shape: c.input, values: randomValues(c.input.reduce(1, *), seed: 6)))
        }
    }

    func testMatchesNumpyFixture() throws {
        // Computed with numpy: means over clipped windows (padding excluded, like Keras), 3x3 pool,
        // stride 2, "same" padding on 5x5; the backward is the transpose of the pooling matrix built
        // column by column from unit inputs, applied to gy = 1...9.
        let x: [Float] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3]
        var model = try Sequential(inputShape: [1, 5, 5], layers: [AvgPool2D(poolSize: (3, 3), stride: (2, 2), padding: .same)])
        let y = forwardBatch(&model, Tensor(shape: [1, 1, 5, 5], values: x))
        // Tolerance: float32 sums and divisions of small integers, a few ulps.
        assertClose(y.storage, [3.75, 3.1666667, 3.5, 4.8333335, 5.5555553, 6.0, 3.25, 4.1666665, 4.75], tolerance: 1e-6)
        let gx = model.backward(Tensor(shape: [1, 1, 3, 3], values: (1 ... 9).map(Float.init)))
        assertClose(
            gx.storage,
            [
                0.25, 0.5833333, 0.33333334, 1.0833334, 0.75, 0.9166667, 1.8055556, 0.8888889, 2.6388888,
                1.75, 0.6666667, 1.2222222, 0.5555556, 1.5555556, 1.0, 2.4166667, 4.3055553, 1.8888888,
                5.138889, 3.25, 1.75, 3.0833333, 1.3333334, 3.5833333, 2.25
            ], tolerance: 1e-6)
    }

    func testPaddingIsExcludedFromTheAverage() throws {
        // A corner window of a same-padded 2x2 pool over a 3x3 input of ones holds one real
        // element; including the padding would give 0.25.
        var model = try Sequential(inputShape: [1, 3, 3], layers: [AvgPool2D(poolSize: (2, 2), padding: .same)])
        let y = forwardBatch(&model, Tensor(shape: [1, 1, 3, 3], repeating: 1))
        XCTAssertEqual(y.storage, [1, 1, 1, 1])
    }

    func testWindowThatDoesNotFitThrows() {
        XCTAssertThrowsError(try AvgPool2D(poolSize: (5, 5)).outputShape(for: [3, 4, 4])) { error in
            XCTAssertTrue("\(error)".contains("[3, 4, 4]"), "\(error)")
        }
    }
}
