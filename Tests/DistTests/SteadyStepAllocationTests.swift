import MallocInterposerSwift
import XCTest

@testable import Dist
@testable import NN

#if canImport(Glibc)
    import Glibc
#endif

/// A steady training step allocates nothing on the heap: every layer, the loss and the batch
/// loader reuse the buffers of the step before.
///
/// Allocations are counted by malloc-interposer, whose library (linked into the test executable)
/// replaces malloc, calloc, realloc, posix_memalign and free for the whole process; counting is
/// switched on around the measured code only. Two warm-up steps come first: the first step sizes
/// every buffer, the second lets copy-on-write storage settle into the buffers that stay. One
/// in-process rank, fast mode (the data-parallel parts of the step run too, with nothing to send).
final class SteadyStepAllocationTests: XCTestCase {
    override func setUpWithError() throws {
        // Under a sanitizer the interposer leaves malloc to the sanitizer's allocator, which it
        // cannot count: prove that a known allocation is seen before trusting a zero.
        let seen = allocations { _ = escape([Int](repeating: 1, count: 1000)) }
        guard seen > 0 else {
            throw XCTSkip(
                "malloc is not routed through malloc-interposer in this build (a sanitizer's allocator comes first), so allocations cannot be counted")
        }
    }

    /// Batch norm (synchronized and not), average and max pooling, dropout, on 28x28 samples.
    static let batchNormAvgPoolDropout = ModelSpec(
        name: "bn-avgpool-dropout", inputShape: [1, 28, 28],
        layers: [
            .conv2d(filters: 8, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
            .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: true), .relu,
            .avgPool2d(pool: [2, 2], stride: [2, 2], padding: .valid),
            .conv2d(filters: 16, kernel: [3, 3], stride: [1, 1], padding: .same, bias: false),
            .batchNorm2d(momentum: 0.1, epsilon: 1e-5, synchronized: false), .relu,
            .maxPool2d(pool: [2, 2], stride: [2, 2], padding: .valid),
            .flatten, .dense(units: 32, bias: true), .relu, .dropout(rate: 0.3), .dense(units: 10, bias: true)
        ])

