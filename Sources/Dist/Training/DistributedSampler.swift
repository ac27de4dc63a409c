import NN

/// What happens to the short batch at the end of an epoch.
public enum LastBatchPolicy: String, CaseIterable {
    /// Skip it: every step has exactly the global batch size.
    case drop
    /// Train on it, split across ranks like a full batch (some ranks may get no sample when it is
    /// smaller than the number of ranks). Never padded with duplicates.
    case split
}

/// Decides which samples each rank trains on, step by step (like PyTorch's `DistributedSampler`,
/// but splitting each *global* batch rather than the whole epoch).
///
/// Per epoch, a permutation of the dataset seeded by `(seed, epoch)` is the same on every rank.
/// Step `s` takes the global batch `order[s·B ..< (s+1)·B]` and hands rank `r` a contiguous slice:
/// `B / P` samples, the first `B mod P` ranks one more. Every sample of the epoch is used exactly
/// once (the last short batch is dropped or split, by policy).
public struct DistributedSampler {
    /// The number of samples in the dataset.
    public let datasetCount: Int
    /// The global batch size B (summed over ranks).
    public let globalBatchSize: Int
    /// The run's seed.
    public let seed: UInt64
    /// Whether each epoch visits the samples in a fresh random order (false: dataset order).
    public let shuffle: Bool
    /// What to do with the last, short batch.
    public let lastBatch: LastBatchPolicy

    /// - Parameters:
    ///   - datasetCount: samples in the dataset (≥ 0).
    ///   - globalBatchSize: B (> 0).
    ///   - seed: the run's seed.
    ///   - shuffle: shuffle every epoch.
    ///   - lastBatch: drop or split the short batch.
    public init(datasetCount: Int, globalBatchSize: Int, seed: UInt64, shuffle: Bool = true, lastBatch: LastBatchPolicy = .drop) {
        precondition(datasetCount >= 0, "A sampler needs a non-negative dataset size, got \(datasetCount).")
        precondition(globalBatchSize > 0, "A sampler needs a positive global batch size, got \(globalBatchSize).")
        self.datasetCount = datasetCount
        self.globalBatchSize = globalBatchSize
        self.seed = seed
        self.shuffle = shuffle
        self.lastBatch = lastBatch
    }

    /// The number of steps in one epoch.
    public var stepsPerEpoch: Int {
        switch lastBatch {
        case .drop: return datasetCount / globalBatchSize
        case .split: return (datasetCount + globalBatchSize - 1) / globalBatchSize
        }
    }

