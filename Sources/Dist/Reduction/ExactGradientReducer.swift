import Foundation
import NN

#if canImport(Glibc)
    import Glibc
#endif

/// What the last step's exact reduction did on this rank.
public struct ExactReductionStatistics: Equatable {
    /// Attempts the step took: 1, or 2 when the agreed scales did not fit the gradients (the first
    /// step of a run, or magnitudes that moved by more than the headroom) and the step was redone.
    public var attempts = 0
    /// Bytes this rank sent: its terms for the other ranks' parts (4 or 8 an element), then its
    /// parts of the means or, after a sharded step, of the parameters (4 an element).
    public var wireBytes = 0
    /// Seconds `finish` and `shareParameters` were blocked (the wait for the terms, the maxima's
    /// allreduce, the gathers).
    public var blockedSeconds = 0.0
    /// Seconds spent turning chunk gradients into integers and adding them.
    public var accumulateSeconds = 0.0
    /// Buckets whose dense weight was summed from gathered factors (`ExactGradientReducer.FactorPlan`).
    public var factorBuckets = 0

    public init() {}
}

/// Sums a step's chunk gradients exactly: each chunk's float gradient is turned into integers at a
/// per-tensor power-of-two scale agreed before the step, added into Double accumulators (integers
/// below 2^53 are exact in Double, so the order of additions cannot change a bit), summed across
/// ranks in buckets (started during the last chunk's backward, like the fast path), and rounded
/// once to the mean at the end.
///
/// On several ranks a bucket is reduce-scattered, then gathered: each rank owns a part of every
/// bucket (`parts`), receives the other ranks' terms for its part (`startExchange`), adds them to
/// its own, writes its part's float mean, and the means are gathered into every rank's gradients
/// (`startAllgather`, 4 bytes an element instead of the sums' 8). A rank with a single chunk in the
/// step sends that chunk's float gradient as it is (`Wire.floats`: 4 bytes an element, and no
/// conversion on its side); its receivers turn it into integers, which gives the integers its own
/// conversion would. A rank with several chunks sends their Double sums (`Wire.sums`).
///
/// The scale of tensor s is 2^e with e = 52 − h − ⌈log2 T⌉ − E_s, where T bounds the terms (chunks)
/// per step, h = `headroomBits`, and E_s is the exponent of the largest |chunk gradient| of tensor s
/// the ranks agreed on after the previous step. Any term then stays below 2^(53 − ⌈log2 T⌉) as long
/// as this step's largest magnitude is below 2^(E_s + h + 1), and so does any sum of T terms below
/// 2^53. After the sums, a max-allreduce of this step's largest magnitudes checks that bound on
/// every rank; when it fails (an overflow, never silent), or when magnitudes fell so far that the
/// integers would keep fewer bits than float32 (`shrinkBits`), or on the first step (no agreed
/// exponent yet), `finish` returns false and the caller recomputes the step at the measured scales:
/// the same chunks give the same gradients, so the second attempt fits. Every decision is taken
/// on global values that do not depend on the number of ranks, so neither do the results.
///
/// Rounding: each term loses at most 2^-(e+1); T terms at most T · 2^-(e+1) ≈ 2^(E_s + h − 52) of
/// the tensor's scale, some 2^-47 of its largest magnitude with h = 4: far below float32's 2^-24.
public final class ExactGradientReducer {
    /// Bits of growth of a tensor's largest gradient magnitude, step to step, that fit without a redo.
    public static let headroomBits = 4
    /// Bits a tensor's largest magnitude may fall below the agreed one before the step is redone
    /// (beyond that the integers would keep fewer bits than float32 for it).
    public static let shrinkBits = 12

