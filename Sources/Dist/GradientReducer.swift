#if canImport(Glibc)
import Glibc
#endif
import NN

/// How gradients are summed across ranks.
public enum ReductionMode: String, CaseIterable {
    /// Float32 allreduce of each bucket, started non-blocking as soon as backward finishes it. The
    /// summation order is MPI's, so the last bits may vary with the algorithm it picks.
    case fast
    /// Exact: gradients are scaled to integers (in Double, below 2^53 after summing), summed, and
    /// scaled back. Integer sums do not depend on order, so the result is bitwise reproducible
    /// whatever algorithm MPI uses. The trainer also computes each sample's gradient on its own
    /// and adds them exactly, so P ranks give bit for bit what one rank gives on the same global
    /// batch. It rounds away gradient bits below about 2^-45 of the bucket's largest magnitude
    /// (far below float32 precision); it costs two per-sample passes and a Double arena copy.
    case deterministic
}

/// Averages the gradient arena across ranks: allreduce-sum, then scale by 1/B (B the global batch),
/// since each rank's backward leaves the *sum* over its slice. Uneven slices thus give the exact
/// global mean.
///
/// The arena is cut into buckets in reverse layer order (the order backward finishes them), each a
/// view of the arena; in fast mode a bucket's reduction starts as soon as backward is done with it
/// (`gradientsFinal(from:)`), so communication overlaps the rest of backward (PyTorch DDP,
/// Horovod fusion).
public final class GradientReducer {
    /// The arena ranges of the buckets, last layers first.
    public let buckets: [Range<Int>]
    /// The summation mode.
    public let mode: ReductionMode
    private let arena: ParameterArena
    private let communicator: Communicator

    /// - Parameters:
    ///   - arena: the gradients to reduce (their layout never changes).
    ///   - communicator: the ranks.
    ///   - bucketCapacity: floats per bucket (a slot larger than this gets a bucket of its own).
    ///   - mode: fast or deterministic summation.
    public init(arena: ParameterArena, communicator: Communicator, bucketCapacity: Int = 1 << 20, mode: ReductionMode = .fast) {
        precondition(bucketCapacity > 0, "A bucket needs a positive capacity, got \(bucketCapacity).")
        self.arena = arena
        self.communicator = communicator
        self.mode = mode
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
    }

    /// Reductions started this step, in bucket order.
    private var pending: [PendingReduction] = []

    /// Replaces every rank's gradients with their mean over the global batch.
    ///
    /// A collective: every rank calls it once per step with the same `globalBatchSize`. Starts
    /// whatever buckets `gradientsFinal(from:)` has not started yet.
    /// - Parameter globalBatchSize: B, the number of samples summed over all ranks this step.
    /// - Throws: `DistError.mpi` when a reduction fails.
    public func reduce(globalBatchSize: Int) throws {
        precondition(globalBatchSize > 0, "Cannot average gradients over an empty global batch.")
        switch mode {
        case .fast:
            try startBuckets { _ in true }
            for p in pending { try p.wait() }
            pending.removeAll()
        case .deterministic:
            // The exact path divides by B itself.
            return try reduceExact(globalBatchSize: globalBatchSize)
        }
        let scale = Float(1.0 / Double(globalBatchSize))
        let g = arena.gradients
        for i in 0 ..< arena.count { g[i] *= scale }
    }

    /// Tells the reducer that backward will no longer write gradients at arena offsets ≥ `offset`,
    /// so (in fast mode) every bucket lying there starts reducing now, overlapping the rest of
    /// backward.
    ///
    /// Every rank starts the same buckets in the same order (buckets are visited last to first),
    /// as non-blocking collectives require; a rank that calls this less often (an empty slice)
    /// starts the rest in `reduce`.
    /// - Throws: `DistError.mpi` when a reduction cannot start.
    public func gradientsFinal(from offset: Int) throws {
        guard mode == .fast else { return }
        try startBuckets { $0.lowerBound >= offset }
        // Let MPI progress the reductions already in flight.
        for p in pending { _ = try p.test() }
    }

    private func startBuckets(while ready: (Range<Int>) -> Bool) throws {
        guard communicator.size > 1 else { return }
        while pending.count < buckets.count && ready(buckets[pending.count]) {
            let bucket = buckets[pending.count]
            let view = UnsafeMutableBufferPointer(start: arena.gradients + bucket.lowerBound, count: bucket.count)
            pending.append(try communicator.startAllreduce(view, op: .sum))
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
                    for i in bucket { sums[i] += Double(g[i]) } // non-finite: the result is NaN/inf anyway
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
