/// Forms batches: gathers samples by index, turns bytes into floats, applies augmentation.
public enum BatchLoader {
    /// The key of one sample's augmentation stream: a pure function of the run's seed, the epoch
    /// and the sample's index in the dataset (not its rank or position in the batch).
    ///
    /// - Parameters:
    ///   - seed: the run's seed.
    ///   - epoch: the epoch, from 0.
    ///   - index: the sample's index in the dataset.
    /// - Returns: a key for `Augmentation.apply(to:scratch:shape:key:)`.
    public static func sampleKey(seed: UInt64, epoch: Int, index: Int) -> UInt64 {
        var generator = SplitMix64(seed: seed, keys: [0xA06, UInt64(epoch), UInt64(index)])
        return generator.next()
    }

    /// Makes a batch `[n, C, H, W]` and its labels.
    ///
    /// - Parameters:
    ///   - dataset: the source.
    ///   - indices: the samples, in batch order (n = `indices.count`).
    ///   - keys: one key per sample (see `sampleKey(seed:epoch:index:)`); may be empty when the
    ///     augmentation draws no random numbers.
    ///   - augmentation: the transformation (`.none` for plain [0, 1] floats).
    /// - Returns: the batch and the labels.
    public static func makeBatch(
        dataset: some Dataset, indices: [Int], keys: [UInt64],
        augmentation: Augmentation = .none
    ) -> (Tensor, [Int32]) {
        var batch = Tensor(shape: [0])
        var labels: [Int32] = []
        makeBatch(into: &batch, labels: &labels, dataset: dataset, indices: indices, keys: keys, augmentation: augmentation)
        return (batch, labels)
    }

    /// Fills `batch` and `labels` in place, reusing their storage when the size is unchanged.
    ///
    /// batch is written as (n, C, H, W); labels as (n).
    /// - Parameters:
    ///   - batch: resized to `[n] + dataset.sampleShape` and overwritten.
    ///   - labels: overwritten with the n labels.
    ///   - dataset: the source.
    ///   - indices: the samples, in batch order.
    ///   - keys: one key per sample, or empty when `augmentation.isRandom` is false.
    ///   - augmentation: the transformation.
    public static func makeBatch(
        into batch: inout Tensor, labels: inout [Int32], dataset: some Dataset,
        indices: [Int], keys: [UInt64], augmentation: Augmentation = .none
    ) {
        var scratch: [Float] = []
        makeBatch(
            into: &batch, labels: &labels, scratch: &scratch, dataset: dataset, indices: indices, keys: keys,
            augmentation: augmentation)
    }

    /// `makeBatch(into:labels:dataset:indices:keys:augmentation:)` with the augmentation's scratch
    /// sample kept by the caller too: a training loop that keeps all three allocates nothing per batch.
    ///
    /// - Parameters:
    ///   - batch: resized to `[n] + dataset.sampleShape` and overwritten.
    ///   - labels: overwritten with the n labels.
    ///   - scratch: one sample's worth of floats when the augmentation is random (resized if needed).
    ///   - dataset: the source.
    ///   - indices: the samples, in batch order.
    ///   - keys: one key per sample, or empty when `augmentation.isRandom` is false.
    ///   - augmentation: the transformation.
    public static func makeBatch(
        into batch: inout Tensor, labels: inout [Int32], scratch: inout [Float], dataset: some Dataset,
        indices: [Int], keys: [UInt64], augmentation: Augmentation = .none
    ) {
        precondition(
            keys.count == indices.count || (keys.isEmpty && !augmentation.isRandom),
            "A batch of \(indices.count) samples needs \(indices.count) augmentation keys, got \(keys.count).")
        let shape = dataset.sampleShape
        let size = shape.reduce(1, *)
        if batch.shape.count != shape.count + 1 || batch.batchSize != indices.count || !batch.shape.dropFirst().elementsEqual(shape) {
            batch.resize(to: [indices.count] + shape)
        }
        labels.removeAll(keepingCapacity: true)
        let scratchCount = augmentation.isRandom ? size : 0
        if scratch.count != scratchCount { scratch = [Float](repeating: 0, count: scratchCount) }
        batch.storage.withUnsafeMutableBufferPointer { out in
            scratch.withUnsafeMutableBufferPointer { tmp in
                for (n, index) in indices.enumerated() {
                    precondition(
                        index >= 0 && index < dataset.count,
                        "Sample index \(index) is outside the dataset of \(dataset.count) samples.")
                    let sample = out.baseAddress! + n * size
                    dataset.writeSample(at: index, into: sample)
                    if augmentation != .none {
                        let scratchBase = tmp.baseAddress ?? sample
                        augmentation.apply(to: sample, scratch: scratchBase, shape: shape, key: keys.isEmpty ? 0 : keys[n])
                    }
                    labels.append(dataset.label(at: index))
                }
            }
        }
    }
}