    /// The arena ranges reduced as one (`GradientReducer`'s plan: last layers first).
    public let buckets: [Range<Int>]
    /// Per arena slot: the exponent of the largest |chunk gradient| agreed after the last step
    /// (nil: not known yet, or not trainable). A checkpoint records them, so a resumed run scales
    /// like the run that wrote it.
    public private(set) var exponents: [Int?]
    /// The last completed step's figures on this rank.
    public internal(set) var lastStep = ExactReductionStatistics()
    /// Where the last completed step's mean gradient lies: the arena, or (`finish(…, writingMean:
    /// false)`) the sums with their factors (one rank) or this rank's parts of the arena (several
    /// ranks: a sharded step). Valid until the next `begin`.
    public internal(set) var gradients = GradientSource.arena(scale: 1)
    let arena: ParameterArena
    let communicator: Communicator
    /// Integer-valued accumulators, arena layout.
    let sums: UnsafeMutablePointer<Double>
    /// Per slot: 2^e of the current attempt, and this rank's largest |term| so far.
    var scales: [Double]
    var maxima: [Float]
    /// Per slot: no term added this attempt yet (its accumulators hold stale values until the
    /// first term is written over them, or they are cleared before the slot's bucket is sent).
    var fresh: [Bool]
    /// What a rank sends for its terms: its one chunk's float gradients, or the Double sums of its
    /// chunks.
    enum Wire { case floats, sums }
    /// Per rank, this attempt (several ranks only).
    var wires: [Wire] = []
    /// The sample count the means are taken over (several ranks: given when the buckets start).
    var meanCount: Int?
    /// Several ranks: the buckets in flight, in bucket order.
    var exchanges: [BucketExchange] = []
    /// This rank's part of each bucket, as of the last `finish` (several ranks).
    var ownParts: [Range<Int>] = []
    /// Where each bucket's terms from the other ranks arrive (bucket by bucket, at most 8 bytes
    /// an element of this rank's part per sending rank), and a cache-sized block of Double sums.
    let received = GrowingBuffer<UInt8>()
    let tile = GrowingBuffer<Double>()
    /// `accumulateDense`'s bias gradient of a chunk.
    private let block = GrowingBuffer<Float>()
    /// Per slot: the mean is in the arena already (`accumulateDense` on a single rank), over this
    /// many samples; `finish` checks the count and does not write it again.
    private var meanWritten: [Int?]
    var step = ExactReductionStatistics()
    /// `finish`'s buffers, kept from step to step: the largest magnitudes agreed across ranks, and
    /// per slot the factor that turns the sums into the mean (`GradientSource.exactSums`).
    private var agreedMaxima: [Double] = []
    private var meanFactors: [Double] = []
    private let accumulateLock = NSLock()
    /// The arena slots of dense layers' weights (`[units, features]`), whose gradients
    /// `accumulateDense` forms from the layer's input and output gradient.
    private let denseWeights: Set<Int>
    /// A bucket whose only trainable slot is a dense weight, on several ranks with the step in one
    /// micro-batch: the ranks gather each other's factors of it (every sample's output gradient and
    /// input, `[gy | x]` a row) instead of exchanging its terms, and each computes its own part of
    /// the weight's gradient from every chunk (`sumPart`). The factors are some hundred times
    /// smaller than the gradient (fc1: a sample's 4160 floats against 3.2 M), and no rank writes,
    /// sends or reads the weight's Double sums.
    struct FactorPlan {
        let weight: FactoredWeight
    }
    /// Whether every rank's optimizer state is complete (false after a sharded step: each rank
    /// updated the moments of its own parts only).
    public internal(set) var optimizerStateShared = true

    /// This attempt's factor plans, by bucket.
    var factorPlans: [Int: FactorPlan] = [:]
    /// This attempt's factor plans share these: each rank's rows of the gathered factors (its
    /// chunks' samples, in chunk order), and the step's chunks as rows of the gathered factors
    /// (copies kept from step to step).
    var factorRankRows: [Range<Int>] = []
    var factorChunks: [Range<Int>] = []
    /// Per bucket: the dense weight that could travel as its factors, if the bucket holds one alone.
    private let factoredWeights: [FactoredWeight?]
    /// Per bucket: each rank's part (arena ranges, in rank order), and the same relative to the
    /// bucket's start (for gathers); fixed by the buckets and the number of ranks.
    let bucketParts: [[Range<Int>]]
    let gatherParts: [[Range<Int>]]
    /// Per bucket, while its exchange is in flight: where each rank's terms for this rank's part
    /// arrive (byte offsets), kept from step to step; and the counts and offsets of the exchange
    /// being started.
    var receivedAtByBucket: [[Int]]
    var exchangeCounts: (send: [Int], sendOffsets: [Int], receive: [Int]) = ([], [], [])
    var factorParts: [Range<Int>] = []
    /// `shareParameters`' gathers in flight.
    var parameterGathers: [PendingReduction] = []
    /// The gathered factors (rows of `units + features` floats, every rank's samples in chunk
    /// order), one region per factor bucket.
    private let factors = GrowingBuffer<Float>()
    var factorRows: [Int: UnsafeMutablePointer<Float>] = [:]

