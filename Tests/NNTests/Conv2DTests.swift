import XCTest

@testable import NN

final class Conv2DTests: XCTestCase {
    /// A one-layer model over `inputShape` with random parameters (bias too, so zero-init does not hide it).
    private func makeModel(_ conv: Conv2D, inputShape: [Int], seed: UInt64) throws -> Sequential {
        let model = try Sequential(inputShape: inputShape, layers: [conv])
        for (i, slot) in model.arena.slots.enumerated() {
            model.arena.setParameter(slot, randomValues(slot.count, seed: seed + UInt64(i)))
        }
        return model
    }

    /// Compares the layer's fast forward and backward with the reference kernels for one configuration.
    ///
    /// Tolerance 1e-4 (relative above 1): the fast path sums in Float (FMA, blocked order), the
    /// reference in Double; with O(1) values the float error is about 1e-7 per term over at most a
    /// few hundred terms here, while an indexing or padding bug gives errors of order 0.1 or more.
    /// Runs on every kernel path this machine can execute (AVX-512 and AVX2 on an AVX-512 CPU).
    private func checkAgainstReference(
        _ conv: Conv2D, inputShape: [Int], batch: Int = 2,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        for path in KernelPath.runnable {
            try KernelPath.with(path) {
                try checkAgainstReference(conv, inputShape: inputShape, batch: batch, path: path, file: file, line: line)
            }
        }
    }

    private func checkAgainstReference(
        _ conv: Conv2D, inputShape: [Int], batch: Int, path: KernelPath,
        file: StaticString, line: UInt
    ) throws {
        var model = try makeModel(conv, inputShape: inputShape, seed: 10)
        let g = try conv.geometry(for: inputShape)
        let x = Tensor(shape: [batch] + inputShape, values: randomValues(batch * inputShape.reduce(1, *), seed: 3))
        let label = "\(conv.summary) on \(inputShape), \(path.rawValue) kernels"

        let y = model.forward(x, context: ForwardContext(training: true))
        var yRef = [Float](repeating: .nan, count: batch * g.K * g.PQ)
        let arena = model.arena
        let weight = arena.parameters + arena.slots[0].offset
        let bias = conv.useBias ? UnsafePointer(arena.parameters + arena.slots[1].offset) : nil
        x.storage.withUnsafeBufferPointer { xp in
            ConvKernels.forwardReference(&yRef, xp.baseAddress!, weight, bias, batch, g)
        }
        XCTAssertEqual(y.shape, [batch, g.K, g.P, g.Q], label, file: file, line: line)
        assertClose(y.storage, yRef, tolerance: 1e-4, "forward \(label)", file: file, line: line)

        // Backward adds into the gradients: start from non-zero values and expect them kept.
        let prior = randomValues(arena.count, seed: 4)
        for i in 0 ..< arena.count { arena.gradients[i] = prior[i] }
        var expected = prior
        let gy = Tensor(shape: y.shape, values: randomValues(y.count, seed: 5))
        let gx = model.backward(gy)
        var gxRef = [Float](repeating: .nan, count: x.count)
        gy.storage.withUnsafeBufferPointer { gyp in
            x.storage.withUnsafeBufferPointer { xp in
                expected.withUnsafeMutableBufferPointer { e in
                    let gb = conv.useBias ? e.baseAddress! + arena.slots[1].offset : nil
                    ConvKernels.backwardWeightReference(
                        e.baseAddress! + arena.slots[0].offset, gb,
                        gyp.baseAddress!, xp.baseAddress!, batch, g)
                }
                ConvKernels.backwardInputReference(&gxRef, gyp.baseAddress!, weight, batch, g)
            }
        }
        assertClose(
            arena.gradientSnapshot(), expected, tolerance: 1e-4, "parameter gradients \(label)",
            file: file, line: line)
        XCTAssertEqual(gx.shape, x.shape, label, file: file, line: line)
        assertClose(gx.storage, gxRef, tolerance: 1e-4, "input gradient \(label)", file: file, line: line)
    }

