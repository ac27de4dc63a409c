import NN

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Training throughput of one replica on one thread: whole training steps (forward, softmax
/// cross-entropy, zero gradients, backward, gradient scaling by 1/N, an Adam step) on a fixed
/// synthetic batch, so data loading is left out.
///
/// The step is validated before it is timed (finite loss, and the loss on the fixed batch falls
/// below its first value during the warm-up steps), then timed step by step with the thread's CPU time (see
/// `KernelBenchmark.now()`); the median step is reported. Release builds only.
public enum TrainingBenchmark {
    /// The arithmetic of one training sample, from the layers' shapes.
    public struct FlopCount {
        /// Forward: 2 × multiply-accumulates of every convolution and dense layer.
        public var forward: Double
        /// Weight gradients: the same products again.
        public var weightGradient: Double
        /// Input gradients that backward computes (the same products, minus the skipped ones).
        public var inputGradient: Double
        /// Input gradients that are skipped (a first convolution's: nobody reads them).
        public var skippedInputGradient: Double
        /// All computed FLOP per sample.
        public var total: Double { forward + weightGradient + inputGradient }
    }

    /// One timed batch size.
    public struct Result {
        public var batch: Int
        /// Median seconds per step (thread CPU time).
        public var stepSeconds: Double
        /// Median seconds per step (wall clock), for comparison on a loaded machine.
        public var wallStepSeconds: Double
        /// Samples per second from the median step.
        public var samplesPerSecond: Double { Double(batch) / stepSeconds }
        /// The loss at the first and the lowest at a later warm-up step (per sample).
        public var firstLoss: Double, lowestLoss: Double
        /// The process's peak resident set after this batch size ran, in bytes.
        public var peakResidentBytes: Int
    }

    /// Errors that stop the benchmark.
    public enum BenchmarkError: Error, CustomStringConvertible {
        /// The training step does not train: timing it would be meaningless.
        case validationFailed(batch: Int, reason: String)

        public var description: String {
            switch self {
            case let .validationFailed(batch, reason):
                return "batch \(batch): the training step failed validation: \(reason); not timing it"
            }
        }
    }

    /// Counts the FLOP of one training sample through `model`'s convolution and dense layers.
    ///
    /// A product of m·n·k multiply-accumulates is 2·m·n·k FLOP; forward, the weight gradient and the
    /// input gradient are one such product each. Pooling, activations and the loss are not counted.
    public static func flops(of model: Sequential) -> FlopCount {
        var count = FlopCount(forward: 0, weightGradient: 0, inputGradient: 0, skippedInputGradient: 0)
        var shape = model.inputShape
        for (i, layer) in model.layers.enumerated() {
            var macs = 0.0, skipsInput = false
            if let conv = layer as? Conv2D, let g = try? conv.geometry(for: shape) {
                macs = Double(g.K) * Double(g.CRS) * Double(g.PQ)
                skipsInput = !conv.computesInputGradient
            } else if let dense = layer as? Dense {
                macs = Double(dense.units) * Double(shape.reduce(1, *))
            }
            count.forward += 2 * macs
            count.weightGradient += 2 * macs
            if skipsInput { count.skippedInputGradient += 2 * macs } else { count.inputGradient += 2 * macs }
            shape = model.outputShapes[i]
        }
        return count
    }

    /// Trains `model` on one fixed synthetic batch: `warmup` validated steps, then `steps` timed ones.
    ///
    /// - Parameters:
    ///   - model: a freshly built model (its parameters are initialized here with `seed`).
    ///   - classes: the number of classes of the synthetic labels.
    ///   - batch: samples per step.
    ///   - warmup: untimed steps (at least 2: a later one's loss must be below the first's).
    ///   - steps: timed steps; the median counts.
    ///   - seed: seeds parameters, images and labels.
    /// - Throws: `BenchmarkError.validationFailed` when the loss is not finite or does not fall.
    public static func run(
        model: inout Sequential, classes: Int, batch: Int, warmup: Int, steps: Int,
        seed: UInt64 = 1
    ) throws -> Result {
        model.initializeParameters(seed: seed)
        // A small step size: random labels on a fixed batch, where Adam's first steps at 1e-3 can overshoot.
        let optimizer = try Adam(learningRate: 1e-4)
        let loss = SoftmaxCrossEntropy()
        var g = SplitMix64(seed: seed, keys: [0xBE4C])
        let sampleCount = model.inputShape.reduce(1, *)
        let input = Tensor(
            shape: [batch] + model.inputShape,
            values: (0 ..< batch * sampleCount).map { _ in g.nextUnitFloat() })
        let labels = (0 ..< batch).map { _ in Int32(g.next() % UInt64(classes)) }
        let keys = (0 ..< batch).map { BatchLoader.sampleKey(seed: seed, epoch: 0, index: $0) }
        let context = ForwardContext(training: true, sampleKeys: keys)
        let scale = 1 / Float(batch)
        var gradLogits = Tensor.empty

        func step() -> Double {
            let logits = model.forward(input, context: context)
            // Into a gradient kept across steps, as the trainer does.
            let sum = loss.evaluate(logits: logits, labels: labels, gradient: &gradLogits)
            model.arena.zeroGradients()
            model.backward(gradLogits)
            // As the trainer does: the optimizer turns the summed gradient into the batch mean.
            optimizer.step(arena: model.arena, gradientScale: scale)
            return sum / Double(batch)
        }

        let warmupSteps = max(warmup, 2)
        var losses: [Double] = []
        for _ in 0 ..< warmupSteps { losses.append(step()) }
        guard losses.allSatisfy({ $0.isFinite }) else {
            throw BenchmarkError.validationFailed(batch: batch, reason: "non-finite loss \(losses)")
        }
        guard losses.dropFirst().min()! < losses.first! else {
            throw BenchmarkError.validationFailed(
                batch: batch, reason: "the loss on a fixed batch did not fall over \(warmupSteps) steps (\(losses))")
        }
        var cpu: [Double] = [], wall: [Double] = []
        var sink = 0.0
        for _ in 0 ..< max(steps, 1) {
            let w0 = wallNow(), c0 = KernelBenchmark.now()
            sink += step()
            cpu.append(KernelBenchmark.now() - c0)
            wall.append(wallNow() - w0)
        }
        KernelBenchmark.blackHole(sink)
        return Result(
            batch: batch, stepSeconds: median(cpu), wallStepSeconds: median(wall),
            firstLoss: losses.first!, lowestLoss: losses.dropFirst().min()!, peakResidentBytes: peakResidentBytes())
    }

    /// The process's peak resident set size so far, in bytes (`getrusage` `ru_maxrss`).
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        #if canImport(Darwin)
            getrusage(RUSAGE_SELF, &usage)
            return Int(usage.ru_maxrss)
        #else
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Int(usage.ru_maxrss) * 1024
        #endif
    }

    static func wallNow() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}