    /// - Parameters:
    ///   - arena: the gradients (each chunk's backward adds into it; `accumulate` clears it).
    ///   - communicator: the ranks.
    ///   - buckets: arena ranges tiling the arena, in the order backward finishes them.
    ///   - denseWeights: the arena slots of dense layers' weights (the trainer passes their
    ///     gradients to `accumulateDense`).
    public init(arena: ParameterArena, communicator: Communicator, buckets: [Range<Int>], denseWeights: [Int] = []) {
        self.denseWeights = Set(denseWeights)
        self.arena = arena
        self.communicator = communicator
        self.buckets = buckets
        exponents = [Int?](repeating: nil, count: arena.slots.count)
        scales = [Double](repeating: 1, count: arena.slots.count)
        maxima = [Float](repeating: 0, count: arena.slots.count)
        fresh = [Bool](repeating: true, count: arena.slots.count)
        meanWritten = [Int?](repeating: nil, count: arena.slots.count)
        sums = UnsafeMutablePointer<Double>.allocate(capacity: Swift.max(arena.count, 1))
        sums.initialize(repeating: 0, count: Swift.max(arena.count, 1))
        let dense = self.denseWeights
        factoredWeights = buckets.map { FactoredWeight(bucket: $0, arena: arena, denseWeights: dense) }
        let ranks = communicator.size
        bucketParts = buckets.map { bucket in
            (0 ..< ranks).map { DistributedSampler.blockSlice(of: bucket, rank: $0, size: ranks) }
        }
        gatherParts = zip(buckets, bucketParts).map { bucket, parts in
            parts.map { $0.lowerBound - bucket.lowerBound ..< $0.upperBound - bucket.lowerBound }
        }
        receivedAtByBucket = [[Int]](repeating: [Int](repeating: 0, count: ranks), count: buckets.count)
    }

    deinit {
        sums.deallocate()
    }

    /// The agreed exponents by slot name (what a checkpoint records).
    public var exponentsByName: [String: Int] {
        var named: [String: Int] = [:]
        for (slot, e) in zip(arena.slots, exponents) { if let e { named[slot.name] = e } }
        return named
    }

    /// Takes the exponents a checkpoint recorded (slots it does not name become unknown).
    public func restoreExponents(_ named: [String: Int]) {
        exponents = arena.slots.map { named[$0.name] }
    }

    /// Starts an attempt at a step: clears the accumulators and fixes each tensor's scale.
    ///
    /// - Parameters:
    ///   - terms: the most chunks any element can receive this step (the same on every rank).
    ///   - termsByRank: how many chunks each rank adds this step, when known at the start (every
    ///     rank passes the same); a rank with at most one sends its float gradient (`Wire.floats`).
    ///     Nil: every rank sends Double sums.
    ///   - chunks: with `termsByRank`, the step's chunks as sample ranges of its one micro-batch
    ///     (rank r holds the `termsByRank[r]` chunks after those of the ranks before it): dense
    ///     weights alone in a bucket are then summed from gathered factors (`FactorPlan`).
    public func begin(terms: Int, termsByRank: [Int]? = nil, chunks: [Range<Int>]? = nil) {
        precondition(terms > 0, "An exact sum needs at least one term, got \(terms).")
        precondition(exchanges.isEmpty, "ExactGradientReducer.begin called with \(exchanges.count) reductions still in flight.")
        precondition(
            termsByRank == nil || termsByRank!.count == communicator.size,
            "termsByRank needs one count per rank (\(communicator.size)), got \(termsByRank!.count).")
        wires.removeAll(keepingCapacity: true)
        for r in 0 ..< communicator.size { wires.append(termsByRank.map { $0[r] <= 1 ? Wire.floats : .sums } ?? .sums) }
        meanCount = nil
        let termBits = Int(Double(terms).log2Ceiling)
        for s in arena.slots.indices {
            let e = 52 - ExactGradientReducer.headroomBits - termBits - (exponents[s] ?? 0)
            scales[s] = Double(sign: .plus, exponent: e, significand: 1)
            maxima[s] = 0
            fresh[s] = true
            meanWritten[s] = nil
        }
        planFactors(termsByRank: termsByRank, chunks: chunks)
    }

