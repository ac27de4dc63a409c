import Foundation

/// The text of a per-channel normalization, `MEAN,STD` or `M1,..,MC,S1,..,SC`: the one reader of
/// `--normalize` (for `train`, `eval` and `predict`) and of the value checkpoints record.
public enum NormalizationText {
    /// Why a normalization text cannot be read, as a phrase for messages.
    public struct SyntaxError: Error, Equatable {
        /// The phrase, e.g. "every standard deviation must be > 0".
        public let reason: String
    }

    /// The means and standard deviations of `MEAN,STD` or `M1,..,MC,S1,..,SC` (as many of each),
    /// before they are matched to a channel count.
    ///
    /// - Parameter text: the option's or the checkpoint's value.
    /// - Returns: the means and the standard deviations (finite, each deviation > 0), or why not.
    public static func parse(_ text: String) -> Result<(mean: [Float], std: [Float]), SyntaxError> {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.count % 2 == 0, parts.allSatisfy({ $0?.isFinite == true }) else {
            return .failure(SyntaxError(reason: "expected MEAN,STD or M1,..,MC,S1,..,SC (an even count of numbers)"))
        }
        let values = parts.map { $0! }, half = values.count / 2
        guard values[half...].allSatisfy({ $0 > 0 }) else {
            return .failure(SyntaxError(reason: "every standard deviation must be > 0"))
        }
        return .success((Array(values[..<half]), Array(values[half...])))
    }
}
