import NN

#if canImport(Glibc)
    import Glibc
#endif

/// How gradients are summed across ranks.
public enum ReductionMode: String, CaseIterable {
    /// Float32 allreduce of each bucket, started non-blocking as soon as backward finishes it. The
    /// summation order is MPI's, so the last bits may vary with the algorithm it picks.
    case fast
    /// Exact: gradients are scaled to integers (in Double, below 2^53 after summing), summed, and
    /// scaled back. Integer sums do not depend on order, so the result is bitwise reproducible
    /// whatever algorithm MPI uses. The trainer cuts each global batch into fixed chunks that do
    /// not depend on the number of ranks, computes each chunk with batched kernels and adds the
    /// chunks' gradients exactly (`ExactGradientReducer`), so P ranks give bit for bit what one
    /// rank gives on the same global batch. It rounds away gradient bits below about 2^-45 of a
    /// tensor's largest chunk gradient (far below float32 precision). (`GradientReducer` itself,
    /// given a filled arena in this mode, sums it exactly at a scale agreed from its maxima.)
    case deterministic
}

/// How gradients travel on the wire in fast mode.
public enum GradientCompression: String, CaseIterable {
    /// Float32, as computed.
    case none
    /// IEEE binary16 (Horovod's `Compression.fp16`): half the bytes. Each rank's gradient *sum*
    /// is rounded to half (relative error ≤ 2^-11), the ranks' halves are summed in Float32 and
    /// rounded to half after each addition (`HalfPrecision.add`, a user-defined MPI operator, so
    /// P ranks add at most P − 1 more roundings instead of the drift of a pure half accumulator),
    /// and the result is widened to Float32 and scaled by 1/B there. Sums are sent before the 1/B
    /// scaling, so they stay well inside half's normal range (2^-14 … 65504) for usual batches;
    /// an element whose global sum exceeds 65504 becomes inf. Only with more than one rank.
    case fp16
}

/// What the last step's reduction cost on this rank (fast mode).
public struct ReductionStatistics: Equatable {
    /// Buckets reduced.
    public var buckets = 0
    /// Bytes this rank handed to the allreduce (half of the float bytes with fp16).
    public var wireBytes = 0
    /// Seconds from the first bucket's start to the last one's completion as observed (by the
    /// progress thread when one runs, else by a poll between layers or the final wait), so an
    /// upper bound of the communication time, as tight as the polling.
    public var communicationSeconds = 0.0
    /// Seconds `reduce` was blocked waiting for reductions still in flight after backward.
    public var blockedSeconds = 0.0
    /// Seconds spent converting to and from float16 (zero without compression).
    public var conversionSeconds = 0.0
    /// Progress polls made while reductions were in flight.
    public var polls = 0
    /// Seconds spent inside MPI starting buckets and polling them (between layers, or on the
    /// progress thread), before the final wait: the communication work done on this rank's
    /// cores while backward runs. Of `hiddenSeconds`, only this part took time from compute.
    public var mpiCallSeconds = 0.0
    /// Buckets whose dense weight was formed from gathered factors (`--dense-factors`).
    public var factorBuckets = 0
    /// Seconds spent forming those weights' gradients from the gathered factors.
    public var factorSeconds = 0.0

    /// Communication that overlapped backward: total − blocked.
    public var hiddenSeconds: Double { Swift.max(0, communicationSeconds - blockedSeconds) }

    public init() {}
}

/// Averages the gradient arena across ranks: allreduce-sum, then scale by 1/B (B the global batch),
/// since each rank's backward leaves the *sum* over its slice. Uneven slices thus give the exact
/// global mean.
///
/// The arena is cut into buckets in reverse layer order (the order backward finishes them), each a
/// view of the arena; in fast mode a bucket's reduction starts as soon as backward is done with it
/// (`gradientsFinal(from:)`), so communication overlaps the rest of backward (PyTorch DDP,
/// Horovod fusion).
///
/// Open MPI 4.1 has no asynchronous progress thread: a started `MPI_Iallreduce` advances only
/// inside MPI calls. The trainer therefore calls `progress()` (an `MPI_Test` per bucket in flight)
/// after every layer's backward, so each round of the reductions' schedules moves on between
/// layers; how much is hidden shows in `lastStep` (`hiddenSeconds`) and on the timeline.
public final class GradientReducer {
    /// The arena ranges of the buckets, last layers first.
    public let buckets: [Range<Int>]
    /// The summation mode.
    public let mode: ReductionMode
    /// The wire format of fast mode.
    public let compression: GradientCompression
    /// Records each bucket's reduction and the final wait, when set.
    public var timeline: Timeline?
    /// The last completed step's costs on this rank.
    public private(set) var lastStep = ReductionStatistics()
    private let arena: ParameterArena
    private let communicator: Communicator
    /// Float16 staging, arena layout (fp16 only): the wire buffers of the compressed buckets.
    private let halves: UnsafeMutablePointer<UInt16>?

