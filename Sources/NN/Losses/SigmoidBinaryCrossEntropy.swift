#if canImport(Glibc)
    import Glibc
#else
    import Foundation
#endif

/// Binary cross-entropy on logits, with the sigmoid folded in for numerical stability.
///
/// Logits `[N, 1]`, labels N values in {0, 1}.
/// `loss_i = max(z_i, 0) − z_i · y_i + log(1 + exp(−|z_i|))` (never overflows, exact for large |z|);
/// `∂loss_i/∂z_i = sigmoid(z_i) − y_i`. Like every `Loss`, returns the sum over the batch and the
/// gradient of the sum.
public struct SigmoidBinaryCrossEntropy: Loss {
    public init() {}

    public var name: String { "sigmoid-binary-cross-entropy" }

    public func evaluate(logits: Tensor, labels: [Int32], gradient: inout Tensor) -> Double {
        precondition(
            logits.shape.count == 2 && logits.shape[1] == 1,
            "SigmoidBinaryCrossEntropy expects logits [N, 1], got \(logits.shape).")
        let n = logits.shape[0]
        precondition(labels.count == n, "SigmoidBinaryCrossEntropy got \(labels.count) labels for \(n) samples.")
        // Every element is written below, so the old contents do not matter.
        gradient.resize(to: logits.shape)
        var total = 0.0
        for i in 0 ..< n {
            let label = labels[i]
            precondition(label == 0 || label == 1, "Binary label \(label) of sample \(i) is not 0 or 1.")
            let z = Double(logits.storage[i]), y = Double(label)
            total += max(z, 0) - z * y + log1p(exp(-abs(z)))
            // sigmoid without overflow: for z < 0 use e^z / (1 + e^z).
            let sigmoid = z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
            gradient.storage[i] = Float(sigmoid - y)
        }
        return total
    }
}