    func testFastMatchesReferenceAcrossGeometries() throws {
        let paddings: [Padding] = [.same, .valid, .explicit(top: 2, bottom: 0, left: 1, right: 3)]
        for kernel in [1, 3, 5] {
            for stride in [1, 2] {
                for padding in paddings {
                    for (bias, channels) in [(true, 1), (false, 3), (true, 4)] {
                        let conv = Conv2D(
                            filters: 5, kernelSize: (kernel, kernel), stride: (stride, stride),
                            padding: padding, useBias: bias)
                        try checkAgainstReference(conv, inputShape: [channels, 7, 9])
                    }
                }
            }
        }
    }

    func testFastMatchesReferenceForRectangularWindowsAndStrides() throws {
        try checkAgainstReference(
            Conv2D(filters: 3, kernelSize: (2, 5), stride: (1, 3), padding: .same),
            inputShape: [2, 6, 11])
        try checkAgainstReference(
            Conv2D(filters: 7, kernelSize: (5, 1), stride: (2, 1), padding: .valid, useBias: false),
            inputShape: [3, 9, 4])
        // 1×1 stride 1 without padding takes the no-im2col path; with padding it must not.
        try checkAgainstReference(Conv2D(filters: 4, kernelSize: (1, 1)), inputShape: [6, 5, 3])
        try checkAgainstReference(
            Conv2D(filters: 4, kernelSize: (1, 1), padding: .explicit(top: 1, bottom: 0, left: 0, right: 2)),
            inputShape: [2, 5, 3])
    }

    func testFastMatchesReferenceForEveryRowLengthAroundTheVectorWidth() throws {
        // The fast kernels copy and add output rows eight floats at a time with a ragged end that
        // overlaps the last full vector: rows shorter than, equal to and between multiples of eight.
        for width in [5, 8, 13, 16, 17, 23, 24, 31] {
            try checkAgainstReference(Conv2D(filters: 3, kernelSize: (3, 3), padding: .same), inputShape: [2, 3, width])
        }
    }

    func testFastMatchesReferenceWhenChannelsSplitIntoChunks() throws {
        // The fast kernels build the column matrix ~256 rows at a time: 31 channels of 3×3 taps
        // split into chunks of 16 and 15, 13 channels of 5×5 taps into chunks of 7 and 6.
        try checkAgainstReference(
            Conv2D(
                filters: 6, kernelSize: (3, 3), stride: (2, 2),
                padding: .explicit(top: 1, bottom: 2, left: 0, right: 1)),
            inputShape: [31, 7, 6])
        try checkAgainstReference(
            Conv2D(filters: 5, kernelSize: (5, 5), padding: .same, useBias: false),
            inputShape: [13, 5, 9])
    }

    func testPointwiseWithMoreChannelsThanOneChunkMatchesReference() throws {
        // A 1×1 convolution is one GEMM over all of C per sample, so its weight is packed whole
        // even past the ~256-row column chunks (300 channels), and reused by all three samples.
        try checkAgainstReference(Conv2D(filters: 7, kernelSize: (1, 1)), inputShape: [300, 2, 3], batch: 3)
    }

    func testFastMatchesReferenceOnBenchmarkFirstLayers() throws {
        // The Fashion-MNIST convnet's layers at a small batch: sizes that cross the GEMM's blocks.
        try checkAgainstReference(Conv2D(filters: 32, kernelSize: (5, 5), padding: .same), inputShape: [1, 28, 28], batch: 2)
        try checkAgainstReference(Conv2D(filters: 64, kernelSize: (5, 5), padding: .same), inputShape: [32, 14, 14], batch: 1)
    }