    /// - Parameters:
    ///   - arena: the gradients to reduce (their layout never changes).
    ///   - communicator: the ranks.
    ///   - bucketCapacity: floats per bucket (a slot larger than this gets a bucket of its own).
    ///   - mode: fast or deterministic summation.
    ///   - compression: the wire format of fast mode (deterministic mode sums exactly and ignores it;
    ///     the launcher rejects the combination).
    ///   - denseFactors: with the dense weights' slots (`[units, features]`), each weight alone in
    ///     its bucket travels as its factors (fast mode, several ranks; see `FactoredWeight`).
    public init(
        arena: ParameterArena, communicator: Communicator, bucketCapacity: Int = 1 << 20, mode: ReductionMode = .fast,
        compression: GradientCompression = .none, denseFactors: [Int] = []
    ) {
        precondition(bucketCapacity > 0, "A bucket needs a positive capacity, got \(bucketCapacity).")
        self.arena = arena
        self.communicator = communicator
        self.mode = mode
        self.compression = mode == .fast ? compression : .none
        halves = self.compression == .fp16 && communicator.size > 1 ? UnsafeMutablePointer<UInt16>.allocate(capacity: Swift.max(arena.count, 1)) : nil
        var buckets: [Range<Int>] = []
        var end = arena.count
        var start = arena.count
        // Walk slots last to first; a bucket spans from its lowest slot to the end of the bucket
        // before it, padding included, so the buckets tile the arena.
        for slot in arena.slots.reversed() {
            if end - slot.offset > bucketCapacity && start < end {
                buckets.append(start ..< end)
                end = start
            }
            start = slot.offset
        }
        if start > 0 { start = 0 }
        if end > start { buckets.append(start ..< end) }
        self.buckets = buckets
        var factored: [Int: FactoredWeight] = [:]
        if mode == .fast && communicator.size > 1 {
            for (b, bucket) in buckets.enumerated() {
                factored[b] = FactoredWeight(bucket: bucket, arena: arena, denseWeights: Set(denseFactors))
            }
        }
        factorBuckets = factored
    }

    // A bucket that holds one dense weight and nothing else trainable (`FactoredWeight`) may be
    // sent as its factors: a dense weight's gradient summed over the global batch is `Σ gyᵀ·x`
    // over every sample, so the ranks can gather each other's `[gy | x]` rows (fc1: 4160 floats a
    // sample against its 3.2 M-float gradient) and each form the whole sum with one GEMM, instead
    // of allreducing the gradient (Poseidon's sufficient factors). Each rank then multiplies P
    // times the samples it would alone: worth it where the link, not the core, is the bottleneck.

    /// The buckets that may travel as factors.
    let factorBuckets: [Int: FactoredWeight]

    /// The dense weights that may travel as factors: floats of the weights, and floats a sample of
    /// their factors (what the scaling model takes).
    public var factorSizes: (weightFloats: Int, floatsPerSample: Int) {
        factorBuckets.values.reduce((0, 0)) { ($0.0 + $1.units * $1.features, $0.1 + $1.width) }
    }
    /// This step's rows of each rank (its samples), when the trainer announced them
    /// (`expectFactors`); nil: every bucket is allreduced.
    private var factorRows: [Range<Int>]?
    /// The gathered factors of each factor bucket this step, rows in rank order, in buffers kept
    /// across steps.
    private var factors: [Int: UnsafeMutablePointer<Float>] = [:]
    private var factorBuffers: [Int: GrowingBuffer<Float>] = [:]
    /// Per pending reduction: the factor bucket it gathers, if it does.
    private var gathering: [Int?] = []