    /// fmnist-cnn: convolutions, ReLU, max pooling, dense layers, dropout, on 28x28 samples.
    func testSteadyStepsOfFmnistCNNAllocateNothing() throws {
        let spec = try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10)
        try assertSteadyStepsAllocateNothing(spec, augmentation: .none)
    }

    /// Batch norm (synchronized and not), average pooling and dropout, with a random augmentation.
    func testSteadyStepsWithBatchNormAvgPoolAndDropoutAllocateNothing() throws {
        let spec = Self.batchNormAvgPoolDropout
        try assertSteadyStepsAllocateNothing(spec, augmentation: try Augmentation(horizontalFlip: true, maxShift: 2))
    }

    /// Each layer's forward and backward, the loss and the batch, on their own: names the part
    /// that allocates when the whole step does.
    func testNoLayerLossOrBatchAllocatesInASteadyStep() throws {
        for name in ["fmnist-cnn", "fmnist-cnn-bn", "lenet5"] {
            var model = try ModelSpec.builtin(name, inputShape: [1, 28, 28], classes: 10).build()
            model.initializeParameters(seed: 1)
            let data = SyntheticPatterns.make(count: 64, shape: [1, 28, 28], classes: 10, seed: 2)
            let loss = SoftmaxCrossEntropy()
            let order = model.executionOrder
            var batch = Tensor(shape: [0]), labels: [Int32] = [], gradLogits = Tensor(shape: [0])
            let indices = Array(0 ..< 16), keys = indices.map { UInt64($0) }
            let context = ForwardContext(training: true, sampleKeys: keys)
            var counts: [String: Int] = [:]
            for step in 0 ..< 4 {
                let measured = step >= 2
                func count(_ part: String, _ body: () -> Void) {
                    if measured { counts[part, default: 0] += allocations(body) } else { body() }
                }
                // As the trainer does: the first layer lets go of the last batch before it is refilled.
                model.releaseInputs()
                count("batch") {
                    BatchLoader.makeBatch(into: &batch, labels: &labels, dataset: data, indices: indices, keys: [])
                }
                var x = batch
                for i in order { count("\(i) \(model.layers[i].summary) forward") { x = model.layers[i].forward(x, arena: model.arena, context: context) } }
                count("loss") { _ = loss.evaluate(logits: x, labels: labels, gradient: &gradLogits) }
                model.arena.zeroGradients()
                var g = gradLogits
                for i in order.reversed() { count("\(i) \(model.layers[i].summary) backward") { g = model.layers[i].backward(g, arena: model.arena) } }
            }
            let allocating = counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }
            XCTAssertTrue(allocating.isEmpty, "\(name): allocations in 2 steady steps: \(allocating.map { "\($0.key): \($0.value)" })")
        }
    }

    /// The whole training loop (`fit`: sampler, micro-batches, the per-step loss allreduce around
    /// the step) allocates nothing in a steady step. Measured as the difference between fits of 12
    /// and 4 steps, after a first fit that pays the one-time initializations (type metadata, lazy
    /// globals). Whole fits differ by a few allocations either way from run to run, so the test
    /// fails on one allocation a step (8 more), not on that noise.
    func testTheTrainingLoopAllocatesNothingInASteadyStep() throws {
        let fewest = try extraFitAllocations(reduction: .fast)
        XCTAssertLessThan(fewest.count, 8, "8 more steps allocated at least \(fewest.count) more times (4 and 12 steps: \(fewest.pairs))")
    }

    /// The same in deterministic mode (chunks of 4).
    func testTheDeterministicTrainingLoopAllocatesNothingInASteadyStep() throws {
        let fewest = try extraFitAllocations(reduction: .deterministic)
        XCTAssertLessThan(fewest.count, 8, "8 more steps allocated at least \(fewest.count) more times (4 and 12 steps: \(fewest.pairs))")
    }

    /// The fewest extra allocations of fitting fmnist-cnn (batch 16) for 12 steps rather than 4, of
    /// three pairs of fits, after a 2-step fit.
    func extraFitAllocations(reduction: ReductionMode) throws -> (count: Int, pairs: [(short: Int, long: Int)]) {
        let spec = try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10)
        let data: Dataset = SyntheticPatterns.make(count: 320, shape: spec.inputShape, classes: 10, seed: 3)
        func fitAllocations(steps: Int) throws -> Int {
            var config = TrainingConfiguration()
            config.globalBatchSize = 16
            config.reduction = reduction
            config.chunkSize = 4
            config.stopAfterSteps = steps
            config.logInterval = 0
            let trainer = try DataParallelTrainer(
                spec: spec, optimizer: SGD(learningRate: 0.01, momentum: 0.9),
                loss: SoftmaxCrossEntropy(), communicator: InProcessCommunicator(),
                configuration: config)
            var thrown: Error?
            let count = allocations { do { try trainer.fit(training: data) } catch { thrown = error } }
            if let thrown { throw thrown }
            return count
        }
        _ = try fitAllocations(steps: 2)
        // The fewest extra allocations of three pairs: a first-time cost that the 2-step fit did
        // not reach (a runtime cache filled, a library call bound on first use) lands in one pair
        // only, while a per-step allocation shows in every pair.
        var pairs: [(short: Int, long: Int)] = []
        for _ in 0 ..< 3 { pairs.append((try fitAllocations(steps: 4), try fitAllocations(steps: 12))) }
        return (pairs.map { $0.long - $0.short }.min()!, pairs)
    }

    /// Deterministic mode (`--reduction deterministic`): chunks of 4 samples, so one rank runs 4
    /// chunks a step, each with its own copy of the layers, the dense layers on all of them at once,
    /// and the exact reducer's integer sums.
    func testSteadyDeterministicStepsOfFmnistCNNAllocateNothing() throws {
        let spec = try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10)
        try assertSteadyDeterministicStepsAllocateNothing(spec)
    }

    /// Deterministic mode with batch norms: a synchronized one (the chunks' statistics summed in
    /// chunk order during forward and backward) and an unsynchronized one (each chunk's statistics
    /// recorded, then applied in chunk order by the reduction).
    func testSteadyDeterministicStepsWithBatchNormAllocateNothing() throws {
        let spec = Self.batchNormAvgPoolDropout
        try assertSteadyDeterministicStepsAllocateNothing(spec)
    }

    /// The dense layers' fused weight product of deterministic mode (`ExactSum.denseChunkProducts`,
    /// over the packed GEMM's `exactChunkProducts`) takes its tiles from the thread's GEMM scratch
    /// and its panel offsets from running sums: a call allocates nothing after the thread's first.
    func testTheDenseChunkProductAllocatesNothing() {
        let chunks = [0 ..< 4, 4 ..< 8, 8 ..< 12, 12 ..< 16]
        let units = 8, features = 8, samples = chunks.last!.upperBound
        let gy = [Float](repeating: 0.5, count: samples * units), x = [Float](repeating: 0.25, count: samples * features)
        var sums = [Double](repeating: 0, count: units * features)
        var count = 0
        for call in 0 ..< 2 {
            sums.withUnsafeMutableBufferPointer { s in
                gy.withUnsafeBufferPointer { g in
                    x.withUnsafeBufferPointer { x in
                        let n = allocations {
                            _ = ExactSum.denseChunkProducts(
                                sums: s.baseAddress!, first: true, mean: nil, count: 1, gy: g.baseAddress!, ldGy: units,
                                x: x.baseAddress!, ldX: features, units: units, features: features,
                                window: 0 ..< units * features, chunks: chunks, scale: 0x1p20)
                        }
                        if call == 1 { count = n }
                    }
                }
            }
        }
        ExactSum.fenceStores()
        XCTAssertEqual(count, 0, "ExactSum.denseChunkProducts over \(chunks.count) chunks allocated \(count) times")
    }

    /// Fails unless 3 steady deterministic steps of `spec` (`steadyDeterministicStepAllocations`)
    /// allocate nothing, naming the part of the step that did.
    func assertSteadyDeterministicStepsAllocateNothing(
        _ spec: ModelSpec, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let measured = try steadyDeterministicStepAllocations(spec, file: file, line: line)
        XCTAssertEqual(
            measured.parts.gradients + measured.parts.reduction + measured.parts.update, 0,
            "\(spec.name), deterministic: 3 steady steps allocated \(measured.parts.gradients) times in computeGradients, \(measured.parts.reduction) in reduceGradients, \(measured.parts.update) in applyUpdate",
            file: file, line: line)
    }

    /// Trains `spec` in deterministic mode (batch 16, chunks of 4, SGD with momentum, one
    /// in-process rank) for 3 warm-up steps and 3 measured ones through the trainer's step
    /// functions, and returns the measured steps' allocations by part. The first step is computed
    /// twice (the exact reducer measures the gradients' magnitudes before it can scale them), so one
    /// more warm-up step than in fast mode; the test fails if a later step is redone.
    func steadyDeterministicStepAllocations(
        _ spec: ModelSpec, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (trainer: DataParallelTrainer, parts: (gradients: Int, reduction: Int, update: Int)) {
        let data: Dataset = SyntheticPatterns.make(count: 128, shape: spec.inputShape, classes: 10, seed: 3)
        let trainer = try Self.trainer(spec) {
            $0.reduction = .deterministic
            $0.chunkSize = 4
        }
        let order = DistributedSampler(datasetCount: data.count, globalBatchSize: 16, seed: 5).permutation(epoch: 0)
        var parts = (gradients: 0, reduction: 0, update: 0)
        for step in 0 ..< 6 {
            let batch = order[step * 16 ..< (step + 1) * 16]
            var thrown: Error?
            let g = allocations {
                do { _ = try trainer.computeGradients(globalBatch: batch, epoch: 0, dataset: data) } catch { thrown = error }
            }
            let r = allocations {
                do { try trainer.reduceGradients(globalBatchSize: 16, scalingInUpdate: true) } catch { thrown = error }
            }
            let u = allocations {
                do { try trainer.applyUpdate() } catch { thrown = error }
            }
            if let thrown { throw thrown }
            XCTAssertEqual(trainer.ddp.exactReducer?.lastStep.attempts, step == 0 ? 2 : 1, "attempts of step \(step)", file: file, line: line)
            if step >= 3 { parts = (parts.gradients + g, parts.reduction + r, parts.update + u) }
        }
        return (trainer, parts)
    }

    /// A trainer of `spec` on one in-process rank: global batch 16, SGD with momentum 0.9, and the
    /// configuration `configure` sets.
    static func trainer(_ spec: ModelSpec, configure: (inout TrainingConfiguration) -> Void) throws -> DataParallelTrainer {
        var config = TrainingConfiguration()
        config.globalBatchSize = 16
        configure(&config)
        return try DataParallelTrainer(
            spec: spec, optimizer: SGD(learningRate: 0.01, momentum: 0.9),
            loss: SoftmaxCrossEntropy(), communicator: InProcessCommunicator(),
            configuration: config)
    }

    /// Trains `spec` for 2 warm-up steps and 3 measured ones (batch 16, SGD with momentum) through
    /// the trainer's step functions, and fails unless the measured steps allocated nothing.
    func assertSteadyStepsAllocateNothing(
        _ spec: ModelSpec, augmentation: Augmentation,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        // Boxed once, as `fit` receives it: converting the struct at each call would allocate the box.
        let data: Dataset = SyntheticPatterns.make(count: 96, shape: spec.inputShape, classes: 10, seed: 3)
        let trainer = try Self.trainer(spec) { $0.augmentation = augmentation }
        let order = DistributedSampler(datasetCount: data.count, globalBatchSize: 16, seed: 5).permutation(epoch: 0)
        var parts = (gradients: 0, reduction: 0, update: 0)
        for step in 0 ..< 5 {
            let batch = order[step * 16 ..< (step + 1) * 16]
            let measured = step >= 2
            var reduceError: Error?
            let g = allocations { _ = try! trainer.computeGradients(indices: batch, epoch: 0, dataset: data) }
            let r = allocations {
                do { try trainer.reduceGradients(globalBatchSize: 16, scalingInUpdate: true) } catch { reduceError = error }
            }
            let u = allocations { try! trainer.applyUpdate() }
            if let reduceError { throw reduceError }
            if measured { parts = (parts.gradients + g, parts.reduction + r, parts.update + u) }
        }
        XCTAssertEqual(
            parts.gradients + parts.reduction + parts.update, 0,
            "\(spec.name): 3 steady steps allocated \(parts.gradients) times in computeGradients, \(parts.reduction) in reduceGradients, \(parts.update) in applyUpdate",
            file: file, line: line)
    }
}

