import ArgumentParser
import Foundation

/// `--sample-shape C,H,W`: the shape of the synthetic samples that `bench steps` and `gradcheck`
/// make (each command keeps its own default).
enum SampleShapeOption {
    /// The option's value as [C, H, W], or nil unless it is three positive integers.
    static func parse(_ text: String) -> [Int]? {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return parts.map { $0! }
    }

    /// Refuses a value that `parse` cannot read.
    ///
    /// - Throws: `ValidationError` naming the option and the value.
    static func validate(_ text: String) throws {
        guard parse(text) != nil else { throw ValidationError("--sample-shape must be three positive integers C,H,W, got '\(text)'") }
    }
}