    /// Announces a step whose dense weights travel as factors (a collective decision: every rank
    /// passes the same counts): rank r holds `rowsByRank[r]` samples. Call before backward; the
    /// trainer then hands each factor bucket's weight to `storeFactors` instead of adding its
    /// gradient to the arena.
    public func expectFactors(rowsByRank: [Int]) {
        precondition(rowsByRank.count == communicator.size, "expectFactors needs one count per rank (\(communicator.size)), got \(rowsByRank.count).")
        guard !factorBuckets.isEmpty else { return }
        var at = 0
        factorRows = rowsByRank.map { n in
            defer { at += n }
            return at ..< at + n
        }
        for (b, weight) in factorBuckets {
            let buffer = factorBuffers[b] ?? GrowingBuffer()
            factorBuffers[b] = buffer
            factors[b] = buffer.reserve(Swift.max(at * weight.width, 1))
        }
    }

    /// The slot of a dense weight that this step sends as factors (after `expectFactors`).
    public func sendsFactors(slot: Int) -> Bool {
        factorRows != nil && factorBuckets.values.contains { $0.slot == slot }
    }

    /// This rank's factors of dense weight `slot`: gy `[n, units]` and x `[n, features]`, n this
    /// rank's rows (the weight's gradient is not added to the arena: the gathered factors form it).
    public func storeFactors(slot: Int, gradOutput gy: UnsafePointer<Float>, input x: UnsafePointer<Float>) {
        guard let rows = factorRows?[communicator.rank], let (b, weight) = factorBuckets.first(where: { $0.value.slot == slot }),
            let f = factors[b]
        else {
            preconditionFailure("storeFactors(slot: \(slot)) without a factor bucket announced for this step.")
        }
        weight.store(f + rows.lowerBound * weight.width, gradOutput: gy, input: x, count: rows.count)
    }

    /// Forms a factor bucket's weight gradient from the gathered factors: `Σ gyᵀ·x` over every
    /// rank's samples, times `alpha`.
    private func formFromFactors(_ b: Int, alpha: Float) {
        guard let plan = factorBuckets[b], let rows = factorRows?.last?.upperBound, let f = factors[b] else { return }
        let t = Timeline.now()
        let g = arena.gradients + arena.slots[plan.slot].offset
        GEMM.multiply(
            g, ldc: plan.features, f, lda: plan.width, transA: true, f + plan.units, ldb: plan.width, transB: false,
            m: plan.units, n: plan.features, k: rows, alpha: alpha)
        step.factorSeconds += Timeline.seconds(since: t)
        timeline?.record(
            "gradient of bucket \(b) from factors", lane: .compute, from: t, to: Timeline.now(),
            detail: "\(rows) samples")
    }

    deinit { halves?.deallocate() }

    /// Reductions started this step, in bucket order, with their start and observed end times.
    private var pending: [PendingReduction] = []
    private var startedAt: [UInt64] = []
    private var completedAt: [UInt64?] = []
    private var step = ReductionStatistics()

