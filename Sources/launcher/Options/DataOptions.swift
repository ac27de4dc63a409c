import ArgumentParser
import Dist
import Foundation
import NN

/// Where training data comes from, the validation split, and the augmentation.
struct DataOptions: ParsableArguments {
    /// Debian's `dataset-fashion-mnist` package puts the files here.
    static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    @Option(
        help: ArgumentHelp(
            "A dataset directory: IDX (MNIST, Fashion-MNIST; raw or .gz), CIFAR-10 binary, or one sub-folder per class (with optional train/ and test/). Default: \(DataOptions.defaultDirectory) when it exists, else synthetic data.",
            valueName: "dir"))
    var data: String?

    @Option(help: ArgumentHelp("Train on a synthetic dataset of N samples instead of --data (its test set has a quarter as many).", valueName: "N"))
    var syntheticSamples: Int?

    @Option(
        help: ArgumentHelp("Hold out this fraction of the training set for validation, in [0, 1) (seeded by --seed, the same on every rank).", valueName: "F"))
    var validationSplit = 0.0

    @Option(
        help: ArgumentHelp(
            "Validate each epoch on this data instead of a split of the training set: test (the dataset's test split, then not evaluated again at the end unless --evaluate-test) or a dataset folder (its test split, or the folder's class folders).",
            valueName: "test|dir"))
    var validationData: String?

    @Flag(help: "With --validation-data test: still evaluate the test split once more after the last epoch.")
    var evaluateTest = false

    @Flag(help: "Augment: mirror each training image left-right with probability 1/2.")
    var flip = false

    @Option(help: ArgumentHelp("Augment: shift each training image by up to this many pixels in x and y.", valueName: "pixels"))
    var shift = 0

    @Option(help: ArgumentHelp("Augment: zoom each training image by a factor in [1-F, 1+F] per axis, F in [0, 1).", valueName: "F"))
    var zoom: Float = 0

    @Option(help: ArgumentHelp("Augment: shear each training image by an angle in [-D, D] degrees, D in [0, 90).", valueName: "D"))
    var shear: Float = 0

    @Option(
        help: ArgumentHelp(
            "Normalize inputs (training and evaluation) after scaling to [0, 1]: MEAN,STD for every channel, or M1,..,MC,S1,..,SC per channel.",
            valueName: "mean,std"))
    var normalize: String?

    func validate() throws {
        if let n = syntheticSamples, n <= 0 { throw LaunchError("--synthetic-samples must be positive, got \(n)") }
        if data != nil && syntheticSamples != nil { throw LaunchError("--data and --synthetic-samples exclude each other; hint: pass one of them") }
        guard validationSplit >= 0, validationSplit < 1 else { throw LaunchError("--validation-split must be in [0, 1), got \(validationSplit)") }
        if let v = validationData, validationSplit > 0 {
            throw LaunchError("--validation-data \(v) and --validation-split \(validationSplit) exclude each other; hint: pass one of them")
        }
        if evaluateTest && validationData != "test" {
            throw LaunchError("--evaluate-test needs --validation-data test (the test split is evaluated at the end anyway)")
        }
        guard shift >= 0 else { throw LaunchError("--shift must be 0 or more pixels, got \(shift)") }
        guard zoom >= 0, zoom < 1 else { throw LaunchError("--zoom must be in [0, 1), got \(zoom)") }
        guard shear >= 0, shear < 90 else { throw LaunchError("--shear must be in [0, 90) degrees, got \(shear)") }
        _ = try normalization()
    }

    /// `--normalize` as (means, stds), one value each when it applies to every channel.
    func normalization() throws -> (mean: [Float], std: [Float])? {
        guard let text = normalize else { return nil }
        switch InputNormalization.parse(text) {
        case let .success(values): return values
        case let .failure(problem): throw LaunchError("--normalize \(text): \(problem.reason)")
        }
    }

    /// The augmentation for samples with `channels` channels.
    func augmentation(channels: Int) throws -> Augmentation {
        var mean: [Float] = [], std: [Float] = []
        if let (m, s) = try normalization() {
            guard m.count == 1 || m.count == channels else {
                throw LaunchError(
                    "--normalize \(normalize!): \(m.count) means for data with \(channels) channels; hint: give 1 or \(channels) means and as many standard deviations"
                )
            }
            mean = m.count == 1 ? Array(repeating: m[0], count: channels) : m
            std = s.count == 1 ? Array(repeating: s[0], count: channels) : s
        }
        return try Augmentation(mean: mean, std: std, horizontalFlip: flip, maxShift: shift, zoomRange: zoom, shearRange: shear)
    }

