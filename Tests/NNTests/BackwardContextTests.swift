import XCTest

@testable import NN

final class BackwardContextTests: XCTestCase {
    /// Records what `forEachBlock` does, in order: "b0..<2" for a block, "p" for a progress call.
    private func trace(count: Int, samplesPerBlock: Int, withProgress: Bool) -> [String] {
        var events: [String] = []
        let context = BackwardContext(progress: withProgress ? { events.append("p") } : nil, samplesPerBlock: samplesPerBlock)
        context.forEachBlock(of: count) { events.append("b\($0.lowerBound)..<\($0.upperBound)") }
        return events
    }

    /// With a callback, blocks of `samplesPerBlock` tile the range, the last one short, and the
    /// callback runs between two blocks only (the caller polls after the layer anyway).
    func testBlocksTileTheRangeWithProgressBetweenThem() {
        XCTAssertEqual(trace(count: 5, samplesPerBlock: 2, withProgress: true), ["b0..<2", "p", "b2..<4", "p", "b4..<5"])
        XCTAssertEqual(trace(count: 3, samplesPerBlock: 1, withProgress: true), ["b0..<1", "p", "b1..<2", "p", "b2..<3"])
        XCTAssertEqual(trace(count: 1, samplesPerBlock: 4, withProgress: true), ["b0..<1"])
        XCTAssertEqual(trace(count: 0, samplesPerBlock: 1, withProgress: true), [])
    }

    /// Without a callback the layer runs its batch in one piece (its numbers stay those of the
    /// unblocked kernels), whatever the block size.
    func testWithoutProgressTheWholeRangeIsOneBlock() {
        XCTAssertEqual(trace(count: 5, samplesPerBlock: 2, withProgress: false), ["b0..<5"])
        XCTAssertEqual(trace(count: 0, samplesPerBlock: 2, withProgress: false), [])
    }

    /// A convolution's backward in blocks gives the gradients of its backward in one piece, bit for
    /// bit (deterministic mode polls only on more than one rank, and its chunks' gradients must not
    /// depend on that), and calls the callback between samples: N − 1 times, one pass over the
    /// samples serving the weight and the input gradients alike.
    func testConvolutionBackwardInBlocksMatchesOnePieceAndPollsBetweenSamples() throws {
        let batch = 4, shape = [3, 7, 6]
        func run(_ context: BackwardContext, inputGradient: Bool) throws -> (gradients: [Float], gx: [Float]) {
            var conv = Conv2D(filters: 5, kernelSize: (3, 3), stride: (1, 2), padding: .same)
            conv.computesInputGradient = inputGradient
            var model = try Sequential(inputShape: shape, layers: [conv])
            for (i, slot) in model.arena.slots.enumerated() { model.arena.setParameter(slot, randomValues(slot.count, seed: 20 + UInt64(i))) }
            let x = Tensor(shape: [batch] + shape, values: randomValues(batch * shape.reduce(1, *), seed: 21))
            let y = model.forward(x, context: ForwardContext(training: true))
            model.arena.zeroGradients()
            let gx = model.backward(Tensor(shape: y.shape, values: randomValues(y.count, seed: 22)), context: context)
            return (model.arena.gradientSnapshot(), gx.storage)
        }
        for inputGradient in [true, false] {
            var polls = 0
            let blocked = try run(BackwardContext(progress: { polls += 1 }), inputGradient: inputGradient)
            let whole = try run(BackwardContext(), inputGradient: inputGradient)
            XCTAssertEqual(blocked.gradients, whole.gradients, "parameter gradients, input gradient \(inputGradient)")
            XCTAssertEqual(blocked.gx, whole.gx, "the input gradient of a sample does not depend on the others")
            XCTAssertEqual(polls, batch - 1, "input gradient \(inputGradient)")
        }
    }

    /// `Sequential.backward(_:context:)` hands the context to every layer: two convolutions in a
    /// model both poll; layers that ignore the context (ReLU, pooling) leave it alone.
    func testSequentialHandsTheContextToEveryLayer() throws {
        var first = Conv2D(filters: 2, kernelSize: (3, 3), padding: .same)
        first.computesInputGradient = false
        var model = try Sequential(
            inputShape: [1, 6, 6],
            layers: [
                first, ReLU(), MaxPool2D(poolSize: (2, 2)),
                Conv2D(filters: 3, kernelSize: (3, 3), padding: .same)
            ])
        model.initializeParameters(seed: 3)
        let batch = 3
        let y = model.forward(
            Tensor(shape: [batch, 1, 6, 6], values: randomValues(batch * 36, seed: 4)),
            context: ForwardContext(training: true))
        var polls = 0
        model.backward(Tensor(shape: y.shape, repeating: 1), context: BackwardContext(progress: { polls += 1 }))
        // Each convolution polls between its samples (one pass for both of its gradients).
        XCTAssertEqual(polls, 2 * (batch - 1))
    }
}
