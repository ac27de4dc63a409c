import NN

/// A small, learnable image dataset made up from a seed, so training and the gradient check run
/// without files.
///
/// Class `c` is a bright horizontal bar at a class-dependent row plus noise; a linear model can
/// learn it, and every rank builds the same samples from the same seed.
public enum SyntheticPatterns {
    /// Builds `count` images of `shape` `[C, H, W]` in `classes` classes.
    ///
    /// - Parameters:
    ///   - count: samples (≥ 0).
    ///   - shape: per-sample shape, H ≥ classes is best.
    ///   - classes: class count (> 1).
    ///   - seed: the data's seed.
    /// - Returns: an in-memory dataset; labels cycle through the classes in shuffled order.
    public static func make(count: Int, shape: [Int] = [1, 12, 12], classes: Int = 4, seed: UInt64 = 7) -> InMemoryDataset {
        precondition(shape.count == 3 && shape.allSatisfy { $0 > 0 }, "Synthetic samples need a shape [C, H, W], got \(shape).")
        precondition(classes > 1, "Synthetic data needs at least two classes, got \(classes).")
        let (c, h, w) = (shape[0], shape[1], shape[2])
        var g = SplitMix64(seed: seed, keys: [0xDA7A])
        var pixels = [UInt8](repeating: 0, count: count * c * h * w)
        var labels = [Int32](repeating: 0, count: count)
        for n in 0 ..< count {
            let label = Int(g.next() % UInt64(classes))
            labels[n] = Int32(label)
            let row = (label * h) / classes
            for ch in 0 ..< c {
                for y in 0 ..< h {
                    for x in 0 ..< w {
                        let noise = Int(g.next() % 96)
                        let bar = y == row ? 150 : 0
                        pixels[((n * c + ch) * h + y) * w + x] = UInt8(min(255, noise + bar))
                    }
                }
            }
        }
        return InMemoryDataset(
            pixels: pixels, labels: labels, sampleShape: shape,
            classNames: (0 ..< classes).map { "class\($0)" })
    }
}
