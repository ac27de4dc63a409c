import NN

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Timing of the vectorized core: the machine's FMA peak, every GEMM the Fashion-MNIST benchmark
/// convnet issues, whole Conv2D layers, and (when it can be loaded) OpenBLAS on the same GEMMs.
///
/// Each figure is validated against the reference first, warmed up, then timed `repeats` times;
/// a timed sample repeats the operation until it lasts at least 20 ms, and the median sample is
/// reported. Times are the benchmarking thread's CPU time (see `now()`). Release builds only:
/// debug code is many times slower.
public enum KernelBenchmark {
    /// One GEMM exactly as a layer issues it.
    public struct GEMMCase {
        /// Where it comes from, e.g. `conv2 forward`.
        public var name: String
        public var m: Int, n: Int, k: Int
        public var transA: Bool, transB: Bool
        /// 0 when the layer overwrites C, 1 when it accumulates (weight gradients).
        public var beta: Float
        /// How many such calls one batch makes (per-sample convolution GEMMs: the batch size).
        public var callsPerBatch: Int
        /// Row strides of B and C as the layer passes them (the convolutions' column matrix has
        /// rows padded to whole cache lines); nil: the natural width.
        public var bStride: Int? = nil, cStride: Int? = nil
        /// Floating-point operations of one call: 2·m·n·k.
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
        /// `NN`, `NT`, `TN` or `TT`.
        public var transposes: String { (transA ? "T" : "N") + (transB ? "T" : "N") }
    }

    /// One timed GEMM.
    public struct GEMMResult {
        public var gemm: GEMMCase
        /// Median seconds per call of our GEMM.
        public var seconds: Double
        /// Largest relative difference from the reference on the validated rows.
        public var maxError: Float
        /// Median seconds per call of OpenBLAS, when loaded.
        public var openBLASSeconds: Double?
        /// The core's FMA peak in GFLOP/s, from the FMA loop timed in turn with this GEMM (so a
        /// slow or fast spell of a shared machine affects both alike).
        public var peakGFlops: Double
        /// The GEMM's speed as a fraction of `peakGFlops`.
        public var fractionOfPeak: Double { gflops / peakGFlops }
        public var gflops: Double { gemm.flops / seconds / 1e9 }
        public var openBLASGFlops: Double? { openBLASSeconds.map { gemm.flops / $0 / 1e9 } }
        /// Our speed over OpenBLAS's (above 1: ours is faster).
        public var speedupOverOpenBLAS: Double? { openBLASSeconds.map { $0 / seconds } }
    }

    /// One timed convolution layer over a whole batch.
    public struct LayerResult {
        public var name: String
        public var summary: String
        public var forwardSeconds: Double, backwardSeconds: Double
        public var forwardFlops: Double, backwardFlops: Double
    }

    /// Errors that stop a benchmark.
    public enum BenchmarkError: Error, CustomStringConvertible {
        /// The fast kernel disagrees with the reference: timing it would be meaningless.
        case validationFailed(name: String, error: Float, tolerance: Float)

        public var description: String {
            switch self {
            case let .validationFailed(name, error, tolerance):
                return "\(name): fast kernel differs from the reference by \(error) (tolerance \(tolerance)); not timing a wrong kernel"
            }
        }
    }

    /// The Fashion-MNIST benchmark convnet: the built-in `fmnist-cnn` on 1×28×28 samples, 10 classes.
    /// Its layers give every shape below, so the benchmark times what training runs.
    public static let fashionMNISTModel: Sequential = {
        do {
            return try ModelSpec.builtin("fmnist-cnn", inputShape: [1, 28, 28], classes: 10).build()
        } catch {
            preconditionFailure("The built-in fmnist-cnn must build for 1x28x28 samples and 10 classes: \(error)")
        }
    }()

    /// The convolution layers of the benchmark convnet (`conv1`, `conv2`, … in order), with their
    /// per-sample input shapes; the first computes no input gradient, as in training.
    public static let fashionMNISTConvolutions: [(name: String, layer: Conv2D, inputShape: [Int])] = {
        let model = fashionMNISTModel
        var convolutions: [(name: String, layer: Conv2D, inputShape: [Int])] = []
        for (i, layer) in model.layers.enumerated() {
            guard let conv = layer as? Conv2D else { continue }
            convolutions.append(("conv\(convolutions.count + 1)", conv, i == 0 ? model.inputShape : model.outputShapes[i - 1]))
        }
        return convolutions
    }()

