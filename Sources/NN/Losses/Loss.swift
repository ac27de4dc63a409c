#if canImport(Glibc)
    import Glibc
#else
    import Foundation
#endif

/// A loss over a batch's logits and integer labels.
///
/// Losses return the *sum* over the batch and the gradient of that sum: a rank's gradient is then
/// the sum over its shard, and the data-parallel reduction divides by the global batch once, which
/// gives the exact global mean however unevenly the batch was split.
public protocol Loss {
    /// A stable name, e.g. `softmax-cross-entropy`.
    var name: String { get }
    /// Returns the summed loss and writes its gradient with respect to `logits` into `gradient`.
    ///
    /// - Parameters:
    ///   - logits: `[N, classes]` (or `[N, 1]` for binary losses).
    ///   - labels: N class indices.
    ///   - gradient: resized to the logits' shape and overwritten; its storage is reused when the
    ///     size is unchanged, so a training loop that keeps it allocates nothing per step.
    func evaluate(logits: Tensor, labels: [Int32], gradient: inout Tensor) -> Double
}

extension Loss {
    /// Returns the summed loss and its gradient with respect to `logits`, in a new tensor.
    ///
    /// - Parameters:
    ///   - logits: `[N, classes]` (or `[N, 1]` for binary losses).
    ///   - labels: N class indices.
    public func evaluate(logits: Tensor, labels: [Int32]) -> (sum: Double, gradient: Tensor) {
        var gradient = Tensor(shape: [0])
        let sum = evaluate(logits: logits, labels: labels, gradient: &gradient)
        return (sum, gradient)
    }
}

/// Softmax cross-entropy over integer class labels, computed with a stable log-sum-exp.
///
/// `loss_i = logsumexp(z_i) − z_i[y_i]`; `∂loss_i/∂z_i = softmax(z_i) − onehot(y_i)`.
public struct SoftmaxCrossEntropy: Loss {
    public init() {}

    public var name: String { "softmax-cross-entropy" }

    public func evaluate(logits: Tensor, labels: [Int32], gradient: inout Tensor) -> Double {
        precondition(logits.shape.count == 2, "SoftmaxCrossEntropy expects logits [N, classes], got \(logits.shape).")
        let n = logits.shape[0], classes = logits.shape[1]
        precondition(labels.count == n, "SoftmaxCrossEntropy got \(labels.count) labels for \(n) samples.")
        // Every element is written below, so the old contents do not matter.
        gradient.resize(to: logits.shape)
        var total = 0.0
        logits.storage.withUnsafeBufferPointer { z in
            gradient.storage.withUnsafeMutableBufferPointer { g in
                for i in 0 ..< n {
                    let label = Int(labels[i])
                    precondition(
                        label >= 0 && label < classes,
                        "Label \(label) of sample \(i) is outside 0..<\(classes).")
                    let row = i * classes
                    var maxZ = -Float.infinity
                    for j in 0 ..< classes { maxZ = max(maxZ, z[row + j]) }
                    var sumExp = 0.0
                    for j in 0 ..< classes {
                        let e = exp(Double(z[row + j] - maxZ))
                        g[row + j] = Float(e)
                        sumExp += e
                    }
                    total += log(sumExp) + Double(maxZ) - Double(z[row + label])
                    let inv = 1 / sumExp
                    for j in 0 ..< classes { g[row + j] = Float(Double(g[row + j]) * inv) }
                    g[row + label] -= 1
                }
            }
        }
        return total
    }
}
