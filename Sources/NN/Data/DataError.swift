/// Errors in reading datasets and images: each names the file (or folder) and what is wrong with
/// it, and ends with a hint when the fix is known.
public enum DataError: Error, Equatable, CustomStringConvertible {
    /// A file or folder that should exist does not.
    case missingFile(path: String, hint: String)
    /// A file exists but cannot be read (permissions, I/O error).
    case unreadable(path: String, reason: String)
    /// A file is shorter than its header says (bytes counted after decompression).
    case truncated(path: String, expected: Int, got: Int)
    /// A `.gz` file that zlib cannot inflate.
    case corruptGzip(path: String, reason: String)
    /// A file does not start with the magic number its format requires.
    case badMagic(path: String, expected: String, found: String)
    /// A label is not one of the dataset's classes.
    case labelOutOfRange(path: String, index: Int, label: Int, classCount: Int)
    /// An image file and its label file disagree on the number of samples.
    case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    /// An image whose size (or channels) differs from the first image's.
    case inconsistentImageSize(path: String, expected: String, found: String, first: String)
    /// A class folder (or a dataset folder) with no images in it.
    case noImages(path: String)
    /// An image file that cannot be decoded.
    case badImage(path: String, reason: String)
    /// A bad dataset option, such as a validation fraction outside [0, 1).
    case invalidOption(option: String, value: String, reason: String)
    /// A test set whose classes differ from the training set's.
    case classMismatch(path: String, expected: [String], found: [String])

    /// The one-line message: what failed, where, and a hint when the fix is known.
    public var description: String {
        switch self {
        case let .missingFile(path, hint):
            return "dataset file not found: \(path); hint: \(hint)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .truncated(path, expected, got):
            return "truncated file \(path): expected \(expected) bytes, got \(got); hint: download it again"
        case let .corruptGzip(path, reason):
            return "corrupt gzip file \(path): \(reason); hint: download it again or pass the uncompressed file"
        case let .badMagic(path, expected, found):
            return "wrong magic number in \(path): expected \(expected), found \(found)"
        case let .labelOutOfRange(path, index, label, classCount):
            return "label out of range in \(path): sample \(index) has label \(label), but there are \(classCount) classes (0...\(classCount - 1))"
        case let .countMismatch(images, imageCount, labels, labelCount):
            return "image/label count mismatch: \(images) holds \(imageCount) images but \(labels) holds \(labelCount) labels"
        case let .inconsistentImageSize(path, expected, found, first):
            return "inconsistent image size: \(path) is \(found) but \(first) is \(expected); hint: all images must have the same size"
        case let .noImages(path):
            return "no images in \(path); hint: put .png, .pgm or .ppm files in one sub-folder per class"
        case let .badImage(path, reason):
            return "cannot decode image \(path): \(reason)"
        case let .invalidOption(option, value, reason):
            return "invalid \(option) \(value): \(reason)"
        case let .classMismatch(path, expected, found):
            return "class mismatch in \(path): found classes \(found), the training set has \(expected); hint: use the same class folders for training and test"
        }
    }
}
