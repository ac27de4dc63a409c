import XCTest

@testable import NN

final class MaxPool2DTests: XCTestCase {
    /// Geometries covering valid/same/explicit padding, overlapping and non-square windows.
    let cases: [(pool: (Int, Int), stride: (Int, Int)?, padding: Padding, input: [Int])] = [
        ((2, 2), nil, .valid, [3, 2, 6, 6]),
        ((3, 3), (2, 2), .same, [2, 3, 7, 5]),
        ((3, 2), (1, 1), .valid, [1, 2, 5, 6]),
        ((2, 3), (2, 1), .explicit(top: 1, bottom: 0, left: 2, right: 1), [2, 1, 5, 4]),
        ((2, 2), nil, .same, [1, 1, 5, 5])
    ]

    func testFastMatchesReference() throws {
        for (i, c) in cases.enumerated() {
            let layer = MaxPool2D(poolSize: c.pool, stride: c.stride, padding: c.padding)
            let g = try layer.geometry(for: Array(c.input.dropFirst()))
            let planes = c.input[0] * g.C
            let x = randomValues(c.input.reduce(1, *), seed: UInt64(i))
            var y = [Float](repeating: 0, count: planes * g.PQ), yRef = y
            var a = [Int](repeating: 0, count: y.count), aRef = a
            MaxPool2D.forward(&y, &a, x, planes, g)
            MaxPool2D.forwardReference(&yRef, &aRef, x, planes, g)
            // Both pick an existing element by the same comparisons: exact equality.
            XCTAssertEqual(y, yRef, "case \(i)")
            XCTAssertEqual(a, aRef, "case \(i)")
        }
    }

    func testPairwiseKernelMatchesReference() throws {
        // 2x2/stride-2 windows: widths with 8+ outputs (vector path and its ragged end), 4 to 7
        // (four-lane path and its ragged end), fewer (scalar path), odd sizes (a last row/column no window reaches), and values drawn from a
        // few levels so that ties are common.
        for (i, input) in [[2, 3, 28, 28], [1, 2, 14, 14], [1, 1, 7, 7], [2, 1, 5, 33], [1, 2, 6, 20], [1, 3, 9, 11], [2, 2, 4, 8]].enumerated() {
            let g = try MaxPool2D().geometry(for: Array(input.dropFirst()))
            XCTAssertTrue(g.isPairwise)
            let planes = input[0] * g.C
            let x = randomValues(input.reduce(1, *), seed: UInt64(i) + 40).map { ($0 * 3).rounded() }
            var y = [Float](repeating: 0, count: planes * g.PQ), yRef = y
            var a = [Int](repeating: -1, count: y.count), aRef = a
            MaxPool2D.forwardPairs(&y, &a, x, planes, g)
            MaxPool2D.forwardReference(&yRef, &aRef, x, planes, g)
            XCTAssertEqual(y, yRef, "input \(input)")
            XCTAssertEqual(a, aRef, "input \(input)")
        }
        // Same padding on odd sizes reaches past the input: not the pairwise kernel's job.
        XCTAssertFalse(try MaxPool2D(padding: .same).geometry(for: [1, 5, 5]).isPairwise)
    }

    func testBackwardMatchesFiniteDifferences() throws {
        for c in cases {
            var model = try Sequential(
                inputShape: Array(c.input.dropFirst()),
                layers: [MaxPool2D(poolSize: c.pool, stride: c.stride, padding: c.padding)])
            // Distinct values 0.1 apart: the eps = 1e-2 step never changes a window's maximum, so the
            // function is linear near the point and the default tolerance (float32 rounding) holds.
            checkGradients(model: &model, input: Tensor(shape: c.input, values: distinctValues(c.input.reduce(1, *), seed: 5)))
        }
    }

    func testMatchesNumpyFixture() throws {
        // Computed with numpy (an independent loop over clipped windows, np.argmax for the first
        // maximum): 3x3 pool, stride 2, Keras "same" padding (1 row/column before and after) on 5x5.
        let x: [Float] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3]
        var model = try Sequential(inputShape: [1, 5, 5], layers: [MaxPool2D(poolSize: (3, 3), stride: (2, 2), padding: .same)])
        let y = forwardBatch(&model, Tensor(shape: [1, 1, 5, 5], values: x))
        XCTAssertEqual(y.shape, [1, 1, 3, 3])
        XCTAssertEqual(y.storage, [9, 6, 5, 9, 9, 9, 6, 8, 8])
        let gx = model.backward(Tensor(shape: [1, 1, 3, 3], values: (1 ... 9).map(Float.init)))
        // Overlapping windows that share a maximum add their gradients (18 gets 8 + 9).
        XCTAssertEqual(gx.storage, [0, 0, 0, 0, 3, 5, 0, 2, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 17, 0, 7, 0, 0, 0, 0])
    }

    func testTiesRouteGradientToFirstElement() throws {
        var model = try Sequential(inputShape: [1, 2, 4], layers: [MaxPool2D(poolSize: (2, 2))])
        _ = forwardBatch(&model, Tensor(shape: [1, 1, 2, 4], values: [1, 1, 2, 2, 1, 1, 2, 2]))
        let gx = model.backward(Tensor(shape: [1, 1, 1, 2], values: [10, 20]))
        XCTAssertEqual(gx.storage, [10, 0, 20, 0, 0, 0, 0, 0])
    }

    func testOutputShapeFollowsFormula() throws {
        // valid: (H − R) / s + 1; same: ceil(H / s).
        XCTAssertEqual(try MaxPool2D(poolSize: (2, 2)).outputShape(for: [4, 28, 28]), [4, 14, 14])
        XCTAssertEqual(try MaxPool2D(poolSize: (3, 3), stride: (2, 2)).outputShape(for: [1, 7, 8]), [1, 3, 3])
        XCTAssertEqual(try MaxPool2D(poolSize: (2, 2), padding: .same).outputShape(for: [1, 7, 7]), [1, 4, 4])
    }

    func testWindowLargerThanInputThrows() {
        XCTAssertThrowsError(try MaxPool2D(poolSize: (3, 3)).outputShape(for: [1, 2, 2])) { error in
            XCTAssertTrue("\(error)".contains("does not fit 2x2"), "\(error)")
        }
        XCTAssertThrowsError(
            try MaxPool2D(poolSize: (2, 2), padding: .explicit(top: 2, bottom: 0, left: 0, right: 0))
                .outputShape(for: [1, 4, 4]))
        XCTAssertThrowsError(try MaxPool2D().outputShape(for: [16]))
    }

    func testEmptyBatchGivesEmptyOutput() throws {
        var layer = MaxPool2D()
        let arena = ParameterArena(tensors: [])
        let y = layer.forward(Tensor(shape: [0, 2, 4, 4]), arena: arena, context: ForwardContext(training: true))
        XCTAssertEqual(y.shape, [0, 2, 2, 2])
        XCTAssertEqual(layer.backward(y, arena: arena).shape, [0, 2, 4, 4])
    }
}
