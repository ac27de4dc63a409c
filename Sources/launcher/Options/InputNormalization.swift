import ArgumentParser
import Foundation
import NN

/// The per-channel normalization a model was trained with (`ddp train --normalize`), applied after
/// pixels are scaled to [0, 1]: `x' = (x − mean[c]) / std[c]`.
///
/// `ddp eval` and `ddp predict` take it from `--normalize`, else from the checkpoint's recorded
/// options (key `normalize`, at the top of the options JSON or in its `options` object), else none.
struct InputNormalization: Equatable {
    /// The help of `--normalize` in `ddp eval` and `ddp predict` (`ddp train` has its own).
    static let inferenceHelp = ArgumentHelp(
        "Normalize inputs after scaling to [0, 1], as in training: MEAN,STD for every channel, or M1,..,MC,S1,..,SC per channel. Default: the normalization the checkpoint records, if any.",
        valueName: "mean,std")

    /// One mean per channel.
    var mean: [Float]
    /// One standard deviation per channel (> 0).
    var std: [Float]

    /// Parses `MEAN,STD` (every channel) or `M1,..,MC,S1,..,SC` for `channels` channels.
    ///
    /// - Parameters:
    ///   - text: the option's value.
    ///   - channels: the model's input channels.
    ///   - source: where the text came from, for messages (`--normalize`, or the checkpoint).
    /// - Throws: `InferenceError.badNormalization` naming the source and the problem.
    init(_ text: String, channels: Int, source: String) throws {
        let parsed: (mean: [Float], std: [Float])
        switch InputNormalization.parse(text) {
        case let .success(values): parsed = values
        case let .failure(problem): throw InferenceError.badNormalization(source: source, value: text, reason: problem.reason)
        }
        let half = parsed.mean.count
        guard half == 1 || half == channels else {
            throw InferenceError.badNormalization(
                source: source, value: text,
                reason: "\(half) means for a model with \(channels) channel\(channels == 1 ? "" : "s"); give 1\(channels == 1 ? "" : " or \(channels)")")
        }
        mean = half == 1 ? Array(repeating: parsed.mean[0], count: channels) : parsed.mean
        std = half == 1 ? Array(repeating: parsed.std[0], count: channels) : parsed.std
    }

    /// Why a normalization text cannot be read, as a phrase for messages.
    typealias SyntaxError = NormalizationText.SyntaxError

    /// The means and standard deviations of `MEAN,STD` or `M1,..,MC,S1,..,SC` (as many of each),
    /// before they are matched to a channel count: `NormalizationText.parse`, the one reader of
    /// `--normalize` for `train`, `eval` and `predict`, and of the value checkpoints record.
    static func parse(_ text: String) -> Result<(mean: [Float], std: [Float]), SyntaxError> {
        NormalizationText.parse(text)
    }

    /// The normalization to use: the option's, else the checkpoint's recorded one, else nil.
    ///
    /// - Throws: `InferenceError.badNormalization` for an unparsable value.
    static func resolve(option: String?, checkpoint: CheckpointModel) throws -> InputNormalization? {
        let channels = checkpoint.model.inputShape.first ?? 1
        if let option { return try InputNormalization(option, channels: channels, source: "--normalize") }
        guard let recorded = checkpoint.recordedOption("normalize"), !recorded.isEmpty else { return nil }
        return try InputNormalization(recorded, channels: channels, source: "checkpoint \(checkpoint.path)")
    }

    /// The same transformation as a batch augmentation (deterministic: no keys needed).
    func augmentation() throws -> Augmentation { try Augmentation(mean: mean, std: std) }

    /// Normalizes planes (C, H·W) in place.
    func apply(to planes: inout [Float]) {
        let plane = planes.count / mean.count
        for c in 0 ..< mean.count {
            // The same arithmetic as `Augmentation`, so predict and eval see identical inputs.
            let inverseStd = 1 / std[c], offset = -mean[c] * inverseStd
            for i in c * plane ..< (c + 1) * plane { planes[i] = planes[i] * inverseStd + offset }
        }
    }

    /// `MEAN,STD` text for logs and fingerprints.
    var description: String { (mean + std).map { "\($0)" }.joined(separator: ",") }
}