    /// The dense layers of the same convnet (`fc1`, `fc2`, …): (name, inputs F, units U).
    public static let fashionMNISTDense: [(name: String, features: Int, units: Int)] = {
        let model = fashionMNISTModel
        var dense: [(name: String, features: Int, units: Int)] = []
        for (i, layer) in model.layers.enumerated() {
            guard let fc = layer as? Dense else { continue }
            let features = (i == 0 ? model.inputShape : model.outputShapes[i - 1]).reduce(1, *)
            dense.append(("fc\(dense.count + 1)", features, fc.units))
        }
        return dense
    }()

    /// Every GEMM one training step of the convnet issues at batch `batch`, with the shapes and
    /// transposes that `ConvKernels` (per sample and channel chunk) and `Dense` (per batch) pass to
    /// `GEMM.multiply`. A convolution's forward GEMMs after the first chunk accumulate (beta 1);
    /// its first-chunk call (beta 0) has the same shape.
    public static func fashionMNISTCases(batch: Int) -> [GEMMCase] {
        var cases: [GEMMCase] = []
        for conv in fashionMNISTConvolutions {
            guard let g = try? conv.layer.geometry(for: conv.inputShape) else { continue }
            // ConvKernels splits each sample's column matrix into equal channel chunks: one GEMM per
            // sample and chunk, with chunk rows in place of C·R·S (a ragged last chunk is smaller).
            let chunkChannels = g.isPointwise ? g.C : ConvKernels.chunkChannels(g)
            let chunks = (g.C + chunkChannels - 1) / chunkChannels
            let rows = chunkChannels * g.R * g.S, calls = batch * chunks
            // The column matrix (B of forward and weight gradient, C of input gradient) has rows
            // `columnStride` apart, except for 1×1 convolutions, which read the input in place.
            let columns = g.isPointwise ? g.PQ : ConvKernels.columnStride(g)
            cases.append(
                GEMMCase(
                    name: "\(conv.name) forward", m: g.K, n: g.PQ, k: rows,
                    transA: false, transB: false, beta: chunks > 1 ? 1 : 0, callsPerBatch: calls,
                    bStride: columns))
            cases.append(
                GEMMCase(
                    name: "\(conv.name) grad weight", m: g.K, n: rows, k: g.PQ,
                    transA: false, transB: true, beta: 1, callsPerBatch: calls, bStride: columns))
            if conv.layer.computesInputGradient {
                cases.append(
                    GEMMCase(
                        name: "\(conv.name) grad input", m: rows, n: g.PQ, k: g.K,
                        transA: true, transB: false, beta: 0, callsPerBatch: calls, cStride: columns))
            }
        }
        for fc in fashionMNISTDense {
            cases.append(
                GEMMCase(
                    name: "\(fc.name) forward", m: batch, n: fc.units, k: fc.features,
                    transA: false, transB: true, beta: 0, callsPerBatch: 1))
            cases.append(
                GEMMCase(
                    name: "\(fc.name) grad weight", m: fc.units, n: fc.features, k: batch,
                    transA: true, transB: false, beta: 1, callsPerBatch: 1))
            cases.append(
                GEMMCase(
                    name: "\(fc.name) grad input", m: batch, n: fc.features, k: fc.units,
                    transA: false, transB: false, beta: 0, callsPerBatch: 1))
        }
        return cases
    }

    /// A GEMM that no layer issues, timed after the convnet's for reference: a large square
    /// product, where panels are long and every block is full, shows what the kernel reaches when
    /// the shape does not limit it (the convnet's products are short in m or k).
    public static let squareReference = GEMMCase(
        name: "square (reference)", m: 1536, n: 1536, k: 1536,
        transA: false, transB: false, beta: 0, callsPerBatch: 0)

    /// Measures one core's single-precision peak in GFLOP/s on the kernel path in use
    /// (`KernelPath.current`) with that path's register-resident FMA loop: twelve independent
    /// vector chains (more than FMA latency × FMA ports), no memory traffic.
    ///
    /// - Parameter repeats: timed runs; the fastest counts.
    public static func measurePeak(repeats: Int = 5) -> Double {
        let path = KernelPath.current, iterations = 4_000_000
        var best = Double.infinity
        var sink: Float = 0
        for _ in 0 ..< max(repeats, 1) + 1 {
            let start = now()
            sink += path.fmaLoop(iterations: iterations, x: 0.999_9, y: 1e-4)
            best = min(best, now() - start)
        }
        blackHole(sink)
        return Double(iterations) * Double(path.flopsPerFMALoopIteration) / best / 1e9
    }

    /// FMA-loop iterations per peak sample taken beside a GEMM (about 0.1 ms; samples repeat the
    /// loop until they last 20 ms, like the GEMM's).
    static let peakIterations = 50_000

