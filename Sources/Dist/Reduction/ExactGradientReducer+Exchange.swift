import Foundation
import NN

// The exchange half of `ExactGradientReducer` on several ranks: advancing the buckets in flight,
// the reduce-scatter of each bucket's terms (`startExchange`) and the sum of this rank's part
// (`sumPart`), and the gathers of means, parameters and optimizer state.

extension ExactGradientReducer {
    /// Lets MPI advance the reductions in flight (a test of each; nothing blocks), and turns the
    /// terms received for this rank's part of a bucket into its mean as soon as they are all in.
    /// Long layers call it between blocks of their backward, so a bucket started before them
    /// moves during them.
    ///
    /// - Throws: `DistError.mpi` when a reduction failed.
    public func progress() throws {
        for b in exchanges.indices where !exchanges[b].summed {
            if try exchanges[b].terms.test() { sumPart(of: b) }
        }
    }

    /// One bucket on several ranks: the exchange of terms, then (started by `finish`, in bucket
    /// order on every rank, as collectives must be) the gather of the means.
    struct BucketExchange {
        /// The bucket's arena range, and each rank's part of it (arena ranges, in rank order).
        let bucket: Range<Int>
        let parts: [Range<Int>]
        /// Where the other ranks' terms for this rank's part arrive (byte offset per rank).
        let received: UnsafeMutableRawPointer
        let receivedAt: [Int]
        let terms: PendingReduction
        var summed = false
        var means: PendingReduction?
    }

    /// Starts gathering every rank's part of bucket `b` of `values` (an arena-sized buffer) into
    /// every rank's `values`, in place.
    func startGather(_ values: UnsafeMutablePointer<Float>, bucket b: Int) throws -> PendingReduction {
        let bucket = buckets[b]
        return try communicator.startAllgather(
            UnsafeMutableBufferPointer(start: values + bucket.lowerBound, count: bucket.count), parts: gatherParts[b])
    }

    /// After the optimizer stepped a sharded step (`gradients` was `.arenaRanges`): gathers every
    /// rank's updated parameters, so every replica holds the same parameters again (a collective).
    ///
    /// - Throws: `DistError.mpi` when a gather fails.
    public func shareParameters() throws {
        guard case .arenaRanges = gradients else { return }
        let start = Timeline.now()
        defer { parameterGathers.removeAll(keepingCapacity: true) }
        for b in buckets.indices { parameterGathers.append(try startGather(arena.parameters, bucket: b)) }
        for g in parameterGathers { try g.wait() }
        gradients = .arena(scale: 1)
        lastStep.blockedSeconds += Timeline.seconds(since: start)
        lastStep.wireBytes += 4 * (communicator.size - 1) * ownParts.reduce(0) { $0 + $1.count }
    }

    /// Gathers every rank's parts of the optimizer's arena-sized buffers (moments), so rank 0 can
    /// write a complete checkpoint (a collective; nothing to do when no step was sharded since).
    ///
    /// - Throws: `DistError.mpi` when a gather fails.
    public func shareOptimizerState(_ optimizer: Optimizer) throws {
        guard communicator.size > 1, !optimizerStateShared else { return }
        var state = optimizer.state
        for name in state.buffers.keys.sorted() where state.buffers[name]!.count == arena.count {
            try state.buffers[name]!.withUnsafeMutableBufferPointer { values in
                let gathers = try buckets.indices.map { try startGather(values.baseAddress!, bucket: $0) }
                for g in gathers { try g.wait() }
            }
        }
        optimizer.state = state
        optimizerStateShared = true
    }

    /// Bytes an element of rank `r`'s terms takes on the wire.
    func width(_ r: Int) -> Int { wires[r] == .floats ? 4 : 8 }

