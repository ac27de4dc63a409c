import Foundation

/// Reads the CIFAR-10 binary version: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`,
/// each a sequence of records of 1 label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue,
/// row-major 32×32), which is already the `[3, 32, 32]` CHW layout.
public enum CIFAR10Reader {
    /// CIFAR-10's class names, in label order.
    public static let classNames = [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck"
    ]
    static let recordSize = 1 + 3 * 32 * 32
    static let missingHint = "download cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and pass --data DIR"

    /// Reads one batch file.
    ///
    /// - Parameter path: a `.bin` file.
    /// - Returns: the samples, shape `[3, 32, 32]`.
    /// - Throws: `DataError` for a missing or unreadable file, a size that is not a whole number of
    ///   records, or a label above 9.
    public static func readBatch(path: String) throws -> InMemoryDataset {
        try parseBatch(try FileBytes.read(path, missingHint: missingHint), path: path)
    }

    /// `readBatch(path:)` on bytes already read (and inflated).
    static func parseBatch(_ bytes: [UInt8], path: String) throws -> InMemoryDataset {
        let records = bytes.count / recordSize
        guard bytes.count % recordSize == 0, records > 0 else {
            throw DataError.truncated(path: path, expected: (records + 1) * recordSize, got: bytes.count)
        }
        var pixels = [UInt8]()
        pixels.reserveCapacity(records * (recordSize - 1))
        var labels = [Int32]()
        labels.reserveCapacity(records)
        for r in 0 ..< records {
            let base = r * recordSize
            let label = Int(bytes[base])
            guard label < classNames.count else {
                throw DataError.labelOutOfRange(path: path, index: r, label: label, classCount: classNames.count)
            }
            labels.append(Int32(label))
            pixels.append(contentsOf: bytes[base + 1 ..< base + recordSize])
        }
        return InMemoryDataset(pixels: pixels, labels: labels, sampleShape: [3, 32, 32], classNames: classNames)
    }

    /// Loads the five training batches and the test batch of a directory (or of its
    /// `cifar-10-batches-bin` sub-folder, as the archive unpacks).
    ///
    /// - Parameter directory: the folder.
    /// - Returns: the training set (batches 1–5 in order) and the test set.
    /// - Throws: `DataError.missingFile` naming the first missing batch, or any reading error.
    public static func loadDirectory(_ directory: String) throws -> (train: InMemoryDataset, test: InMemoryDataset) {
        var root = directory
        let nested = (directory as NSString).appendingPathComponent("cifar-10-batches-bin")
        if !FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("test_batch.bin")),
            FileManager.default.fileExists(atPath: nested)
        {
            root = nested
        }
        func path(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }
        let batches = try (1 ... 5).map { try readBatch(path: path("data_batch_\($0).bin")) }
        let train = InMemoryDataset(
            pixels: batches.flatMap(\.pixels), labels: batches.flatMap(\.labels),
            sampleShape: [3, 32, 32], classNames: classNames)
        return (train, try readBatch(path: path("test_batch.bin")))
    }
}
