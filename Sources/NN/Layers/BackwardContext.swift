/// What a layer's backward pass may use besides its gradient: a callback that long layers call
/// between blocks of their work.
///
/// Data-parallel training starts a bucket's gradient reduction as soon as backward is done with
/// it. Without an asynchronous progress engine such a reduction advances only while the rank is
/// inside a call of the communication library, so one long layer (a convolution's backward over
/// the whole batch) would leave it standing. A layer whose backward is long runs it in blocks of
/// samples with `forEachBlock(of:_:)`, which calls `progress` between blocks, so reductions
/// started before the layer keep moving during it. NN never sees the communication library: the
/// callback is any closure, and layers that do not need it ignore the context.
public struct BackwardContext {
    /// Called between blocks of a long layer's backward; nil when there is nothing to advance.
    public var progress: (() -> Void)?
    /// Samples per block when `progress` is set (without it a layer runs its batch as one block).
    public var samplesPerBlock: Int

    /// - Parameters:
    ///   - progress: the callback, or nil (layers then run their backward in one piece).
    ///   - samplesPerBlock: samples per block between two calls of `progress`, at least 1.
    public init(progress: (() -> Void)? = nil, samplesPerBlock: Int = 1) {
        precondition(samplesPerBlock > 0, "A backward block needs at least one sample, got samplesPerBlock \(samplesPerBlock).")
        self.progress = progress
        self.samplesPerBlock = samplesPerBlock
    }

    /// Runs `body` over consecutive ranges that tile `0 ..< count`, calling `progress` between
    /// two ranges (not after the last: the caller of the layer polls once the layer returns).
    ///
    /// Without `progress`, `body` runs once over the whole range, so a layer's numbers are those
    /// of its unblocked backward; with it, `samplesPerBlock` samples at a time.
    /// - Parameters:
    ///   - count: the number of samples (≥ 0; `body` does not run for 0).
    ///   - body: the layer's work on a range of samples.
    public func forEachBlock(of count: Int, _ body: (Range<Int>) -> Void) {
        precondition(count >= 0, "Cannot split a negative number of samples (\(count)) into blocks.")
        guard let progress else {
            if count > 0 { body(0 ..< count) }
            return
        }
        var start = 0
        while start < count {
            let end = Swift.min(start + samplesPerBlock, count)
            body(start ..< end)
            start = end
            if start < count { progress() }
        }
    }
}
