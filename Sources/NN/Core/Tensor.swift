/// A dense, row-major Float32 tensor (NCHW for images, NF for features).
///
/// Storage is a Swift array, so copies share it until one is written (copy on write). Layers keep
/// the tensors they need for backward; kernels reach the storage through scoped pointer closures.
public struct Tensor: Equatable {
    /// The extent of each dimension, outermost first (for images: `[N, C, H, W]`).
    public private(set) var shape: [Int]
    /// The elements in row-major order; `storage.count == shape.reduce(1, *)`.
    public var storage: [Float]

    /// Creates a tensor of the given shape filled with `value`.
    ///
    /// - Parameters:
    ///   - shape: non-negative extents.
    ///   - value: the fill value.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape must be non-negative, got \(shape).")
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Creates a tensor of the given shape over existing values.
    ///
    /// - Parameters:
    ///   - shape: non-negative extents whose product is `values.count`.
    ///   - values: the elements in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor shape must be non-negative, got \(shape).")
        precondition(
            shape.reduce(1, *) == values.count,
            "Tensor of shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count).")
        self.shape = shape
        self.storage = values
    }

    /// A tensor of shape `[0]`, shared: a layer that lets go of a cached tensor assigns it, which
    /// allocates nothing.
    public static let empty = Tensor(shape: [0])

    /// The number of elements.
    @inlinable public var count: Int { storage.count }

    /// The extent of the outermost (batch) dimension; 0 for a scalar.
    @inlinable public var batchSize: Int { shape.first ?? 0 }

    /// The shape of one sample: every dimension but the first.
    public var sampleShape: [Int] { Array(shape.dropFirst()) }

    /// Returns the same elements under a new shape with the same element count.
    ///
    /// - Parameter newShape: the shape to view the elements as.
    /// - Returns: a tensor sharing this one's storage until either is written.
    public func reshaped(to newShape: [Int]) -> Tensor {
        precondition(
            newShape.reduce(1, *) == count,
            "Cannot reshape a tensor of shape \(shape) (\(count) elements) to \(newShape).")
        var copy = self
        copy.shape = newShape
        return copy
    }

    /// Resizes to `newShape` if needed, keeping storage when the element count is unchanged.
    ///
    /// Contents are unspecified afterwards. Layers use this to reuse output buffers across steps.
    /// - Parameter newShape: the required shape.
    public mutating func resize(to newShape: [Int]) {
        let n = newShape.reduce(1, *)
        if storage.count != n { storage = [Float](repeating: 0, count: n) }
        shape = newShape
    }

    /// `resize(to: [d0, d1])` without building the shape array when the shape is unchanged (a
    /// layer's steady step allocates nothing).
    public mutating func resize(_ d0: Int, _ d1: Int) {
        guard shape.count != 2 || shape[0] != d0 || shape[1] != d1 else { return }
        resize(to: [d0, d1])
    }

    /// `resize(to: [d0, d1, d2, d3])` without building the shape array when the shape is unchanged.
    public mutating func resize(_ d0: Int, _ d1: Int, _ d2: Int, _ d3: Int) {
        guard shape.count != 4 || shape[0] != d0 || shape[1] != d1 || shape[2] != d2 || shape[3] != d3 else { return }
        resize(to: [d0, d1, d2, d3])
    }
}

extension Tensor {
    /// The samples of `parts`, one after another: shape `[Σ N_i, …]` (every part has the same
    /// per-sample shape).
    public init(joiningRows parts: [Tensor]) {
        var joined = Tensor.empty
        Tensor.joinRows(parts, into: &joined)
        self = joined
    }

    /// `tensor`'s samples cut into consecutive tensors of `counts[i]` samples each.
    public static func splittingRows(_ tensor: Tensor, counts: [Int]) -> [Tensor] {
        var parts: [Tensor] = []
        splitRows(tensor, counts: counts, into: &parts)
        return parts
    }

    /// `init(joiningRows:)` into a tensor the caller keeps: its storage is reused when the size is
    /// unchanged (and nothing else holds it), so a training step that joins the same shapes each
    /// time allocates nothing.
    ///
    /// - Parameters:
    ///   - parts: at least one tensor; every part has the same per-sample shape (read).
    ///   - joined: resized to `[Σ N_i, …]` and overwritten with the parts' samples in order.
    public static func joinRows(_ parts: [Tensor], into joined: inout Tensor) {
        precondition(!parts.isEmpty, "Cannot join the rows of no tensors.")
        var rows = 0
        for part in parts {
            precondition(
                part.shape.count == parts[0].shape.count && part.shape.dropFirst().elementsEqual(parts[0].shape.dropFirst()),
                "Cannot join rows of shape \(part.shape) to rows of shape \(parts[0].shape).")
            rows += part.batchSize
        }
        joined.resize(rows: rows, sampleShapeOf: parts[0])
        joined.storage.withUnsafeMutableBufferPointer { out in
            var at = 0
            for part in parts {
                part.storage.withUnsafeBufferPointer { p in
                    if p.count > 0 { (out.baseAddress! + at).update(from: p.baseAddress!, count: p.count) }
                }
                at += part.count
            }
        }
    }

    /// `splittingRows(_:counts:)` into tensors the caller keeps: `parts` ends with `counts.count`
    /// tensors, whose storage is reused when their sizes are unchanged (and nothing else holds them).
    ///
    /// - Parameters:
    ///   - tensor: `[Σ counts, …]` (read).
    ///   - counts: the samples of each part, in order.
    ///   - parts: part i is resized to `[counts[i], …]` and overwritten with its samples.
    public static func splitRows(_ tensor: Tensor, counts: [Int], into parts: inout [Tensor]) {
        precondition(counts.reduce(0, +) == tensor.batchSize, "Cannot split \(tensor.batchSize) samples into \(counts).")
        let width = tensor.shape.dropFirst().reduce(1, *)
        if parts.count > counts.count { parts.removeLast(parts.count - counts.count) }
        while parts.count < counts.count { parts.append(.empty) }
        tensor.storage.withUnsafeBufferPointer { source in
            var start = 0
            for (i, n) in counts.enumerated() {
                parts[i].resize(rows: n, sampleShapeOf: tensor)
                parts[i].storage.withUnsafeMutableBufferPointer { part in
                    if n * width > 0 { part.baseAddress!.update(from: source.baseAddress! + start * width, count: n * width) }
                }
                start += n
            }
        }
    }

    /// Resizes to `[rows] + other.sampleShape` (contents unspecified), building no shape array when
    /// the shape is unchanged.
    private mutating func resize(rows: Int, sampleShapeOf other: Tensor) {
        guard shape.count != other.shape.count || shape.first != rows || !shape.dropFirst().elementsEqual(other.shape.dropFirst()) else {
            return
        }
        resize(to: [rows] + other.shape.dropFirst())
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}
