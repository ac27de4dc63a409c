import Foundation

/// Reads a folder with one sub-folder per class (Keras `flow_from_directory`):
/// `root/cat/001.png`, `root/dog/xyz.pgm`, ….
///
/// Class names are the sub-folder names sorted (so labels are stable across machines); files are
/// taken in sorted order; hidden entries and files other than `.png`, `.pgm`, `.ppm`, `.pnm` are
/// ignored. All images must have the same width and height.
public enum ImageFolderReader {
    /// Loads every image under `directory` into a dataset of `[C, H, W]` samples.
    ///
    /// - Parameters:
    ///   - directory: the root folder.
    ///   - channels: 1 (gray) or 3 (RGB) to convert every image to; `nil` takes the first image's.
    /// - Returns: the samples, class after class.
    /// - Throws: `DataError.missingFile` for a missing root, `.noImages` for a root without class
    ///   folders or a class folder without images, `.inconsistentImageSize` naming the first image
    ///   whose size differs, or a decoding error naming the file.
    public static func load(directory: String, channels: Int? = nil) throws -> InMemoryDataset {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError.missingFile(path: directory, hint: "pass --data DIR, a folder with one sub-folder of images per class")
        }
        let classNames = try entries(of: directory).filter { name in
            var sub: ObjCBool = false
            return fm.fileExists(atPath: (directory as NSString).appendingPathComponent(name), isDirectory: &sub) && sub.boolValue
        }
        guard !classNames.isEmpty else { throw DataError.noImages(path: directory) }

        var pixels: [UInt8] = []
        var labels: [Int32] = []
        var first: (path: String, image: ImageDecoder.Image)?
        for (label, className) in classNames.enumerated() {
            let folder = (directory as NSString).appendingPathComponent(className)
            let files = try entries(of: folder).filter {
                ImageDecoder.supportedExtensions.contains(($0 as NSString).pathExtension.lowercased())
            }
            guard !files.isEmpty else { throw DataError.noImages(path: folder) }
            for file in files {
                let path = (folder as NSString).appendingPathComponent(file)
                let image = try ImageDecoder.decode(path: path, channels: channels ?? first?.image.channels)
                if let first {
                    guard image.width == first.image.width, image.height == first.image.height else {
                        throw DataError.inconsistentImageSize(
                            path: path, expected: first.image.sizeDescription,
                            found: image.sizeDescription, first: first.path)
                    }
                } else {
                    first = (path, image)
                    pixels.reserveCapacity(image.pixels.count * 64)
                }
                appendCHW(image, to: &pixels)
                labels.append(Int32(label))
            }
        }
        let shape = [first!.image.channels, first!.image.height, first!.image.width]
        return InMemoryDataset(pixels: pixels, labels: labels, sampleShape: shape, classNames: classNames)
    }

    /// The visible entries of a folder, sorted.
    static func entries(of folder: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }.sorted()
        } catch {
            throw DataError.unreadable(path: folder, reason: "cannot list the folder")
        }
    }

    /// Appends an interleaved (HWC) image as planes (CHW).
    static func appendCHW(_ image: ImageDecoder.Image, to pixels: inout [UInt8]) {
        let plane = image.width * image.height, c = image.channels
        if c == 1 {
            pixels.append(contentsOf: image.pixels)
            return
        }
        for channel in 0 ..< c {
            for i in 0 ..< plane { pixels.append(image.pixels[i * c + channel]) }
        }
    }
}