    /// Replaces every rank's gradients with their mean over the global batch, or with their sum
    /// when `leavingScale` (the caller then scales as it reads them: see the return value).
    ///
    /// A collective: every rank calls it once per step with the same `globalBatchSize`. Starts
    /// whatever buckets `gradientsFinal(from:)` has not started yet.
    /// - Parameters:
    ///   - globalBatchSize: B, the number of samples summed over all ranks this step.
    ///   - leavingScale: skip the pass that multiplies the float32 sums by 1/B (the fp16 and exact
    ///     paths write the mean anyway, at no extra cost).
    /// - Returns: the factor that still turns the arena's gradients into the mean: 1/B when the
    ///   scale was left, else 1.
    /// - Throws: `DistError.mpi` when a reduction fails.
    @discardableResult
    public func reduce(globalBatchSize: Int, leavingScale: Bool = false) throws -> Float {
        precondition(globalBatchSize > 0, "Cannot average gradients over an empty global batch.")
        guard mode == .fast else {
            // The exact path divides by B itself.
            try reduceExact(globalBatchSize: globalBatchSize)
            return 1
        }
        try startBuckets { _ in true }
        let waitStart = Timeline.now()
        for k in pending.indices where completedAt[k] == nil {
            try pending[k].wait()
            completedAt[k] = pending[k].completedAt ?? Timeline.now()
        }
        let waitEnd = Timeline.now()
        step.blockedSeconds = Timeline.seconds(since: waitStart, until: waitEnd)
        if let first = startedAt.first, let last = completedAt.compactMap({ $0 }).max() {
            step.communicationSeconds = Timeline.seconds(since: first, until: last)
        }
        if let timeline, !pending.isEmpty {
            timeline.record("wait for reductions", lane: .compute, from: waitStart, to: waitEnd)
            for k in pending.indices {
                if gathering[k] != nil, let rows = factorRows?.last?.upperBound, let plan = factorBuckets[k] {
                    timeline.record(
                        "allgather factors of bucket \(k)", lane: .comm, from: startedAt[k], to: completedAt[k] ?? waitEnd,
                        detail: "\(rows) samples × \(plan.width) floats")
                    continue
                }
                timeline.record(
                    "allreduce bucket \(k)", lane: .comm, from: startedAt[k], to: completedAt[k] ?? waitEnd,
                    detail: "\(buckets[k].count) floats\(compression == .fp16 ? " as fp16" : "")")
            }
        }
        let scale = Float(1.0 / Double(globalBatchSize))
        let g = arena.gradients
        var left: Float = 1
        // Gathered factors become their weight's summed gradient (already scaled where the fp16
        // path scales the others as it widens them).
        for k in gathering.indices { if let b = gathering[k] { formFromFactors(b, alpha: halves != nil ? scale : 1) } }
        if let halves, !pending.isEmpty {
            let t = Timeline.now()
            for (b, bucket) in buckets.enumerated() where !gathering.contains(b) {
                HalfPrecision.decompress(g + bucket.lowerBound, halves + bucket.lowerBound, scale: scale, bucket.count)
            }
            step.conversionSeconds += Timeline.seconds(since: t)
            timeline?.record("fp16 decompress", lane: .compute, from: t, to: Timeline.now())
        } else if leavingScale {
            left = scale
        } else {
            for i in 0 ..< arena.count { g[i] *= scale }
        }
        step.buckets = pending.count
        step.factorBuckets = gathering.compactMap { $0 }.count
        lastStep = step
        step = ReductionStatistics()
        factorRows = nil
        gathering.removeAll(keepingCapacity: true)
        pending.removeAll(keepingCapacity: true)
        startedAt.removeAll(keepingCapacity: true)
        completedAt.removeAll(keepingCapacity: true)
        return left
    }

    /// Tells the reducer that backward will no longer write gradients at arena offsets ≥ `offset`,
    /// so (in fast mode) every bucket lying there starts reducing now, overlapping the rest of
    /// backward; then polls the reductions in flight (`progress()`).
    ///
    /// Every rank starts the same buckets in the same order (buckets are visited last to first),
    /// as non-blocking collectives require; a rank that calls this less often (an empty slice)
    /// starts the rest in `reduce`.
    /// - Throws: `DistError.mpi` when a reduction cannot start.
    public func gradientsFinal(from offset: Int) throws {
        guard mode == .fast else { return }
        try startBuckets { $0.lowerBound >= offset }
        try progress()
    }

    /// Lets MPI advance the reductions in flight (one `MPI_Test` each) and notes those that
    /// completed. Cheap when nothing is in flight; call it between layers of backward.
    ///
    /// Local: ranks may call it different numbers of times.
    /// - Throws: `DistError.mpi` when a reduction failed.
    public func progress() throws {
        guard completedAt.contains(nil) else { return }
        let start = Timeline.now()
        defer { step.mpiCallSeconds += Timeline.seconds(since: start) }
        step.polls += 1
        for k in completedAt.indices where completedAt[k] == nil {
            if try pending[k].test() { completedAt[k] = pending[k].completedAt ?? Timeline.now() }
        }
    }

