import XCTest

@testable import NN

final class SequentialTests: XCTestCase {
    func testReLUBeforeMaxPoolRunsAfterThePool() throws {
        let cnn = try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10).build()
        // conv relu pool conv relu pool flatten dense relu dropout dense
        XCTAssertEqual(cnn.layers.map(\.summary).filter { $0 == "relu" }.count, 3, cnn.summary)
        XCTAssertEqual(cnn.executionOrder, [0, 2, 1, 3, 5, 4] + Array(6 ..< cnn.layers.count), cnn.summary)
        let chained = try Sequential(inputShape: [2, 4, 4], layers: [ReLU(), ReLU(), MaxPool2D(), Flatten(), ReLU()])
        XCTAssertEqual(chained.executionOrder, [0, 2, 1, 3, 4])
        let averaged = try Sequential(inputShape: [2, 4, 4], layers: [ReLU(), AvgPool2D(), Flatten()])
        XCTAssertEqual(averaged.executionOrder, [0, 1, 2], "only the max commutes with the ReLU")
    }

    /// The hook after each layer's backward comes in reverse execution order and changes nothing;
    /// a replica sharing the parameters gives the same gradients into its own arena.
    func testBackwardHooksAndAReplicaSharingTheParameters() throws {
        var model = try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10).build()
        model.initializeParameters(seed: 3)
        var replica = Sequential(sharingParametersOf: model)
        XCTAssertEqual(replica.arena.parameters, model.arena.parameters, "one parameter buffer")
        XCTAssertNotEqual(replica.arena.gradients, model.arena.gradients, "gradients of its own")
        let x = Tensor(shape: [3, 1, 28, 28], values: randomValues(3 * 784, seed: 4))
        let context = ForwardContext(training: true, sampleKeys: [1, 2, 3])
        let y = model.forward(x, context: context)
        XCTAssertEqual(replica.forward(x, context: context), y)
        let gy = Tensor(shape: y.shape, values: randomValues(y.count, seed: 5))
        var seen: [Int] = []
        let gx = model.backward(gy, context: BackwardContext()) { seen.append($0) }
        XCTAssertEqual(seen, model.executionOrder.reversed())
        XCTAssertEqual(replica.backward(gy), gx)
        XCTAssertEqual(
            Array(UnsafeBufferPointer(start: replica.arena.gradients, count: replica.arena.count)),
            Array(UnsafeBufferPointer(start: model.arena.gradients, count: model.arena.count)))
    }

    /// A hook that throws ends backward at once: the error comes out of `backward`, and no layer
    /// before the one it followed runs (their gradients stay zero).
    func testAThrowingHookEndsBackwardThere() throws {
        struct Refused: Error {}
        var model = try Sequential(inputShape: [6], layers: [Dense(units: 5), ReLU(), Dense(units: 4)])
        model.initializeParameters(seed: 3)
        let y = model.forward(Tensor(shape: [2, 6], values: randomValues(12, seed: 4)), context: ForwardContext(training: true))
        model.arena.zeroGradients()
        var seen: [Int] = []
        XCTAssertThrowsError(
            try model.backward(
                Tensor(shape: y.shape, values: randomValues(y.count, seed: 5)),
                context: BackwardContext()
            ) { i in
                seen.append(i)
                if i == 1 { throw Refused() }
            }
        ) { XCTAssertTrue($0 is Refused) }
        XCTAssertEqual(seen, [2, 1], "the hook after the ReLU threw; the first dense layer did not run")
        let slots = model.arena.slots
        func gradients(_ s: Int) -> [Float] { Array(UnsafeBufferPointer(start: model.arena.gradients + slots[s].offset, count: slots[s].count)) }
        XCTAssertTrue(gradients(2).contains { $0 != 0 }, "the last layer's backward ran")
        XCTAssertTrue(gradients(0).allSatisfy { $0 == 0 } && gradients(1).allSatisfy { $0 == 0 }, "the first layer's did not")
    }

    /// A dense layer whose weight gradient is taken elsewhere adds none, hands over the factors of
    /// the product it skips, and gives the bias and input gradients unchanged.
    func testDenseWeightGradientTakenElsewhere() throws {
        var plain = try Sequential(inputShape: [6], layers: [Dense(units: 4)])
        var taken = try Sequential(inputShape: [6], layers: [Dense(units: 4)])
        plain.initializeParameters(seed: 2)
        taken.initializeParameters(seed: 2)
        var product = [Float](repeating: 0, count: 24)
        var dense = taken.layers[0] as! Dense
        dense.weightGradientTaker = { gy, x, rows in
            for i in 0 ..< rows { for u in 0 ..< 4 { for f in 0 ..< 6 { product[u * 6 + f] += gy[i * 4 + u] * x[i * 6 + f] } } }
            return true
        }
        taken.layers[0] = dense
        let x = Tensor(shape: [5, 6], values: randomValues(30, seed: 6))
        let context = ForwardContext(training: true)
        let gy = Tensor(shape: [5, 4], values: randomValues(20, seed: 7))
        _ = plain.forward(x, context: context)
        _ = taken.forward(x, context: context)
        XCTAssertEqual(taken.backward(gy), plain.backward(gy), "the input gradient")
        let weight = taken.arena.slots[0], bias = taken.arena.slots[1]
        XCTAssertEqual(Array(UnsafeBufferPointer(start: taken.arena.gradients + weight.offset, count: 24)), [Float](repeating: 0, count: 24))
        XCTAssertEqual(
            Array(UnsafeBufferPointer(start: taken.arena.gradients + bias.offset, count: 4)),
            Array(UnsafeBufferPointer(start: plain.arena.gradients + bias.offset, count: 4)))
        let expected = Array(UnsafeBufferPointer(start: plain.arena.gradients + weight.offset, count: 24))
        for (a, b) in zip(product, expected) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// Each layer's slots by index, and the layers that normalize with batch statistics, without
    /// reading names or summaries.
    func testLayersAreQueriedByTypeNotByName() throws {
        let model = try ModelSpec.builtin("fmnist-cnn-bn", inputShape: [1, 28, 28], classes: 10).build()
        XCTAssertEqual(model.slotIndices.count, model.layers.count)
        XCTAssertEqual(model.slotIndices.flatMap { Array($0) }, Array(model.arena.slots.indices), "every slot once, in order")
        for (i, layer) in model.layers.enumerated() {
            let slots = model.slots(ofLayer: i)
            XCTAssertEqual(
                slots.map(\.name),
                layer.parameterSpecs(for: i == 0 ? model.inputShape : model.outputShapes[i - 1]).map {
                    "\(i).\(layer.summary.prefix { $0 != "(" }).\($0.name)"
                })
            XCTAssertEqual(layer.usesBatchStatistics, layer is BatchNorm2D, layer.summary)
            XCTAssertEqual(layer.isSynchronized, (layer as? BatchNorm2D)?.synchronized ?? false, layer.summary)
        }
        XCTAssertTrue(model.layers.contains { $0.usesBatchStatistics })
        let synchronized = try Sequential(inputShape: [2, 4, 4], layers: [BatchNorm2D(synchronized: true), Flatten(), Dense(units: 3)])
        XCTAssertTrue(synchronized.layers[0].isSynchronized)
        XCTAssertEqual(synchronized.slots(ofLayer: 0).map(\.trainable), [true, true, false, false], "scale, shift, running mean and variance")
        XCTAssertEqual(synchronized.slotIndices[1], 4 ..< 4, "a layer without parameters")
    }

    /// The reordered model, whose convolutions pool their own output, against the same layers
    /// unfused, run one by one in the written order: outputs, parameter gradients and input
    /// gradients must be identical, bit for bit, including windows whose values are all negative
    /// (where the written order routes a zero gradient to a zero), a 2×2 pool (the paired kernel)
    /// and a 3×3 pool at stride 2 (overlapping windows, whose gradients add).
    func testReorderedReLUAndMaxPoolGiveTheWrittenOrdersNumbersExactly() throws {
        func layers() -> [any Layer] {
            [
                Conv2D(filters: 4, kernelSize: (3, 3), padding: .same), ReLU(), MaxPool2D(),
                Conv2D(filters: 3, kernelSize: (3, 3), padding: .same), ReLU(), MaxPool2D(poolSize: (3, 3), stride: (2, 2)),
                Flatten(), Dense(units: 5)
            ]
        }
        var fused = try Sequential(inputShape: [2, 9, 10], layers: layers())
        var plain = try Sequential(inputShape: [2, 9, 10], layers: layers(), fusingPools: false)
        XCTAssertEqual(fused.executionOrder, [0, 2, 1, 3, 5, 4, 6, 7])
        XCTAssertEqual(fused.layers.compactMap { ($0 as? Conv2D)?.fusedPool?.summary }, [fused.layers[2].summary, fused.layers[5].summary])
        XCTAssertEqual(fused.layers.compactMap { ($0 as? MaxPool2D)?.isFused }, [true, true])
        XCTAssertEqual(plain.layers.compactMap { ($0 as? MaxPool2D)?.isFused }, [false, false])
        // Fusion belongs to the model: a fused layer taken into another model without its pool is plain again.
        var alone = try Sequential(inputShape: [2, 9, 10], layers: [fused.layers[0]])
        XCTAssertNil((alone.layers[0] as? Conv2D)?.fusedPool)
        alone.initializeParameters(seed: 5)
        XCTAssertEqual(
            alone.forward(
                Tensor(shape: [1, 2, 9, 10], values: randomValues(180, seed: 2)),
                context: ForwardContext(training: false)
            ).shape, [1, 4, 9, 10])
        fused.initializeParameters(seed: 5)
        plain.initializeParameters(seed: 5)
        // Shift the inputs down so that many windows hold no positive value after the first conv.
        let x = Tensor(shape: [3, 2, 9, 10], values: randomValues(540, seed: 8, low: -1.5, high: 0.7))
        let context = ForwardContext(training: true)

        let y = fused.forward(x, context: context)
        var a = x
        for i in plain.layers.indices { a = plain.layers[i].forward(a, arena: plain.arena, context: context) }
        XCTAssertEqual(y, a)

        let gy = Tensor(shape: y.shape, values: randomValues(y.count, seed: 9))
        fused.arena.zeroGradients()
        plain.arena.zeroGradients()
        let gx = fused.backward(gy)
        var g = gy
        for i in plain.layers.indices.reversed() { g = plain.layers[i].backward(g, arena: plain.arena) }
        XCTAssertEqual(gx, g)
        XCTAssertEqual(fused.arena.gradientSnapshot(), plain.arena.gradientSnapshot())
        XCTAssertTrue(
            gx.storage.contains { $0 != 0 } && fused.arena.gradientSnapshot().contains { $0 != 0 },
            "the comparison must not be between all-zero gradients")

        // Backward in blocks of samples (polling between them) routes each block's samples alike.
        var polls = 0
        fused.arena.zeroGradients()
        let blocked = fused.backward(gy, context: BackwardContext(progress: { polls += 1 }, samplesPerBlock: 2)) { _ in }
        XCTAssertEqual(blocked, g)
        XCTAssertEqual(fused.arena.gradientSnapshot(), plain.arena.gradientSnapshot())
        XCTAssertGreaterThan(polls, 0)
    }
}