    /// Decides which buckets gather factors this attempt (the same on every rank: it depends on
    /// the buckets, the chunks and the agreed scales only).
    private func planFactors(termsByRank: [Int]?, chunks: [Range<Int>]?) {
        factorPlans.removeAll(keepingCapacity: true)
        factorRows.removeAll(keepingCapacity: true)
        guard communicator.size > 1, let termsByRank, let chunks, termsByRank.reduce(0, +) == chunks.count else { return }
        factorChunks.removeAll(keepingCapacity: true)
        factorChunks.append(contentsOf: chunks)
        // Rank r's samples: its chunks, which follow those of the ranks before it.
        factorRankRows.removeAll(keepingCapacity: true)
        var nextChunk = 0, end = 0
        for count in termsByRank {
            let start = end
            if count > 0 { end = chunks[nextChunk + count - 1].upperBound }
            nextChunk += count
            factorRankRows.append(start ..< end)
        }
        var size = 0
        for (b, weight) in factoredWeights.enumerated() {
            guard let weight, ExactSum.fusesDenseChunks(chunks, scale: scales[weight.slot]) else { continue }
            factorPlans[b] = FactorPlan(weight: weight)
            size += (chunks.last?.upperBound ?? 0) * weight.width
        }
        if size > 0 {
            // Each plan's region, in bucket order.
            var start = 0
            let base = factors.reserve(size)
            for (b, weight) in factoredWeights.enumerated() where factorPlans[b] != nil {
                factorRows[b] = base + start
                start += (chunks.last?.upperBound ?? 0) * weight!.width
            }
        }
    }

    /// The factor plan of the bucket holding slot `s`, if it has one this attempt.
    private func factorPlan(ofSlot s: Int) -> (bucket: Int, plan: FactorPlan)? {
        for (b, plan) in factorPlans where plan.weight.slot == s { return (b, plan) }
        return nil
    }

    /// Adds the gradients of slots `slots` (arena slot indices) to the accumulators at the agreed
    /// scales and clears them in the arena for the next chunk's backward (unless `clearing` is
    /// false: the step's last chunk on this rank, whose gradients `finish` overwrites). Local.
    ///
    /// A rank whose wire is `.floats` (its one chunk) leaves the gradients where they are: they are
    /// sent as they are.
    public func accumulate(slots: Range<Int>, clearing: Bool = true) {
        accumulate(slots: slots, from: arena.gradients, clearing: clearing)
    }

    /// `accumulate(slots:clearing:)` from another gradient buffer of the arena's layout (a
    /// thread's, in deterministic mode on several threads), which it reads and clears. Calls from
    /// several threads take turns; the integer sums do not depend on their order.
    public func accumulate(slots: Range<Int>, from gradients: UnsafeMutablePointer<Float>, clearing: Bool = true) {
        accumulateLock.lock()
        defer { accumulateLock.unlock() }
        if sendsFloats {
            precondition(
                !clearing && gradients == arena.gradients,
                "A rank that sends its one chunk's float gradients cannot take another chunk.")
            return
        }
        let start = Timeline.now()
        for s in slots where arena.slots[s].trainable {
            let slot = arena.slots[s]
            let m = ExactSum.accumulate(
                sums + slot.offset, clearing: gradients + slot.offset, scale: scales[s], slot.count,
                first: fresh[s], clear: clearing)
            fresh[s] = false
            if !(m <= maxima[s]) { maxima[s] = m }
        }
        step.accumulateSeconds += Timeline.seconds(since: start)
    }