    func testBackwardMatchesFiniteDifferences() throws {
        // Two stacked convolutions so the first layer's weights see the second's input gradient.
        // No ReLU between them: a step of eps = 1e-2 crosses its kink for pre-activations near zero
        // and the central difference is then wrong, not the analytic gradient. Default eps 1e-2 /
        // tolerance 2e-2 as documented on checkGradients (float32 forward passes).
        var model = try Sequential(
            inputShape: [2, 6, 7],
            layers: [
                Conv2D(filters: 3, kernelSize: (3, 3), stride: (1, 1), padding: .same),
                Conv2D(filters: 2, kernelSize: (3, 2), stride: (2, 2), padding: .explicit(top: 1, bottom: 0, left: 0, right: 1))
            ])
        model.initializeParameters(seed: 7)
        for slot in model.arena.slots where slot.name.hasSuffix("bias") {
            model.arena.setParameter(slot, randomValues(slot.count, seed: 8))
        }
        checkGradients(model: &model, input: Tensor(shape: [2, 2, 6, 7], values: randomValues(168, seed: 9)))
    }

    func testBackwardMatchesFiniteDifferencesValidNoBias() throws {
        var model = try Sequential(
            inputShape: [3, 8, 8],
            layers: [
                Conv2D(filters: 4, kernelSize: (5, 5), stride: (2, 2), padding: .valid, useBias: false)
            ])
        model.initializeParameters(seed: 11)
        checkGradients(model: &model, input: Tensor(shape: [2, 3, 8, 8], values: randomValues(384, seed: 12)))
    }

    func testFirstLayerSkipsInputGradient() throws {
        var conv = Conv2D(filters: 2, kernelSize: (3, 3), padding: .same)
        conv.computesInputGradient = false
        var model = try makeModel(conv, inputShape: [1, 4, 4], seed: 20)
        let x = Tensor(shape: [1, 1, 4, 4], values: randomValues(16, seed: 21))
        let y = model.forward(x, context: ForwardContext(training: true))
        model.arena.zeroGradients()
        let gx = model.backward(Tensor(shape: y.shape, repeating: 1))
        XCTAssertEqual(gx.shape, [0])
        // With gy = 1 the bias gradient is the number of output pixels, and weights still get gradients.
        XCTAssertEqual(model.arena.gradient(model.arena.slots[1]).storage, [16, 16])
        XCTAssertTrue(model.arena.gradient(model.arena.slots[0]).storage.contains { $0 != 0 })
    }

