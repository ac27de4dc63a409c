import ArgumentParser
import Foundation
import NN

/// Which part of a dataset folder `ddp eval` reads.
enum DataSplit: String, CaseIterable, ExpressibleByArgument {
    /// The held-out samples (`t10k-*` IDX files, `test_batch.bin`, `test/`).
    case test
    /// The training samples.
    case train
}

/// Loading one split of a dataset folder for evaluation.
///
/// IDX folders are read file by file, so evaluating the test split does not read the training
/// files; class folders read only `train/` or `test/`. A folder that is itself one
/// tree of class folders (no `train/` or `test/`) is the evaluation set whichever split is asked for.
enum EvaluationData {
    /// Loads `split` of the dataset in `directory`.
    ///
    /// - Parameters:
    ///   - directory: the folder (IDX, CIFAR-10 binary, or class folders).
    ///   - split: test or train.
    ///   - channels: for class folders, 1 or 3 to convert images to (nil: the first image's).
    ///   - idxClasses: for IDX files, which record no classes, the class names (labels must be
    ///     below their count); nil: Fashion-MNIST's.
    /// - Returns: the samples and a description for messages (`DIR (test split)`).
    /// - Throws: `DataError` naming the file at fault, or `InferenceError.missingSplit`.
    static func load(_ directory: String, split: DataSplit, channels: Int?, idxClasses: [String]? = nil) throws -> (
        dataset: InMemoryDataset, description: String
    ) {
        let description = "\(directory) (\(split.rawValue) split)"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            let hint =
                directory == IDXReader.defaultFashionMNISTDirectory
                ? "install dataset-fashion-mnist (apt install dataset-fashion-mnist) or pass --data DIR"
                : "pass --data DIR, a folder with IDX files, CIFAR-10 batches or one sub-folder per class"
            throw DataError.missingFile(path: directory, hint: hint)
        }
        guard isDirectory.boolValue else {
            throw DataError.unreadable(path: directory, reason: "not a folder; hint: --data takes the folder that holds the dataset's files")
        }
        let prefix = split == .test ? "t10k" : "train"
        if let images = existing(directory, "\(prefix)-images-idx3-ubyte") {
            guard let labels = existing(directory, "\(prefix)-labels-idx1-ubyte") else {
                throw DataError.missingFile(
                    path: (directory as NSString).appendingPathComponent("\(prefix)-labels-idx1-ubyte[.gz]"),
                    hint: "the labels belong next to \(images)")
            }
            return (try IDXReader.load(images: images, labels: labels, classNames: idxClasses ?? IDXReader.fashionMNISTClassNames), description)
        }
        switch DatasetDirectory.format(of: directory) {
        case .idx:
            throw InferenceError.missingSplit(
                directory: directory, split: split.rawValue,
                hint: "it lacks \(prefix)-images-idx3-ubyte[.gz]; pass --split \(split == .test ? "train" : "test")")
        case .cifar10:
            let (train, test) = try CIFAR10Reader.loadDirectory(directory)
            return (split == .test ? test : train, description)
        case .imageFolder:
            let folder = (directory as NSString).appendingPathComponent(split.rawValue)
            let splits = ["train", "test"].filter { FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent($0)) }
            guard !splits.isEmpty else {
                return (try ImageFolderReader.load(directory: directory, channels: channels), "\(directory) (class folders)")
            }
            guard FileManager.default.fileExists(atPath: folder) else {
                throw InferenceError.missingSplit(
                    directory: directory, split: split.rawValue,
                    hint: "add a \(split.rawValue)/ folder with the same class folders, or pass --split \(split == .test ? "train" : "test")")
            }
            return (try ImageFolderReader.load(directory: folder, channels: channels), description)
        }
    }

    /// The path of `name` or `name.gz` in `directory`, if either exists.
    static func existing(_ directory: String, _ name: String) -> String? {
        let plain = (directory as NSString).appendingPathComponent(name)
        return [plain, plain + ".gz"].first { FileManager.default.fileExists(atPath: $0) }
    }
}
