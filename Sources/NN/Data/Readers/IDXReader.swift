import Foundation

/// Reads the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).
///
/// An IDX file is a 4-byte magic number `00 00 08 D` (unsigned bytes, `D` dimensions), `D`
/// big-endian UInt32 extents, then the bytes. Images are `idx3` (`count, rows, columns`), labels
/// `idx1` (`count`). Samples stay bytes; floats are made only when a batch is formed.
public enum IDXReader {
    /// Fashion-MNIST's class names, in label order.
    public static let fashionMNISTClassNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
    ]
    /// Where Debian's `dataset-fashion-mnist` package installs the files.
    public static let defaultFashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"
    static let missingHint = "install dataset-fashion-mnist (apt install dataset-fashion-mnist) or pass --data DIR holding the IDX files"

    /// Reads an `idx3` image file.
    ///
    /// - Parameter path: the file, raw or `.gz`.
    /// - Returns: the image count, rows, columns and `count·rows·columns` pixel bytes.
    /// - Throws: `DataError` for a missing, unreadable, corrupt, truncated or wrong-magic file.
    public static func readImages(path: String) throws -> (count: Int, rows: Int, columns: Int, pixels: [UInt8]) {
        let (dims, data) = try read(path: path, dimensions: 3, what: "IDX unsigned-byte images, 3 dimensions")
        return (dims[0], dims[1], dims[2], data)
    }

    /// Reads an `idx1` label file.
    ///
    /// - Parameter path: the file, raw or `.gz`.
    /// - Returns: one byte per label.
    /// - Throws: `DataError` for a missing, unreadable, corrupt, truncated or wrong-magic file.
    public static func readLabels(path: String) throws -> [UInt8] {
        try read(path: path, dimensions: 1, what: "IDX unsigned-byte labels, 1 dimension").data
    }

    /// Reads an image file and its label file into a dataset of `[1, rows, columns]` samples.
    ///
    /// - Parameters:
    ///   - images: the `idx3` file.
    ///   - labels: the `idx1` file.
    ///   - classNames: the class names; every label must be below their count.
    /// - Returns: the dataset.
    /// - Throws: `DataError` for a bad file, a count mismatch or a label out of range.
    public static func load(images: String, labels: String, classNames: [String]) throws -> InMemoryDataset {
        let image = try readImages(path: images)
        let labelBytes = try readLabels(path: labels)
        guard image.count == labelBytes.count else {
            throw DataError.countMismatch(images: images, imageCount: image.count, labels: labels, labelCount: labelBytes.count)
        }
        if let bad = labelBytes.firstIndex(where: { Int($0) >= classNames.count }) {
            throw DataError.labelOutOfRange(path: labels, index: bad, label: Int(labelBytes[bad]), classCount: classNames.count)
        }
        return InMemoryDataset(
            pixels: image.pixels, labels: labelBytes.map { Int32($0) },
            sampleShape: [1, image.rows, image.columns], classNames: classNames)
    }

    /// Loads the four standard files of a directory: `train-images-idx3-ubyte`,
    /// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or
    /// with `.gz` appended.
    ///
    /// - Parameters:
    ///   - directory: the folder (Fashion-MNIST's default is `defaultFashionMNISTDirectory`).
    ///   - classNames: the class names (Fashion-MNIST's by default; pass digits for MNIST).
    /// - Returns: the training and test sets.
    /// - Throws: `DataError.missingFile` naming the first missing file, or any reading error.
    public static func loadDirectory(
        _ directory: String = defaultFashionMNISTDirectory,
        classNames: [String] = fashionMNISTClassNames
    ) throws
        -> (train: InMemoryDataset, test: InMemoryDataset)
    {
        func find(_ name: String) throws -> String {
            let plain = (directory as NSString).appendingPathComponent(name)
            for candidate in [plain, plain + ".gz"] where FileManager.default.fileExists(atPath: candidate) {
                return candidate
            }
            throw DataError.missingFile(path: plain + "[.gz]", hint: missingHint)
        }
        let train = try load(
            images: try find("train-images-idx3-ubyte"), labels: try find("train-labels-idx1-ubyte"),
            classNames: classNames)
        let test = try load(
            images: try find("t10k-images-idx3-ubyte"), labels: try find("t10k-labels-idx1-ubyte"),
            classNames: classNames)
        return (train, test)
    }

    /// The most pixels one sample may have (a model takes at most `ModelSpec.maxActivationCount`).
    static let maxSamplePixels = ModelSpec.maxActivationCount

    /// Parses the header, checks the magic number and the length, and returns extents and data.
    static func read(path: String, dimensions: Int, what: String) throws -> (dims: [Int], data: [UInt8]) {
        try parse(try FileBytes.read(path, missingHint: missingHint), path: path, dimensions: dimensions, what: what)
    }

    /// `read(path:dimensions:what:)` on bytes already read (and inflated).
    static func parse(_ bytes: [UInt8], path: String, dimensions: Int, what: String) throws -> (dims: [Int], data: [UInt8]) {
        let expectedMagic = String(format: "0x%08X (%@)", 0x800 + dimensions, what)
        guard bytes.count >= 4 else { throw DataError.truncated(path: path, expected: 4 + 4 * dimensions, got: bytes.count) }
        let magic = bytes[0 ..< 4].reduce(0) { $0 << 8 | Int($1) }
        guard magic == 0x800 + dimensions else {
            throw DataError.badMagic(path: path, expected: expectedMagic, found: String(format: "0x%08X", magic))
        }
        let headerSize = 4 + 4 * dimensions
        guard bytes.count >= headerSize else { throw DataError.truncated(path: path, expected: headerSize, got: bytes.count) }
        let dims = (0 ..< dimensions).map { d in bytes[4 + 4 * d ..< 8 + 4 * d].reduce(0) { $0 << 8 | Int($1) } }
        // A corrupt header can claim more bytes than an Int holds; that is a truncated file too.
        var payload = 1
        for d in dims {
            let (product, overflow) = payload.multipliedReportingOverflow(by: d)
            payload = overflow ? Int.max - headerSize : product
        }
        let expected = headerSize + payload
        guard bytes.count >= expected else { throw DataError.truncated(path: path, expected: expected, got: bytes.count) }
        // Images without pixels would make every sample empty (and a huge count cost nothing to claim).
        if dimensions > 1, dims.dropFirst().contains(0) {
            throw DataError.badImage(path: path, reason: "the IDX header gives samples of shape \(Array(dims.dropFirst())), with no pixels")
        }
        // With a count of 0 no bytes are needed, but a sample's size must be one an Int can hold.
        if dimensions > 1, ModelSpec.checkedCount(Array(dims.dropFirst())).map({ $0 > maxSamplePixels }) ?? true {
            throw DataError.badImage(
                path: path, reason: "the IDX header gives samples of shape \(Array(dims.dropFirst())), more than \(maxSamplePixels) pixels each")
        }
        return (dims, Array(bytes[headerSize ..< expected]))
    }
}