    /// Validates one GEMM against the reference, then times it (and OpenBLAS when given).
    ///
    /// - Throws: `BenchmarkError.validationFailed` when the fast kernel is wrong.
    public static func run(_ gemm: GEMMCase, repeats: Int, openBLAS: OpenBLAS?) throws -> GEMMResult {
        let (m, n, k) = (gemm.m, gemm.n, gemm.k)
        let lda = gemm.transA ? m : k, ldb = gemm.bStride ?? (gemm.transB ? k : n), ldc = gemm.cStride ?? n
        // Operands on 64-byte boundaries (as the parameter arena and the column matrices are), so
        // figures do not depend on where an array's storage happens to start.
        let a = AlignedValues(randomValues(m * k, seed: 1)), b = AlignedValues(randomValues((gemm.transB ? n : k) * ldb, seed: 2))
        let c0 = randomValues(m * ldc, seed: 3)
        let c = AlignedValues(c0)
        var maxError: Float = 0
        do {
            let pa = UnsafeBufferPointer(a.buffer), pb = UnsafeBufferPointer(b.buffer), pc = c.buffer
            GEMM.multiply(
                pc.baseAddress!, ldc: ldc, pa.baseAddress!, lda: lda, transA: gemm.transA,
                pb.baseAddress!, ldb: ldb, transB: gemm.transB, m: m, n: n, k: k, beta: gemm.beta)
            // The reference on about 16 rows spread over C (first and last included) keeps validation
            // of the big products under a second; rows are where the blocking over m could go wrong,
            // and every column of those rows is checked.
            var expected = [Float](repeating: 0, count: n)
            for i in Set(stride(from: 0, to: m, by: max(1, m / 16)).map { $0 } + [m - 1]) {
                expected.withUnsafeMutableBufferPointer { pe in
                    for j in 0 ..< n { pe[j] = c0[i * ldc + j] }
                    let rowA = gemm.transA ? pa.baseAddress! + i : pa.baseAddress! + i * lda
                    GEMM.multiplyReference(
                        pe.baseAddress!, ldc: n, rowA, lda: lda, transA: gemm.transA,
                        pb.baseAddress!, ldb: ldb, transB: gemm.transB, m: 1, n: n, k: k, beta: gemm.beta)
                    for j in 0 ..< n {
                        let err = abs(pc[i * ldc + j] - pe[j]) / max(1, abs(pe[j]))
                        maxError = max(maxError, err.isNaN ? .infinity : err)
                    }
                }
            }
        }
        // Float accumulation over k terms of O(1) products against a Double reference.
        let tolerance = 1e-6 * Float(k) + 1e-5
        guard maxError <= tolerance else {
            throw BenchmarkError.validationFailed(name: gemm.name, error: maxError, tolerance: tolerance)
        }
        // Ours and OpenBLAS are sampled alternately, so a busy neighbour on a shared machine slows
        // both alike instead of whichever happened to run at the time.
        let times: [Double] = {
            let pa = UnsafeBufferPointer(a.buffer), pb = UnsafeBufferPointer(b.buffer), cp = c.buffer.baseAddress!
            var bodies: [() -> Void] = [
                {
                    GEMM.multiply(
                        cp, ldc: ldc, pa.baseAddress!, lda: lda, transA: gemm.transA,
                        pb.baseAddress!, ldb: ldb, transB: gemm.transB, m: m, n: n, k: k, beta: gemm.beta)
                }
            ]
            if let blas = openBLAS {
                bodies.append {
                    blas.multiply(
                        cp, ldc: ldc, pa.baseAddress!, lda: lda, transA: gemm.transA,
                        pb.baseAddress!, ldb: ldb, transB: gemm.transB, m: m, n: n, k: k, beta: gemm.beta)
                }
            }
            let path = KernelPath.current
            bodies.append { blackHole(path.fmaLoop(iterations: peakIterations, x: 0.999_9, y: 1e-4)) }
            return medianSeconds(repeats: repeats, bodies)
        }()
        // Bodies in order: ours, OpenBLAS when loaded, the FMA loop.
        let ours = times[0], theirs = openBLAS == nil ? nil : times[1]
        let peak = Double(peakIterations) * Double(KernelPath.current.flopsPerFMALoopIteration) / times.last! / 1e9
        blackHole(c.buffer[0])
        return GEMMResult(gemm: gemm, seconds: ours, maxError: maxError, openBLASSeconds: theirs, peakGFlops: peak)
    }

