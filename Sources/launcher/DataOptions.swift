import ArgumentParser
import Dist
import Foundation
import NN

/// Where training data comes from. Until the dataset readers land, `--data` is checked but only
/// synthetic data (the default) can be trained on.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A dataset directory (IDX, CIFAR-10 binary or class folders). Without it, a synthetic dataset is used.", valueName: "dir"))
    var data: String?

    @Option(help: "Samples in the synthetic training set (its test set has a quarter as many).")
    var syntheticSamples = 1024

    @Option(help: .hidden)
    var failOnRank: Int?

    func validate() throws {
        guard syntheticSamples > 0 else { throw ValidationError("--synthetic-samples must be positive, got \(syntheticSamples)") }
    }

    /// Loads (or makes) the training and test sets on this rank.
    ///
    /// - Throws: `DistError.data` naming the directory and the problem.
    func load(rank: Int) throws -> (train: Dataset, test: Dataset) {
        if let r = failOnRank, r == rank {
            // Test hook: this rank fails while the others go on into the first collective.
            throw DistError.data(rank: rank, reason: "--fail-on-rank \(r): simulated read failure")
        }
        if let dir = data {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DistError.data(rank: rank, reason: "--data \(dir): no such directory")
            }
            throw DistError.data(rank: rank, reason: "--data \(dir): this build has no dataset readers yet; hint: omit --data to train on synthetic data")
        }
        return (SyntheticPatterns.make(count: syntheticSamples, seed: 7),
                SyntheticPatterns.make(count: max(1, syntheticSamples / 4), seed: 8))
    }
}

/// Which model to build.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A built-in model: \(ModelSpec.builtinNames.joined(separator: ", ")).", valueName: "name"))
    var model = "tiny"

    @Option(help: "Seeds the parameters, the batch order and the per-sample randomness.")
    var seed: UInt64 = 1

    /// The model's description for the data's sample shape and classes.
    func spec(for dataset: Dataset) throws -> ModelSpec {
        try ModelSpec.builtin(model, inputShape: dataset.sampleShape, classes: dataset.classCount)
    }
}

extension ReductionMode: ExpressibleByArgument {}
extension LastBatchPolicy: ExpressibleByArgument {}