    /// Starts bucket `b`'s exchange: every other rank's part of this rank's terms goes to it.
    func startExchange(of b: Int) throws -> BucketExchange {
        let bucket = buckets[b], parts = bucketParts[b], me = communicator.rank, ranks = communicator.size
        if let plan = factorPlans[b] {
            // Every rank's rows of the factors, gathered in place.
            let width = plan.weight.width
            fresh[plan.weight.slot] = false
            let total = (factorChunks.last?.upperBound ?? 0) * width
            factorParts.removeAll(keepingCapacity: true)
            for rows in factorRankRows { factorParts.append(rows.lowerBound * width ..< rows.upperBound * width) }
            let pending = try communicator.startAllgather(UnsafeMutableBufferPointer(start: factorRows[b]!, count: total), parts: factorParts)
            step.wireBytes += 4 * (ranks - 1) * factorRankRows[me].count * width
            step.factorBuckets += 1
            return BucketExchange(bucket: bucket, parts: parts, received: UnsafeMutableRawPointer(factorRows[b]!), receivedAt: [], terms: pending)
        }
        if wires[me] == .sums { clearFresh(in: bucket) }
        // Every bucket's arrivals have their own place (all may be in flight at once), room for
        // Double terms from every other rank into the largest part; reserved whole by bucket 0, so
        // it never moves while terms are arriving.
        var room = 0, before = 0
        for c in buckets.indices {
            if c == b { before = room }
            if factorPlans[c] == nil { room += 8 * (ranks - 1) * (((buckets[c].count + 15) / 16 + ranks - 1) / ranks * 16) }
        }
        let base = UnsafeMutableRawPointer(received.reserve(room)) + before
        let w = width(me)
        exchangeCounts.send.removeAll(keepingCapacity: true)
        exchangeCounts.sendOffsets.removeAll(keepingCapacity: true)
        exchangeCounts.receive.removeAll(keepingCapacity: true)
        var at = 0
        for s in 0 ..< ranks {
            exchangeCounts.send.append(s == me ? 0 : parts[s].count * w)
            exchangeCounts.sendOffsets.append((parts[s].lowerBound - bucket.lowerBound) * w)
            let count = s == me ? 0 : parts[me].count * width(s)
            receivedAtByBucket[b][s] = s == me ? 0 : at
            exchangeCounts.receive.append(count)
            at += count
        }
        let send = wires[me] == .floats ? UnsafeRawPointer(arena.gradients + bucket.lowerBound) : UnsafeRawPointer(sums + bucket.lowerBound)
        let pending = try communicator.startExchange(
            sending: send, counts: exchangeCounts.send, offsets: exchangeCounts.sendOffsets,
            receiving: base, counts: exchangeCounts.receive, offsets: receivedAtByBucket[b])
        for count in exchangeCounts.send { step.wireBytes += count }
        return BucketExchange(bucket: bucket, parts: parts, received: base, receivedAt: receivedAtByBucket[b], terms: pending)
    }

    /// Adds every rank's terms of this rank's part of bucket `b` and writes their mean to the
    /// gradients; the largest magnitude of the float terms goes into `maxima` (the ranks that sent
    /// sums measured theirs).
    func sumPart(of b: Int) {
        let start = Timeline.now()
        defer { step.accumulateSeconds += Timeline.seconds(since: start) }
        let mine = exchanges[b].parts[communicator.rank], me = communicator.rank
        if let plan = factorPlans[b] {
            // This rank's part of the weight, from every rank's factors: the mean of the chunks'
            // integers, written to the arena's gradients.
            let w = plan.weight, slot = arena.slots[w.slot]
            let lower = Swift.max(slot.offset, mine.lowerBound), upper = Swift.min(slot.offset + slot.count, mine.upperBound)
            if lower < upper {
                let rows = UnsafePointer(factorRows[b]!)
                let m = ExactSum.denseChunkProducts(
                    sums: sums + slot.offset, first: true, mean: arena.gradients + slot.offset, count: meanCount!,
                    gy: rows, ldGy: w.width, x: rows + w.units, ldX: w.width,
                    units: w.units, features: w.features,
                    window: lower - slot.offset ..< upper - slot.offset, chunks: factorChunks, scale: scales[w.slot])
                if !(m <= maxima[w.slot]) { maxima[w.slot] = m }
            }
            exchanges[b].summed = true
            return
        }
        let tileCount = 1024
        let scratch = tile.reserve(tileCount)
        for (s, slot) in arena.slots.enumerated() where slot.trainable {
            let lower = Swift.max(slot.offset, mine.lowerBound), upper = Swift.min(slot.offset + slot.count, mine.upperBound)
            var i = lower
            while i < upper {
                let n = Swift.min(tileCount, upper - i)
                // In a tile that stays in cache: the sums of this rank's own part are read once and
                // not written back.
                let total = scratch
                if wires[me] == .floats {
                    let m = ExactSum.accumulate(total, clearing: arena.gradients + i, scale: scales[s], n, first: true, clear: false)
                    if !(m <= maxima[s]) { maxima[s] = m }
                } else {
                    total.update(from: sums + i, count: n)
                }
                for r in 0 ..< communicator.size where r != me {
                    let terms = exchanges[b].received + exchanges[b].receivedAt[r] + (i - mine.lowerBound) * width(r)
                    if wires[r] == .floats {
                        let m = ExactSum.accumulate(total, clearing: terms.assumingMemoryBound(to: Float.self), scale: scales[s], n, clear: false)
                        if !(m <= maxima[s]) { maxima[s] = m }
                    } else {
                        ExactSum.add(total, terms.assumingMemoryBound(to: Double.self), n)
                    }
                }
                ExactSum.writeMean(arena.gradients + i, total, scale: scales[s], count: meanCount!, n)
                i += n
            }
        }
        exchanges[b].summed = true
    }

    /// Zeroes the accumulators of slots in `range` that received no term this attempt (padding
    /// between slots is never written and stays zero).
    func clearFresh(in range: Range<Int>) {
        for (s, slot) in arena.slots.enumerated() where fresh[s] && range.contains(slot.offset) {
            sums.advanced(by: slot.offset).update(repeating: 0, count: slot.count)
            fresh[s] = false
        }
    }
}