    /// Times whole Conv2D layers (forward, and backward with its gradient accumulation) at `batch`,
    /// after checking the first sample's forward output against the direct reference.
    ///
    /// - Throws: `BenchmarkError.validationFailed` when the layer's output is wrong.
    public static func runConvolutions(batch: Int, repeats: Int) throws -> [LayerResult] {
        var results: [LayerResult] = []
        for conv in fashionMNISTConvolutions {
            var model = try Sequential(inputShape: conv.inputShape, layers: [conv.layer])
            model.initializeParameters(seed: 1)
            let g = try conv.layer.geometry(for: conv.inputShape)
            let x = Tensor(shape: [batch] + conv.inputShape, values: randomValues(batch * conv.inputShape.reduce(1, *), seed: 4))
            let context = ForwardContext(training: true)
            let y = model.forward(x, context: context)
            // Validate the first sample against the direct reference before timing.
            var expected = [Float](repeating: 0, count: g.K * g.PQ)
            let bias = model.arena.slots.count > 1 ? UnsafePointer(model.arena.parameters + model.arena.slots[1].offset) : nil
            x.storage.withUnsafeBufferPointer { xp in
                ConvKernels.forwardReference(
                    &expected, xp.baseAddress!, model.arena.parameters + model.arena.slots[0].offset,
                    bias, 1, g)
            }
            var maxError: Float = 0
            for i in expected.indices {
                let err = abs(y.storage[i] - expected[i]) / max(1, abs(expected[i]))
                maxError = max(maxError, err.isNaN ? .infinity : err)
            }
            // Float accumulation over C·R·S products against the Double reference.
            let tolerance = 1e-6 * Float(g.CRS) + 1e-5
            guard maxError <= tolerance else {
                throw BenchmarkError.validationFailed(name: "\(conv.name) forward", error: maxError, tolerance: tolerance)
            }
            let gy = Tensor(shape: y.shape, values: randomValues(y.count, seed: 5))
            let forward = medianSeconds(repeats: repeats) { blackHole(model.forward(x, context: context).storage[0]) }
            let backward = medianSeconds(repeats: repeats) { blackHole(model.backward(gy).count) }
            let product = 2 * Double(batch) * Double(g.K) * Double(g.PQ) * Double(g.CRS)
            results.append(
                LayerResult(
                    name: conv.name, summary: conv.layer.summary,
                    forwardSeconds: forward, backwardSeconds: backward, forwardFlops: product,
                    backwardFlops: product * (conv.layer.computesInputGradient ? 2 : 1)))
        }
        return results
    }

    /// Runs `body` twice to warm up, then `repeats` samples of at least 20 ms each; returns the
    /// median seconds per call.
    static func medianSeconds(repeats: Int, _ body: () -> Void) -> Double {
        withoutActuallyEscaping(body) { medianSeconds(repeats: repeats, [$0])[0] }
    }

    /// Like `medianSeconds(repeats:_:)` for several bodies whose samples are taken in turn
    /// (body 0, body 1, …, body 0, …); returns each body's median seconds per call.
    static func medianSeconds(repeats: Int, _ bodies: [() -> Void]) -> [Double] {
        let calls = bodies.map { body -> Int in
            body()
            body()
            var calls = 1
            while true {
                let start = now()
                for _ in 0 ..< calls { body() }
                if now() - start >= 0.02 || calls >= 1 << 20 { return calls }
                calls *= 2
            }
        }
        var samples = [[Double]](repeating: [], count: bodies.count)
        for _ in 0 ..< max(repeats, 1) {
            for (i, body) in bodies.enumerated() {
                let start = now()
                for _ in 0 ..< calls[i] { body() }
                samples[i].append((now() - start) / Double(calls[i]))
            }
        }
        return samples.map { $0.sorted()[$0.count / 2] }
    }

    /// This thread's CPU time in seconds. On an idle core it equals wall time; on a core shared
    /// with other processes it leaves out the time slices they take, which wall time would count.
    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Keeps a result alive so the optimizer cannot drop the work that produced it.
    @inline(never)
    static func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

    /// A copy of some floats on a 64-byte boundary, freed with the object.
    final class AlignedValues {
        let buffer: UnsafeMutableBufferPointer<Float>

        init(_ values: [Float]) {
            buffer = UnsafeMutableBufferPointer(start: AlignedMemory.zeroedFloats(values.count), count: values.count)
            _ = buffer.update(fromContentsOf: values)
        }

        deinit { AlignedMemory.free(buffer.baseAddress!) }
    }

    /// Deterministic operands in [-1, 1).
    static func randomValues(_ count: Int, seed: UInt64) -> [Float] {
        var g = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in 2 * g.nextUnitFloat() - 1 }
    }
}
