import Dist

/// The library checks the training options (`TrainingConfiguration.validateOptions`); the
/// launcher only names them as its command line does, so a bad value is refused while parsing,
/// before any rank starts, with the library's reason.
enum ConfigurationCheck {
    /// The command-line flag of each option the library names.
    static let flags: [String: String] = [
        "epochs": "--epochs", "global batch size": "--batch-size", "accumulate": "--accumulate",
        "chunk size": "--chunk-size", "threads": "--threads", "dense-factors": "--dense-factors",
        "compression": "--compression", "bucket capacity": "--bucket-floats", "max steps per epoch": "--max-steps",
        "stop after steps": "--stop-after", "early stopping patience": "--early-stopping-patience",
        "min delta": "--min-delta", "checkpoint every": "--checkpoint-every", "keep last": "--keep-last"
    ]

    /// Runs the library's checks of `configuration`.
    ///
    /// - Parameter renamed: flags a command spells otherwise (`gradcheck`'s `--batch`).
    /// - Throws: `LaunchError` "FLAG REASON" for an option with a flag; the library's error otherwise.
    static func validate(_ configuration: TrainingConfiguration, renamed: [String: String] = [:]) throws {
        do {
            try configuration.validateOptions()
        } catch let DistError.invalidConfiguration(option, reason) {
            guard let flag = renamed[option] ?? flags[option] else { throw DistError.invalidConfiguration(option: option, reason: reason) }
            throw LaunchError("\(flag) \(reason)")
        }
    }
}