/// The heap allocations `body` makes (malloc, calloc, realloc, aligned allocations).
///
/// Only the calling thread's allocations count: the measured code runs on it (one in-process rank),
/// while threads that other tests of the same process left behind may allocate at any moment, and
/// the interposer's own counters see the whole process.
func allocations(_ body: () -> Void) -> Int {
    measuringThread = pthread_self()
    measuredAllocations = 0
    MallocInterposerSwift.setAllocationHook(countOnTheMeasuringThread)
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    body()
    MallocInterposerSwift.unhook()
    MallocInterposerSwift.setAllocationHook(nil)
    measuringThread = nil
    return measuredAllocations
}

/// The thread `allocations` measures, and what it counted there (written by that thread only).
nonisolated(unsafe) private var measuringThread: pthread_t?
nonisolated(unsafe) private var measuredAllocations = 0

/// The interposer's hook, run inside the allocator on the allocating thread: neither call allocates.
private let countOnTheMeasuringThread: MallocInterposerSwift.AllocationHook = { _ in
    if let thread = measuringThread, pthread_equal(pthread_self(), thread) != 0 { measuredAllocations += 1 }
}

/// Keeps a value alive past the optimizer, so the allocation that made it cannot be removed.
@inline(never) func escape<T>(_ value: T) -> T { value }
