/// A labelled collection of fixed-shape samples.
///
/// Implementations keep samples compact (bytes) and turn them into floats only when a batch is
/// formed, so a rank's memory stays small.
public protocol Dataset {
    /// The number of samples.
    var count: Int { get }
    /// The per-sample shape, `[C, H, W]`.
    var sampleShape: [Int] { get }
    /// The number of classes; labels are in `0..<classCount`.
    var classCount: Int { get }
    /// Human-readable class names (count == classCount).
    var classNames: [String] { get }
    /// The label of sample `index`.
    func label(at index: Int) -> Int32
    /// Writes sample `index` as floats scaled to [0, 1] (C·H·W values, NCHW order).
    func writeSample(at index: Int, into destination: UnsafeMutablePointer<Float>)
}

/// Images held as bytes in memory with integer labels: what the IDX, CIFAR-10 and image-folder
/// readers produce.
public struct InMemoryDataset: Dataset {
    /// `count · C·H·W` bytes, sample after sample, NCHW.
    public let pixels: [UInt8]
    /// One label per sample.
    public let labels: [Int32]
    public let sampleShape: [Int]
    public let classNames: [String]

    /// - Parameters:
    ///   - pixels: the samples' bytes, sample-major.
    ///   - labels: one per sample, each in `0..<classNames.count`.
    ///   - sampleShape: `[C, H, W]`.
    ///   - classNames: the class names.
    public init(pixels: [UInt8], labels: [Int32], sampleShape: [Int], classNames: [String]) {
        precondition(
            pixels.count == labels.count * sampleShape.reduce(1, *),
            "Dataset has \(labels.count) labels but \(pixels.count) bytes for samples of shape \(sampleShape).")
        self.pixels = pixels
        self.labels = labels
        self.sampleShape = sampleShape
        self.classNames = classNames
    }

    public var count: Int { labels.count }
    public var classCount: Int { classNames.count }
    public func label(at index: Int) -> Int32 { labels[index] }

    public func writeSample(at index: Int, into destination: UnsafeMutablePointer<Float>) {
        let size = sampleShape.reduce(1, *)
        pixels.withUnsafeBufferPointer { p in
            let base = p.baseAddress! + index * size
            for i in 0 ..< size { destination[i] = Float(base[i]) * (1.0 / 255.0) }
        }
    }

    /// The samples at `indices`, in that order (for splits and subsets).
    public func subset(_ indices: [Int]) -> InMemoryDataset {
        let size = sampleShape.reduce(1, *)
        var px = [UInt8]()
        px.reserveCapacity(indices.count * size)
        for i in indices { px.append(contentsOf: pixels[i * size ..< (i + 1) * size]) }
        return InMemoryDataset(pixels: px, labels: indices.map { labels[$0] }, sampleShape: sampleShape, classNames: classNames)
    }
}
