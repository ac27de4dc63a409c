/// Inverted dropout: in training, each element is zeroed with probability `rate` and the kept
/// ones are scaled by `1 / (1 − rate)`, so inference is the identity. Any shape in, same shape out.
///
/// Masks are drawn per sample from `SplitMix64(seed: sampleKey, keys: [streamKey])`, where the
/// sample key comes from `ForwardContext.sampleKeys`: a sample gets the same mask whichever rank
/// or batch position processes it, so a data-parallel run drops what a single rank would.
public struct Dropout: Layer {
    /// The probability of zeroing an element, in [0, 1).
    public let rate: Float
    /// Distinguishes this layer's random stream from other dropout layers' (models use a constant
    /// mixed with the layer's index).
    public let streamKey: UInt64

    // The scale of each element (0 or 1 / (1 − rate)); valid only after a training pass.
    private var mask: [Float] = []
    private var masked = false
    private var shape: [Int] = []
    // Output and input-gradient buffers, kept across steps (nothing downstream keeps them).
    private var output = Tensor(shape: [0])
    private var gradInput = Tensor(shape: [0])

    /// - Parameters:
    ///   - rate: the drop probability, 0 ≤ rate < 1.
    ///   - streamKey: the key of this layer's random stream.
    public init(rate: Float, streamKey: UInt64 = 0xD50F_0000) {
        precondition(rate >= 0 && rate < 1, "Dropout rate must be in [0, 1), got \(rate).")
        self.rate = rate
        self.streamKey = streamKey
    }

    public var summary: String { "dropout(\(rate))" }

    public func outputShape(for inputShape: [Int]) throws -> [Int] { inputShape }

    public mutating func forward(_ input: Tensor, arena: ParameterArena, context: ForwardContext) -> Tensor {
        shape = input.shape
        guard context.training, rate > 0 else {
            masked = false
            return input
        }
        let n = input.batchSize
        precondition(
            context.sampleKeys.count == n,
            "Dropout needs one sample key per sample in training: got \(context.sampleKeys.count) keys for a batch of \(n) (input \(input.shape)).")
        let perSample = n == 0 ? 0 : input.count / n
        let scale = 1 / (1 - rate)
        // Both are written in full below, so their old contents do not matter.
        if mask.count != input.count { mask = [Float](repeating: 0, count: input.count) }
        output.resize(to: input.shape)
        masked = true
        let (rate, streamKey) = (self.rate, self.streamKey)
        mask.withUnsafeMutableBufferPointer { m in
            output.storage.withUnsafeMutableBufferPointer { y in
                input.storage.withUnsafeBufferPointer { x in
                    for i in 0 ..< n {
                        var g = SplitMix64(seed: context.sampleKeys[i]).mixing(streamKey)
                        for j in i * perSample ..< (i + 1) * perSample {
                            // Keep with probability 1 − rate.
                            m[j] = g.nextUnitFloat() >= rate ? scale : 0
                            y[j] = x[j] * m[j]
                        }
                    }
                }
            }
        }
        return output
    }

    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        precondition(
            gradOutput.shape == shape,
            "Dropout.backward expects a gradient of shape \(shape), got \(gradOutput.shape).")
        guard masked else { return gradOutput }
        gradInput.resize(to: gradOutput.shape)
        let mask = self.mask
        gradInput.storage.withUnsafeMutableBufferPointer { gx in
            gradOutput.storage.withUnsafeBufferPointer { gy in
                for i in gx.indices { gx[i] = gy[i] * mask[i] }
            }
        }
        return gradInput
    }
}