    /// Adds the parameter gradients of a dense layer for each chunk of its batch to the accumulators
    /// at the agreed scales, without writing them to the arena: the same integers as a chunk-by-chunk
    /// backward followed by `accumulate`, at a fraction of the memory traffic. Local.
    ///
    /// Chunk c's weight gradient is `gyᵀ[U, c] · x[c, F]`, one GEMM over the chunk's samples (each
    /// element the same in-order FMA chain as the layer's own backward), its bias gradient the sum of
    /// the chunk's rows of gy in sample order. The product is formed a register tile at a time and
    /// turned into integers there (`ExactSum.denseChunkProducts`), so the float gradient never
    /// travels to memory and the accumulators are written once.
    /// - Parameters:
    ///   - weight: the arena slot index of the weight, `[U, F]`.
    ///   - bias: the slot index of the bias `[U]`, or nil.
    ///   - gradOutput: gy, `[N, U]` row-major (read).
    ///   - input: x, `[N, F]` row-major (read).
    ///   - chunks: consecutive row ranges of gy and x, one per chunk, in chunk order.
    ///   - meanOver: the step's sample count when these chunks are its last terms (the last
    ///     micro-batch). On a single rank with no earlier term of the weight, nothing is left to add
    ///     or send: the mean (the bits `finish` would write) goes straight to the arena's gradients,
    ///     sparing the accumulators' round trip through memory. `finish` must then be given the same
    ///     count.
    ///
    /// When the weight's bucket gathers factors (`FactorPlan`), the weight's gradient is not formed
    /// here: gy and x are kept for the gather. A rank whose wire is `.floats` (one chunk) writes the
    /// chunk's gradients to the arena instead, where they are sent from.
    public func accumulateDense(
        weight: Int, bias: Int?, gradOutput gy: UnsafePointer<Float>, input x: UnsafePointer<Float>,
        chunks: [Range<Int>], meanOver: Int? = nil
    ) {
        let start = Timeline.now()
        defer { step.accumulateSeconds += Timeline.seconds(since: start) }
        let slot = arena.slots[weight]
        precondition(slot.shape.count == 2, "A dense weight is [units, features], got \(slot.shape) for \(slot.name).")
        let units = slot.shape[0], features = slot.shape[1]
        if sendsFloats {
            precondition(chunks.count <= 1, "A rank that sends its one chunk's float gradients got \(chunks.count) chunks.")
        }
        if !slot.trainable {
            // Nothing to add for the weight.
        } else if let (b, plan) = factorPlan(ofSlot: weight) {
            // This rank's rows of the factors, for the gather its bucket starts.
            let mine = factorRankRows[communicator.rank]
            precondition(
                fresh[weight] && meanOver != nil && chunks.reduce(0, { $0 + $1.count }) == mine.count,
                "Gathered factors of \(slot.name) take the step's one micro-batch: \(mine.count) rows, got chunks \(chunks).")
            plan.weight.store(factorRows[b]! + mine.lowerBound * plan.weight.width, gradOutput: gy, input: x, count: mine.count)
            fresh[weight] = false
        } else if sendsFloats {
            // The same product as the fused one below (an element's FMA chain is the same), written
            // where backward would have added it into zeros.
            if let chunk = chunks.first {
                GEMM.multiply(
                    arena.gradients + slot.offset, ldc: features, gy + chunk.lowerBound * units, lda: units, transA: true,
                    x + chunk.lowerBound * features, ldb: features, transB: false, m: units, n: features, k: chunk.count)
            }
        } else {
            accumulateWeight(weight, gradOutput: gy, input: x, chunks: chunks, meanOver: meanOver)
        }
        if sendsFloats {
            if let bias, arena.slots[bias].trainable, let chunk = chunks.first {
                let total = arena.gradients + arena.slots[bias].offset
                total.update(repeating: 0, count: units)
                Dense.addBiasGradient(total, gy, rows: chunk, units: units)
            }
        } else {
            accumulateBias(bias, gradOutput: gy, units: units, chunks: chunks)
        }
    }