    /// The directory to read, or nil for synthetic data.
    var directory: String? {
        if syntheticSamples != nil { return nil }
        if let data { return data }
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: DataOptions.defaultDirectory, isDirectory: &isDirectory) && isDirectory.boolValue
            ? DataOptions.defaultDirectory : nil
    }

    /// A short description of the source, for logs and checkpoints.
    var source: String { directory ?? "synthetic \(syntheticSamples ?? 1024)" }

    /// Loads (or makes) the training, validation and test sets on this rank (each rank reads the
    /// same files once).
    ///
    /// - Throws: `DistError.data` naming the directory and the problem.
    func load(rank: Int, seed: UInt64) throws -> (train: InMemoryDataset, validation: InMemoryDataset?, test: InMemoryDataset?) {
        var train: InMemoryDataset, test: InMemoryDataset?
        if let dir = directory {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DistError.data(rank: rank, reason: "--data \(dir): no such directory")
            }
            do {
                (train, test) = try DatasetDirectory.load(dir)
            } catch {
                throw DistError.data(rank: rank, reason: "--data \(dir): \(error)")
            }
        } else {
            let n = syntheticSamples ?? 1024
            train = SyntheticPatterns.make(count: n, seed: 7)
            test = SyntheticPatterns.make(count: max(1, n / 4), seed: 8)
        }
        if let v = validationData { return try withValidationData(v, train: train, test: test, rank: rank) }
        guard validationSplit > 0 else { return (train, nil, test) }
        do {
            let (rest, held) = try train.splitValidation(fraction: validationSplit, seed: seed)
            return (rest, held.count > 0 ? held : nil, test)
        } catch {
            throw DistError.data(rank: rank, reason: "--validation-split \(validationSplit): \(error)")
        }
    }
}

extension DataOptions {
    /// Whether a validation set is asked for (`--validation-split` or `--validation-data`).
    var hasValidation: Bool { validationSplit > 0 || validationData != nil }

    /// The sets for `--validation-data`: the test split as validation (and as test only with
    /// `--evaluate-test`), or another dataset that must have the training set's sample shape and classes.
    ///
    /// - Throws: `DistError.data` naming the option and the problem.
    func withValidationData(
        _ source: String, train: InMemoryDataset, test: InMemoryDataset?,
        rank: Int
    ) throws -> (train: InMemoryDataset, validation: InMemoryDataset?, test: InMemoryDataset?) {
        if source == "test" {
            guard let test else {
                throw DistError.data(
                    rank: rank, reason: "--validation-data test: \(self.source) has no test split; hint: pass --validation-split F or a dataset folder")
            }
            return (train, test, evaluateTest ? test : nil)
        }
        let validation: InMemoryDataset
        do {
            validation = try EvaluationData.load(source, split: .test, channels: train.sampleShape[0], idxClasses: train.classNames).dataset
        } catch {
            throw DistError.data(rank: rank, reason: "--validation-data \(source): \(error)")
        }
        guard validation.sampleShape == train.sampleShape, validation.classCount == train.classCount else {
            throw DistError.data(
                rank: rank,
                reason:
                    "--validation-data \(source): samples of shape \(validation.sampleShape) in \(validation.classCount) classes, but the training set has \(train.sampleShape) in \(train.classCount); hint: validate on data of the same kind"
            )
        }
        return (train, validation, test)
    }
}

/// Which model to build.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A built-in model (\(ModelSpec.builtinNames.joined(separator: ", "))) or a model file (.json, .yaml).", valueName: "name|file"))
    var model = "tiny"

    @Option(help: "Seeds the parameters, the batch order, the validation split and the per-sample randomness.")
    var seed: UInt64 = 1

    /// The model's description for the data's sample shape and classes.
    ///
    /// - Throws: `ModelError`/`ModelFileError`, or `LaunchError` when a model file's input or
    ///   output does not fit the data.
    func spec(for dataset: Dataset) throws -> ModelSpec {
        let spec = try ModelSpec.resolve(model, inputShape: dataset.sampleShape, classes: dataset.classCount)
        guard spec.inputShape == dataset.sampleShape else {
            throw LaunchError(
                "--model \(model): the model's input shape \(spec.inputShape) differs from the data's sample shape \(dataset.sampleShape) (C,H,W); hint: set the file's input to \(dataset.sampleShape) or omit it"
            )
        }
        guard let output = try? spec.outputShapes().last else { return spec }
        let outputs = output.reduce(1, *)
        if spec.loss == .sigmoidBinaryCrossEntropy {
            // One logit for two classes, as Keras's class_mode='binary': the sorted first folder is 0, the second 1.
            guard dataset.classCount == 2 else {
                throw LaunchError(
                    "--model \(model): a one-output sigmoid model needs data with 2 classes, the data has \(dataset.classCount); hint: use loss softmax-cross-entropy with a last dense layer of \(dataset.classCount) units (or classes)"
                )
            }
        } else if outputs != dataset.classCount {
            throw LaunchError(
                "--model \(model): the model has \(outputs) outputs but the data has \(dataset.classCount) classes; hint: set the last dense layer's units to \(dataset.classCount) (or classes)"
            )
        }
        return spec
    }
}

extension ReductionMode: ExpressibleByArgument {}
extension LastBatchPolicy: ExpressibleByArgument {}
extension MonitoredMetric: ExpressibleByArgument {}