    /// The epoch's order of dataset indices, identical on every rank (Fisher–Yates over a stream
    /// keyed by seed and epoch).
    ///
    /// - Parameter epoch: the epoch number.
    /// - Returns: a permutation of `0 ..< datasetCount`.
    public func permutation(epoch: Int) -> [Int] {
        var order = Array(0 ..< datasetCount)
        guard shuffle, datasetCount > 1 else { return order }
        var g = SplitMix64(seed: seed, keys: [0x5EED_0EB0, UInt64(epoch)])
        for i in stride(from: datasetCount - 1, to: 0, by: -1) {
            // Lemire-free modulo is fine here: the bias for n < 2^32 is below 2^-32.
            let j = Int(g.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// The dataset indices of the whole global batch at `step` (every rank's slices, in rank order).
    ///
    /// - Parameters:
    ///   - step: the step within the epoch, `0 ..< stepsPerEpoch`.
    ///   - order: the epoch's `permutation(epoch:)`.
    public func globalBatch(step: Int, order: [Int]) -> ArraySlice<Int> {
        precondition(step >= 0 && step < stepsPerEpoch, "Step \(step) is outside 0..<\(stepsPerEpoch).")
        let start = step * globalBatchSize
        return order[start ..< min(start + globalBatchSize, datasetCount)]
    }

    /// Rank `rank`'s slice of the global batch at `step`.
    ///
    /// - Parameters:
    ///   - step: the step within the epoch.
    ///   - order: the epoch's `permutation(epoch:)`.
    ///   - rank: this rank.
    ///   - size: the number of ranks.
    /// - Returns: the dataset indices this rank trains on (possibly empty for a split last batch).
    public func shard(step: Int, order: [Int], rank: Int, size: Int) -> ArraySlice<Int> {
        let batch = globalBatch(step: step, order: order)
        let range = DistributedSampler.slice(count: batch.count, rank: rank, size: size)
        return batch[batch.startIndex + range.lowerBound ..< batch.startIndex + range.upperBound]
    }

    /// All of rank `rank`'s slices for one epoch, step by step.
    public func shard(epoch: Int, rank: Int, size: Int) -> [ArraySlice<Int>] {
        let order = permutation(epoch: epoch)
        return (0 ..< stepsPerEpoch).map { shard(step: $0, order: order, rank: rank, size: size) }
    }

    /// The contiguous part of `count` items that rank `rank` of `size` takes: `count / size` items,
    /// the first `count mod size` ranks one more.
    ///
    /// - Returns: a range within `0 ..< count`; the ranges of all ranks tile it in rank order.
    public static func slice(count: Int, rank: Int, size: Int) -> Range<Int> {
        precondition(size > 0 && rank >= 0 && rank < size, "Rank \(rank) is outside 0..<\(size).")
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start ..< start + base + (rank < extra ? 1 : 0)
    }

    /// Rank `rank`'s part of `range` cut into whole runs of `block` elements (the last run may be
    /// short), as `slice` cuts items: the parts of all ranks tile `range` in rank order.
    public static func blockSlice(of range: Range<Int>, block: Int = 16, rank: Int, size: Int) -> Range<Int> {
        let blocks = slice(count: (range.count + block - 1) / block, rank: rank, size: size)
        return min(range.lowerBound + block * blocks.lowerBound, range.upperBound) ..< min(range.lowerBound + block * blocks.upperBound, range.upperBound)
    }

    /// The fixed chunks of a global batch of `count` samples in deterministic mode: positions
    /// `0 ..< c`, `c ..< 2c`, … of the batch (the last one shorter), whatever the number of ranks.
    ///
    /// - Parameters:
    ///   - count: the global batch's size.
    ///   - chunkSize: c (> 0).
    /// - Returns: ranges within `0 ..< count` that tile it in order.
    public static func chunks(count: Int, chunkSize: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        chunks(count: count, chunkSize: chunkSize, into: &ranges)
        return ranges
    }

    /// `chunks(count:chunkSize:)` into an array the caller keeps (its storage is reused: a steady
    /// deterministic step allocates nothing).
    ///
    /// - Parameter ranges: emptied, then filled with the chunks.
    public static func chunks(count: Int, chunkSize: Int, into ranges: inout [Range<Int>]) {
        precondition(chunkSize > 0, "A chunk needs a positive size, got \(chunkSize).")
        ranges.removeAll(keepingCapacity: true)
        for start in stride(from: 0, to: count, by: chunkSize) { ranges.append(start ..< min(start + chunkSize, count)) }
    }

    /// The chunks rank `rank` of `size` computes in deterministic mode: a contiguous run of whole
    /// chunks (`slice(count:rank:size:)` over the chunks), possibly none when there are fewer
    /// chunks than ranks.
    ///
    /// - Returns: indices into `chunks(count:chunkSize:)`.
    public static func chunkShard(count: Int, chunkSize: Int, rank: Int, size: Int) -> Range<Int> {
        slice(count: chunks(count: count, chunkSize: chunkSize).count, rank: rank, size: size)
    }

    /// Rank `rank`'s part of an evaluation set: contiguous, and the parts of all ranks cover each
    /// sample exactly once (no padding, so counts reduced over ranks are exact).
    public static func evaluationShard(count: Int, rank: Int, size: Int) -> Range<Int> {
        slice(count: count, rank: rank, size: size)
    }

    /// The key of one sample's randomness (dropout masks, augmentation) in one epoch.
    ///
    /// It depends only on the seed, the epoch and the sample's dataset index, never on the rank or
    /// the number of ranks, so a sample is treated the same however the batch is split.
    public static func sampleKey(seed: UInt64, epoch: Int, index: Int) -> UInt64 {
        // `SplitMix64(seed: seed, keys: [0x5A3B_1E7E, epoch, index])`, without a key array per sample.
        var g = SplitMix64(seed: seed).mixing(0x5A3B_1E7E).mixing(UInt64(epoch)).mixing(UInt64(index))
        return g.next()
    }

    /// The keys of a list of dataset indices for `ForwardContext.sampleKeys`.
    public func sampleKeys<C: Collection>(epoch: Int, indices: C) -> [UInt64] where C.Element == Int {
        indices.map { DistributedSampler.sampleKey(seed: seed, epoch: epoch, index: $0) }
    }
}