    func testFixtureFromNumpy() throws {
        // Expected values from an independent numpy implementation (float64, direct loops over an
        // np.pad-ded input, TF "same" padding with the extra row/column at the bottom/right):
        //   N,C,H,W,K,R,S = 1,2,5,6,2,3,3; stride (2,1); padding same -> P,Q = 3,6, pads (1,1),(1,1)
        //   x  = ((arange(60)*5) % 13 - 6)/10 ; w = ((arange(36)*7) % 11 - 5)/10 ; b = [0.5, -0.25]
        //   gy = ((arange(36)*3) % 7 - 3)/10 ; y = conv(x, w) + b ; gradWeight, gradBias, gradInput
        //   printed with '%.6f'.
        let conv = Conv2D(filters: 2, kernelSize: (3, 3), stride: (2, 1), padding: .same)
        var model = try Sequential(inputShape: [2, 5, 6], layers: [conv])
        let ramp = { (count: Int, mul: Int, mod: Int, shift: Int) -> [Float] in
            (0 ..< count).map { Float(($0 * mul) % mod - shift) / 10 }
        }
        model.arena.setParameter(model.arena.slots[0], ramp(36, 7, 11, 5))
        model.arena.setParameter(model.arena.slots[1], [0.5, -0.25])
        let y = model.forward(Tensor(shape: [1, 2, 5, 6], values: ramp(60, 5, 13, 6)), context: ForwardContext(training: true))
        model.arena.zeroGradients()
        let gx = model.backward(Tensor(shape: [1, 2, 3, 6], values: ramp(36, 3, 7, 3)))
        let yExpected: [Float] = [
            0.360000, 0.210000, 0.710000, 0.040000, 0.540000, 0.580000, 1.110000, 0.960000,
            0.150000, 1.030000, -0.170000, 0.060000, 0.040000, 0.460000, 1.110000, -0.190000,
            1.240000, 0.490000, 0.090000, -0.110000, -0.850000, 0.100000, 0.010000, -0.480000,
            -0.050000, -0.430000, 0.260000, -1.000000, -0.050000, 0.310000, -0.200000, -0.360000,
            -0.400000, 0.470000, -1.000000, 0.020000
        ]
        let gradWeightExpected: [Float] = [
            -0.020000, -0.500000, 0.730000, -0.540000, 1.040000, -0.330000, 0.000000, 0.140000,
            -0.360000, -0.080000, 0.020000, -0.380000, 1.100000, -0.720000, -0.070000, -0.440000,
            -0.180000, -0.030000, -0.360000, 0.240000, -0.130000, 0.110000, 0.230000, -0.300000,
            0.710000, -0.450000, 0.040000, 0.720000, -0.360000, 0.390000, -0.050000, -0.430000,
            0.730000, -0.410000, 0.840000, -0.310000
        ]
        let gradBiasExpected: [Float] = [
            -0.100000, -0.200000
        ]
        let gradInputExpected: [Float] = [
            -0.110000, 0.370000, -0.080000, 0.170000, -0.140000, -0.230000, 0.350000, -0.050000,
            0.100000, -0.170000, -0.160000, 0.040000, -0.110000, -0.160000, 0.370000, -0.080000,
            0.170000, -0.010000, -0.420000, 0.430000, -0.050000, 0.100000, -0.170000, 0.080000,
            -0.110000, 0.010000, -0.160000, 0.370000, -0.080000, 0.070000, 0.200000, -0.210000,
            0.090000, 0.110000, -0.220000, 0.230000, 0.030000, -0.100000, 0.240000, 0.160000,
            -0.410000, 0.230000, -0.190000, 0.260000, -0.210000, 0.090000, 0.110000, -0.060000,
            0.020000, 0.190000, -0.100000, 0.240000, 0.160000, -0.300000, 0.190000, -0.320000,
            0.260000, -0.210000, 0.090000, 0.070000
        ]
        // Inputs are tenths (inexact in binary) and sums run over at most 18 products: 1e-5 covers
        // float32 rounding with margin; the literals themselves are exact to 6 decimals.
        assertClose(y.storage, yExpected, tolerance: 1e-5, "y")
        assertClose(model.arena.gradient(model.arena.slots[0]).storage, gradWeightExpected, tolerance: 1e-5, "gradWeight")
        assertClose(model.arena.gradient(model.arena.slots[1]).storage, gradBiasExpected, tolerance: 1e-5, "gradBias")
        assertClose(gx.storage, gradInputExpected, tolerance: 1e-5, "gradInput")
    }

    func testShapeThatDoesNotFitThrowsWithValues() {
        let layers: [any Layer] = [Conv2D(filters: 4, kernelSize: (5, 5), padding: .valid)]
        XCTAssertThrowsError(try Sequential(inputShape: [3, 4, 6], layers: layers)) { error in
            guard case let ModelError.shapeMismatch(_, index, inputShape, _) = error else {
                return XCTFail("expected ModelError.shapeMismatch, got \(error)")
            }
            XCTAssertEqual(index, 0)
            XCTAssertEqual(inputShape, [3, 4, 6])
            let message = String(describing: error)
            for part in ["layer 0", "conv2d(4,5x5", "[3, 4, 6]", "5x5 window", "valid", "4x6"] {
                XCTAssertTrue(message.contains(part), "message lacks '\(part)': \(message)")
            }
        }
        // A convolution after a dense layer gets a 1-D sample: the message names the expected rank.
        XCTAssertThrowsError(try Sequential(inputShape: [8], layers: [Dense(units: 4), Conv2D(filters: 2, kernelSize: (1, 1))])) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("layer 1") && message.contains("[4]") && message.contains("[C, H, W]"), message)
        }
    }
}
