import NN

/// Deterministic mode: the buffers of a rank's chunks, kept by the trainer from step to step (each
/// is refilled in place, so a steady step allocates nothing).
struct ChunkBuffers {
    /// The micro-batch's chunks, as positions within it.
    var ranges: [Range<Int>] = []
    /// Per chunk of this rank: its dataset indices, its batch (input, labels, sample keys) and its
    /// loss gradient.
    var indices: [[Int]] = []
    var inputs: [Tensor] = []
    var labels: [[Int32]] = []
    var keys: [[UInt64]] = []
    var gradLogits: [Tensor] = []
    /// The augmentation's scratch sample.
    var scratch: [Float] = []
    /// Per chunk of this rank, during the pass: the activation, then the gradient, at the current
    /// layer; its rows (samples) and its rows within the dense layers' joined batch.
    var xs: [Tensor] = []
    var grads: [Tensor] = []
    var rows: [Int] = []
    var chunkRows: [Range<Int>] = []
    /// Per layer (used by the dense ones): the chunks' rows joined into one batch, and its output
    /// cut back into chunks; the same for the output gradient and the input gradient.
    var denseInputs: [Tensor] = []
    var denseOutputs: [[Tensor]] = []
    var denseGradOutputs: [Tensor] = []
    var denseGradInputs: [[Tensor]] = []
    /// A synchronized batch norm's statistics or backward sums of each chunk, one after another.
    var statistics: [Double] = []

    /// Room for `chunks` chunks of a model of `layers` layers: the per-chunk buffers grow (never
    /// shrink, so a short last batch does not drop them), the pass's arrays hold exactly `chunks`.
    mutating func prepare(chunks: Int, layers: Int) {
        while indices.count < chunks {
            indices.append([])
            inputs.append(.empty)
            labels.append([])
            keys.append([])
            gradLogits.append(.empty)
        }
        ChunkBuffers.resize(&xs, to: chunks)
        ChunkBuffers.resize(&grads, to: chunks)
        if rows.count != chunks {
            rows = [Int](repeating: 0, count: chunks)
            chunkRows = [Range<Int>](repeating: 0 ..< 0, count: chunks)
        }
        if denseInputs.count < layers {
            denseInputs = [Tensor](repeating: .empty, count: layers)
            denseOutputs = [[Tensor]](repeating: [], count: layers)
            denseGradOutputs = denseInputs
            denseGradInputs = denseOutputs
        }
    }

    /// Makes `statistics` hold `width` values for each of `chunks` chunks, one chunk after another,
    /// and has `fill` write chunk j's (a synchronized batch norm's statistics or backward sums).
    mutating func fillStatistics(chunks: Int, width: Int, _ fill: (Int, UnsafeMutableBufferPointer<Double>) -> Void) {
        ChunkBuffers.resize(&statistics, to: chunks * width)
        statistics.withUnsafeMutableBufferPointer { local in
            for j in 0 ..< chunks { fill(j, UnsafeMutableBufferPointer(rebasing: local[j * width ..< (j + 1) * width])) }
        }
    }

    /// Drops or appends empty tensors until `tensors` holds `count` (keeping its storage).
    private static func resize(_ tensors: inout [Tensor], to count: Int) {
        if tensors.count > count { tensors.removeLast(tensors.count - count) }
        while tensors.count < count { tensors.append(.empty) }
    }

    /// Makes `values` hold `count` values, keeping its storage (contents unspecified).
    static func resize(_ values: inout [Double], to count: Int) {
        if values.count > count { values.removeLast(values.count - count) }
        if values.count < count { values.append(contentsOf: repeatElement(0, count: count - values.count)) }
    }
}
