import NN

/// A dense weight that is the only trainable slot of its bucket, whose gradient over a batch,
/// `Σ gyᵀ·x`, can travel as its factors: every sample's output gradient gy (`units` floats) and
/// input x (`features` floats), kept as `[gy | x]` rows. Both reducers send such weights this way
/// (`GradientReducer` with `--dense-factors`, `ExactGradientReducer` on several ranks).
struct FactoredWeight {
    let slot: Int
    let units: Int, features: Int
    /// Floats a sample: one `[gy | x]` row.
    var width: Int { units + features }

    /// The dense weight among `denseWeights` (arena slots, `[units, features]`) that is the only
    /// trainable slot starting in `bucket`, if there is one.
    init?(bucket: Range<Int>, arena: ParameterArena, denseWeights: Set<Int>) {
        let trainable = arena.slots.indices.filter { arena.slots[$0].trainable && bucket.contains(arena.slots[$0].offset) }
        guard trainable.count == 1, let s = trainable.first, denseWeights.contains(s), arena.slots[s].shape.count == 2 else { return nil }
        slot = s
        units = arena.slots[s].shape[0]
        features = arena.slots[s].shape[1]
    }

    /// Copies `count` samples' gy `[count, units]` and x `[count, features]` into `[gy | x]` rows
    /// starting at `rows`.
    func store(_ rows: UnsafeMutablePointer<Float>, gradOutput gy: UnsafePointer<Float>, input x: UnsafePointer<Float>, count: Int) {
        var row = rows
        for i in 0 ..< count {
            row.update(from: gy + i * units, count: units)
            (row + units).update(from: x + i * features, count: features)
            row += width
        }
    }
}

/// A buffer that grows to the largest size asked of it and is kept for later calls.
final class GrowingBuffer<Element> {
    private var pointer: UnsafeMutablePointer<Element>?
    private var capacity = 0

    deinit { pointer?.deallocate() }

    /// At least `count` elements; their contents are whatever the last user left.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if capacity < count {
            pointer?.deallocate()
            pointer = UnsafeMutablePointer<Element>.allocate(capacity: count)
            capacity = count
        }
        return pointer!
    }
}