    /// `accumulateDense`'s weight, into the sums (or, alone with the last terms, as its mean into
    /// the arena).
    private func accumulateWeight(
        _ weight: Int, gradOutput gy: UnsafePointer<Float>, input x: UnsafePointer<Float>,
        chunks: [Range<Int>], meanOver: Int?
    ) {
        let slot = arena.slots[weight]
        let units = slot.shape[0], features = slot.shape[1]
        let firstTerm = fresh[weight]
        let alone = communicator.size == 1 && firstTerm && meanOver != nil
        defer { fresh[weight] = false }
        if ExactSum.fusesDenseChunks(chunks, scale: scales[weight]) {
            let m = ExactSum.denseChunkProducts(
                sums: sums + slot.offset, first: firstTerm, mean: alone ? arena.gradients + slot.offset : nil,
                count: meanOver ?? 1, gy: gy, ldGy: units, x: x, ldX: features, units: units,
                features: features, window: 0 ..< units * features, chunks: chunks, scale: scales[weight])
            if !(m <= maxima[weight]) { maxima[weight] = m }
            if alone { meanWritten[weight] = meanOver } else { ExactSum.fenceStores() }
            return
        }
        // Otherwise (chunks too deep for one depth block, or gradients so small that 2^e is not a
        // Float): one chunk's product at a time into the arena's gradients, then into integers.
        let g = arena.gradients + slot.offset
        for (j, chunk) in chunks.enumerated() {
            GEMM.multiply(
                g, ldc: features, gy + chunk.lowerBound * units, lda: units, transA: true,
                x + chunk.lowerBound * features, ldb: features, transB: false, m: units, n: features, k: chunk.count)
            let m = ExactSum.accumulate(sums + slot.offset, clearing: g, scale: scales[weight], slot.count, first: firstTerm && j == 0)
            if !(m <= maxima[weight]) { maxima[weight] = m }
        }
        if alone, let count = meanOver {
            ExactSum.writeMean(g, sums + slot.offset, scale: scales[weight], count: count, slot.count)
            meanWritten[weight] = count
        }
    }

    /// `accumulateDense`'s bias: each chunk's sum of its rows of gy, in sample order.
    private func accumulateBias(_ bias: Int?, gradOutput gy: UnsafePointer<Float>, units: Int, chunks: [Range<Int>]) {
        guard let bias, arena.slots[bias].trainable else { return }
        let total = self.block.reserve(units)
        let firstBias = fresh[bias]
        for (j, chunk) in chunks.enumerated() {
            total.update(repeating: 0, count: units)
            Dense.addBiasGradient(total, gy, rows: chunk, units: units)
            let m = ExactSum.accumulate(
                sums + arena.slots[bias].offset, clearing: total, scale: scales[bias], units,
                first: firstBias && j == 0, clear: false)
            if !(m <= maxima[bias]) { maxima[bias] = m }
        }
        fresh[bias] = false
    }

    /// Whether this rank sends its one chunk's float gradients this attempt.
    private var sendsFloats: Bool { communicator.size > 1 && wires[communicator.rank] == .floats }

    /// Tells the reducer that no chunk will add to accumulators at offsets ≥ `offset` any more this
    /// attempt, so the buckets lying there start reducing (non-blocking), in bucket order.
    ///
    /// - Parameter count: the step's sample count, which the means are taken over (`finish` must
    ///   be given the same).
    /// - Throws: `DistError.mpi` when a reduction cannot start.
    public func sumsFinal(from offset: Int, meanOver count: Int) throws {
        guard communicator.size > 1 else { return }
        precondition(meanCount == nil || meanCount == count, "The exact reduction's buckets average over \(meanCount!) and \(count) samples.")
        meanCount = count
        while exchanges.count < buckets.count && buckets[exchanges.count].lowerBound >= offset {
            exchanges.append(try startExchange(of: exchanges.count))
        }
        try progress()
    }

