import Foundation

/// Loads a dataset folder in whichever supported format it holds.
///
/// Checked in order:
/// 1. IDX (MNIST/Fashion-MNIST): `train-images-idx3-ubyte[.gz]` and its three companions;
/// 2. CIFAR-10 binary: `data_batch_1.bin` … `test_batch.bin`, or their `cifar-10-batches-bin` folder;
/// 3. image folders with `train/` (and optionally `test/`), each with one sub-folder per class;
/// 4. otherwise the folder itself holds one sub-folder per class (no test set).
public enum DatasetDirectory {
    /// The formats `load(_:channels:)` recognizes.
    public enum Format: String, Equatable {
        /// MNIST-style IDX files.
        case idx
        /// CIFAR-10 binary batches.
        case cifar10
        /// One sub-folder per class.
        case imageFolder
    }

    /// Which format a folder holds (image folders when neither IDX nor CIFAR-10 files are found).
    ///
    /// - Parameter directory: the folder.
    /// - Returns: the format `load(_:channels:)` will read.
    public static func format(of directory: String) -> Format {
        let fm = FileManager.default
        func exists(_ name: String) -> Bool { fm.fileExists(atPath: (directory as NSString).appendingPathComponent(name)) }
        if exists("train-images-idx3-ubyte") || exists("train-images-idx3-ubyte.gz") { return .idx }
        if exists("data_batch_1.bin") || exists("cifar-10-batches-bin") { return .cifar10 }
        return .imageFolder
    }

    /// Loads the training set and, when the folder has one, the test set.
    ///
    /// - Parameters:
    ///   - directory: the folder.
    ///   - channels: for image folders, 1 or 3 to convert to (`nil`: the first image's); ignored
    ///     for IDX (always 1) and CIFAR-10 (always 3).
    /// - Returns: the training set and the test set (nil for a single tree of class folders).
    /// - Throws: `DataError` naming the file or folder at fault; for image folders also
    ///   `.classMismatch` when `test/` has other classes than `train/`.
    public static func load(_ directory: String, channels: Int? = nil) throws
        -> (train: InMemoryDataset, test: InMemoryDataset?)
    {
        switch format(of: directory) {
        case .idx:
            let (train, test) = try IDXReader.loadDirectory(directory)
            return (train, test)
        case .cifar10:
            let (train, test) = try CIFAR10Reader.loadDirectory(directory)
            return (train, test)
        case .imageFolder:
            let trainFolder = (directory as NSString).appendingPathComponent("train")
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: trainFolder, isDirectory: &isDirectory), isDirectory.boolValue else {
                return (try ImageFolderReader.load(directory: directory, channels: channels), nil)
            }
            let train = try ImageFolderReader.load(directory: trainFolder, channels: channels)
            let testFolder = (directory as NSString).appendingPathComponent("test")
            guard FileManager.default.fileExists(atPath: testFolder) else { return (train, nil) }
            let test = try ImageFolderReader.load(directory: testFolder, channels: train.sampleShape[0])
            guard test.classNames == train.classNames else {
                throw DataError.classMismatch(path: testFolder, expected: train.classNames, found: test.classNames)
            }
            guard test.sampleShape == train.sampleShape else {
                let describe = { (s: [Int]) in "\(s[2])x\(s[1])x\(s[0])" }
                throw DataError.inconsistentImageSize(
                    path: testFolder, expected: describe(train.sampleShape),
                    found: describe(test.sampleShape), first: trainFolder)
            }
            return (train, test)
        }
    }
}