    private func startBuckets(while ready: (Range<Int>) -> Bool) throws {
        guard communicator.size > 1 else { return }
        while pending.count < buckets.count && ready(buckets[pending.count]) {
            let b = pending.count, bucket = buckets[b]
            let start = Timeline.now()
            var call = start
            if let rows = factorRows, let plan = factorBuckets[b], let f = factors[b] {
                let total = (rows.last?.upperBound ?? 0) * plan.width
                pending.append(
                    try communicator.startAllgather(
                        UnsafeMutableBufferPointer(start: f, count: total),
                        parts: rows.map { $0.lowerBound * plan.width ..< $0.upperBound * plan.width }))
                step.wireBytes += 4 * rows[communicator.rank].count * plan.width
                gathering.append(b)
            } else if let halves {
                HalfPrecision.compress(halves + bucket.lowerBound, arena.gradients + bucket.lowerBound, bucket.count)
                call = Timeline.now()
                step.conversionSeconds += Timeline.seconds(since: start, until: call)
                pending.append(
                    try communicator.startHalfSum(
                        UnsafeMutableBufferPointer(
                            start: halves + bucket.lowerBound,
                            count: bucket.count)))
                step.wireBytes += 2 * bucket.count
            } else {
                pending.append(
                    try communicator.startAllreduce(
                        UnsafeMutableBufferPointer(
                            start: arena.gradients + bucket.lowerBound,
                            count: bucket.count), op: .sum))
                step.wireBytes += 4 * bucket.count
            }
            if gathering.count < pending.count { gathering.append(nil) }
            step.mpiCallSeconds += Timeline.seconds(since: call)
            startedAt.append(start)
            completedAt.append(nil)
        }
    }

    private func reduceExact(globalBatchSize: Int) throws {
        try beginExact(localMaxima: bucketMaxima(), globalBatchSize: globalBatchSize)
        accumulateExact()
        try finishExact(globalBatchSize: globalBatchSize)
    }

    // MARK: Exact (deterministic) summation

    /// The integer-valued sums of the exact mode, arena layout.
    private var exactSums: [Double] = []
    /// Per bucket: the power of two that turns its values into integers (nil: not finite).
    private var exactExponents: [Int?] = []

    /// The largest |gradient| of each bucket in the arena now.
    public func bucketMaxima() -> [Double] {
        let g = arena.gradients
        return buckets.map { bucket in
            var m: Float = 0
            for i in bucket { m = Swift.max(m, abs(g[i])) }
            return Double(m)
        }
    }

    /// Starts an exact sum (a collective): agrees on each bucket's scale from the largest
    /// magnitude any rank will add, and clears the accumulator.
    ///
    /// The scale leaves ⌈log2 max(B, P)⌉ + 1 bits of headroom, so the sum of up to B terms per
    /// rank (or one term per rank) stays below 2^53, where Double holds integers exactly.
    /// - Parameters:
    ///   - localMaxima: per bucket, the largest |value| this rank will accumulate (≥ what
    ///     `bucketMaxima()` returns for each term).
    ///   - globalBatchSize: B, the most terms summed over all ranks.
    public func beginExact(localMaxima: [Double], globalBatchSize: Int) throws {
        precondition(localMaxima.count == buckets.count, "Expected \(buckets.count) bucket maxima, got \(localMaxima.count).")
        var maxima = localMaxima
        try communicator.allreduce(&maxima, op: .max)
        let headroom = Int(Double(Swift.max(globalBatchSize, communicator.size)).log2Ceiling) + 1
        exactExponents = maxima.map { m in
            guard m.isFinite else { return nil }
            return m > 0 ? 52 - headroom - Int(m.exponent) : 0
        }
        exactSums = [Double](repeating: 0, count: arena.count)
    }

    /// Adds the arena's gradients, rounded to integers at the agreed scale, to the exact sum.
    public func accumulateExact() {
        let g = arena.gradients
        exactSums.withUnsafeMutableBufferPointer { sums in
            for (b, bucket) in buckets.enumerated() {
                guard let e = exactExponents[b] else {
                    for i in bucket { sums[i] += Double(g[i]) }  // non-finite: the result is NaN/inf anyway
                    continue
                }
                let up = Double(sign: .plus, exponent: e, significand: 1)
                for i in bucket { sums[i] += (Double(g[i]) * up).rounded() }
            }
        }
    }

    /// Sums the ranks' exact sums (a collective) and writes their mean over B to the gradients.
    ///
    /// Integer sums do not depend on order, so every rank, every run and every way of splitting
    /// the terms among ranks gives the same bits.
    public func finishExact(globalBatchSize: Int) throws {
        try communicator.allreduce(&exactSums, op: .sum)
        let g = arena.gradients, b = Double(globalBatchSize)
        for (k, bucket) in buckets.enumerated() {
            let down = Double(sign: .plus, exponent: -(exactExponents[k] ?? 0), significand: 1)
            for i in bucket { g[i] = Float(exactSums[i] * down / b) }
        }
    }
}

extension Double {
    /// ⌈log2(self)⌉ for self ≥ 1.
    var log2Ceiling: Double { Glibc.ceil(Glibc.log2(Swift.max(self, 1))) }
}
