extension InMemoryDataset {
    /// Splits off a random validation set (seeded, not stratified).
    ///
    /// The samples are shuffled with `SplitMix64(seed: seed, keys: [0x5A1D])`; the first
    /// `round(fraction · count)` become the validation set. Both parts keep the original order.
    ///
    /// - Parameters:
    ///   - fraction: the share held out, in [0, 1); 0 gives an empty validation set.
    ///   - seed: the run's seed, so every rank makes the same split.
    /// - Returns: the remaining training samples and the validation samples.
    /// - Throws: `DataError.invalidOption` when the fraction is outside [0, 1) or leaves no
    ///   training sample.
    public func splitValidation(fraction: Double, seed: UInt64) throws -> (train: InMemoryDataset, validation: InMemoryDataset) {
        guard fraction >= 0, fraction < 1 else {
            throw DataError.invalidOption(
                option: "validation fraction", value: "\(fraction)",
                reason: "the validation fraction must be in [0, 1)")
        }
        let held = Int((fraction * Double(count)).rounded())
        guard held < count else {
            throw DataError.invalidOption(
                option: "validation fraction", value: "\(fraction)",
                reason: "it leaves no training sample out of \(count)")
        }
        var order = Array(0 ..< count)
        var generator = SplitMix64(seed: seed, keys: [0x5A1D])
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        let validation = order[..<held].sorted(), train = order[held...].sorted()
        return (subset(train), subset(validation))
    }
}
