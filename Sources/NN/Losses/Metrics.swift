/// Classification metrics as counts of correct samples, so ranks can sum them and divide once.
public enum Metrics {
    /// The number of correct predictions, whatever the model's head: a model with one output
    /// (`[N, 1]`, sigmoid binary cross-entropy) predicts class 1 where its logit is positive
    /// (`binaryCorrectCount`); any other predicts the arg max of its logits (`correctCount`).
    ///
    /// - Parameters:
    ///   - logits: `[N, classes]`, or `[N, 1]` for a binary model.
    ///   - labels: N class indices (0 or 1 for a binary model).
    public static func correctPredictions(logits: Tensor, labels: [Int32]) -> Int {
        logits.shape.count == 2 && logits.shape[1] == 1
            ? binaryCorrectCount(logits: logits, labels: labels)
            : correctCount(logits: logits, labels: labels)
    }

    /// The number of samples whose highest logit is at their label (ties go to the lowest class
    /// index, like `numpy.argmax`).
    ///
    /// - Parameters:
    ///   - logits: `[N, classes]`.
    ///   - labels: N class indices.
    /// - Returns: the count of correct predictions, in `0...N`.
    public static func correctCount(logits: Tensor, labels: [Int32]) -> Int {
        topKCorrectCount(logits: logits, labels: labels, k: 1)
    }

    /// The number of samples whose label is among the `k` highest logits.
    ///
    /// A label's rank is the number of classes with a higher logit, plus those with an equal logit
    /// and a lower index (a stable descending sort), so top-1 agrees with `correctCount`.
    ///
    /// - Parameters:
    ///   - logits: `[N, classes]`.
    ///   - labels: N class indices.
    ///   - k: how many top classes count (≥ 1).
    /// - Returns: the count of correct predictions, in `0...N`.
    public static func topKCorrectCount(logits: Tensor, labels: [Int32], k: Int) -> Int {
        precondition(logits.shape.count == 2, "Metrics expect logits [N, classes], got \(logits.shape).")
        let n = logits.shape[0], classes = logits.shape[1]
        precondition(labels.count == n, "Metrics got \(labels.count) labels for \(n) samples.")
        precondition(k >= 1, "Top-k accuracy needs k ≥ 1, got \(k).")
        var correct = 0
        logits.storage.withUnsafeBufferPointer { z in
            for i in 0 ..< n {
                let label = Int(labels[i])
                precondition(label >= 0 && label < classes, "Label \(label) of sample \(i) is outside 0..<\(classes).")
                let row = i * classes, target = z[row + label]
                var rank = 0
                for j in 0 ..< classes where z[row + j] > target || (z[row + j] == target && j < label) { rank += 1 }
                if rank < k { correct += 1 }
            }
        }
        return correct
    }

    /// The number of samples whose binary prediction (`logit > 0`, i.e. probability > 0.5) equals
    /// their label.
    ///
    /// - Parameters:
    ///   - logits: `[N, 1]`.
    ///   - labels: N values in {0, 1}.
    /// - Returns: the count of correct predictions, in `0...N`.
    public static func binaryCorrectCount(logits: Tensor, labels: [Int32]) -> Int {
        precondition(logits.shape.count == 2 && logits.shape[1] == 1, "Binary metrics expect logits [N, 1], got \(logits.shape).")
        precondition(labels.count == logits.shape[0], "Metrics got \(labels.count) labels for \(logits.shape[0]) samples.")
        var correct = 0
        for i in 0 ..< labels.count where (logits.storage[i] > 0 ? 1 : 0) == labels[i] { correct += 1 }
        return correct
    }
}