    /// Ends an attempt (a collective): sums the accumulators over the ranks, agrees on the largest
    /// magnitudes, and either writes the mean over `globalBatchSize` samples to the gradients
    /// (returns true) or asks for the step to be recomputed at the measured scales (returns false,
    /// leaving the gradients cleared).
    ///
    /// With `writingMean` false, a completed attempt leaves the mean where the optimizer reads it as
    /// `gradients` without a pass to put it in the arena: on a single rank in the sums; on several
    /// ranks in this rank's parts of the arena only (`.arenaRanges`), for a sharded step: each rank
    /// updates its parts, then `shareParameters` gathers them, so the optimizer's pass over memory
    /// is split among the ranks. The arena's gradients elsewhere hold nothing meaningful until the
    /// next step. With `writingMean` true the mean is in the whole arena on every rank.
    /// - Throws: `DistError.mpi` when a reduction fails.
    public func finish(globalBatchSize: Int, writingMean: Bool = true) throws -> Bool {
        precondition(globalBatchSize > 0, "Cannot average gradients over an empty global batch.")
        try sumsFinal(from: 0, meanOver: globalBatchSize)
        let start = Timeline.now()
        if communicator.size == 1 {
            clearFresh(in: 0 ..< arena.count)
        } else {
            // Every part's terms, then (unless the step is sharded) the means' gathers in bucket
            // order (the same on every rank).
            for b in exchanges.indices {
                if !exchanges[b].summed {
                    try exchanges[b].terms.wait()
                    sumPart(of: b)
                }
                if writingMean {
                    exchanges[b].means = try startGather(arena.gradients, bucket: b)
                    step.wireBytes += 4 * (communicator.size - 1) * exchanges[b].parts[communicator.rank].count
                }
            }
        }
        // NaN would make the max order-dependent; +inf marks a non-finite tensor as well.
        var most = agreedMaxima
        agreedMaxima = []
        defer { agreedMaxima = most }
        most.removeAll(keepingCapacity: true)
        for m in maxima { most.append(m.isNaN ? Double.infinity : Double(m)) }
        try communicator.allreduce(&most, op: .max)
        for e in exchanges { try e.means?.wait() }
        ownParts.removeAll(keepingCapacity: true)
        for e in exchanges { ownParts.append(e.parts[communicator.rank]) }
        exchanges.removeAll(keepingCapacity: true)
        step.blockedSeconds += Timeline.seconds(since: start)
        step.attempts += 1
        var fits = true
        for s in arena.slots.indices where arena.slots[s].trainable {
            // A zero maximum says nothing about the scale; a non-finite one cannot be fixed by
            // another attempt (the gradients are NaN or inf: the sums carry them through).
            guard most[s].isFinite, most[s] > 0 else { continue }
            let measured = Int(most[s].exponent)
            if let agreed = exponents[s] {
                if measured > agreed + ExactGradientReducer.headroomBits || measured < agreed - ExactGradientReducer.shrinkBits { fits = false }
            } else {
                fits = false
            }
            exponents[s] = measured
        }
        guard fits else {
            precondition(
                step.attempts < 3, "The exact reduction did not fit the scales it measured on the attempt before; the chunk gradients changed between attempts."
            )
            return false
        }
        if communicator.size > 1 {
            gradients = writingMean ? .arena(scale: 1) : .arenaRanges(ownParts)
            optimizerStateShared = optimizerStateShared && writingMean
        } else if !writingMean && meanWritten.allSatisfy({ $0 == nil }) {
            // A slot whose mean is in the arena already forces the arena form for all.
            // The last step's source lets go of the factors first, so they are rewritten in place.
            gradients = .arena(scale: 1)
            meanFactors.removeAll(keepingCapacity: true)
            for scale in scales { meanFactors.append(ExactSum.meanFactor(scale: scale, count: globalBatchSize)) }
            gradients = .exactSums(UnsafePointer(sums), factors: meanFactors)
        } else {
            gradients = .arena(scale: 1)
            for (s, slot) in arena.slots.enumerated() where slot.trainable {
                if let written = meanWritten[s] {
                    precondition(
                        written == globalBatchSize,
                        "The exact reduction wrote \(slot.name)'s mean over \(written) samples, but finish averages over \(globalBatchSize).")
                    continue
                }
                ExactSum.writeMean(arena.gradients + slot.offset, sums + slot.offset, scale: scales[s], count: globalBatchSize, slot.count)
            }
        }
        lastStep = step
        step = ExactReductionStatistics()
        return true
    }
}
