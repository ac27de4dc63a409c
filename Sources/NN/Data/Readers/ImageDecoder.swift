import Foundation

/// Decodes the image files of image-folder datasets: PNG (through libpng) and binary or plain
/// PGM/PPM (P5, P6, P2, P3), 8 bits per channel after decoding.
public enum ImageDecoder {
    /// A decoded image: interleaved rows (HWC), 1 channel (gray) or 3 (RGB).
    public struct Image: Equatable {
        /// Columns.
        public var width: Int
        /// Rows.
        public var height: Int
        /// 1 or 3.
        public var channels: Int
        /// `height·width·channels` bytes, row after row, channels interleaved.
        public var pixels: [UInt8]

        /// The size as text for messages: `28x28x1` (width × height × channels).
        public var sizeDescription: String { "\(width)x\(height)x\(channels)" }
    }

    /// The file extensions (lower case) this decoder reads.
    public static let supportedExtensions: Set<String> = ["png", "pgm", "ppm", "pnm"]

    /// Decodes one file, chosen by its content (PNG signature or `P2`/`P3`/`P5`/`P6`).
    ///
    /// - Parameters:
    ///   - path: the file.
    ///   - channels: 1 or 3 to convert to (gray → RGB repeats the value; RGB → gray uses
    ///     ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B); `nil` keeps the file's own.
    /// - Returns: the image.
    /// - Throws: `DataError.badImage` naming the file and the problem, or a reading error.
    public static func decode(path: String, channels: Int? = nil) throws -> Image {
        precondition(channels == nil || channels == 1 || channels == 3, "Images convert to 1 or 3 channels, not \(channels!).")
        return try decode(try FileBytes.readRaw(path, missingHint: "check the path"), path: path, channels: channels)
    }

    /// `decode(path:channels:)` on bytes already read.
    static func decode(_ bytes: [UInt8], path: String, channels: Int?) throws -> Image {
        let image: Image
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            image = try decodePNG(bytes, path: path)
        } else if bytes.count >= 2, bytes[0] == UInt8(ascii: "P"),
            [UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "5"), UInt8(ascii: "6")].contains(bytes[1])
        {
            image = try decodePNM(bytes, path: path)
        } else {
            throw DataError.badImage(path: path, reason: "not a PNG or a PGM/PPM file (unknown signature)")
        }
        return convert(image, to: channels ?? image.channels)
    }

    /// Converts between gray and RGB.
    static func convert(_ image: Image, to channels: Int) -> Image {
        if image.channels == channels { return image }
        let n = image.width * image.height
        var out = [UInt8](repeating: 0, count: n * channels)
        if channels == 3 {
            for i in 0 ..< n {
                let g = image.pixels[i]
                out[3 * i] = g
                out[3 * i + 1] = g
                out[3 * i + 2] = g
            }
        } else {
            for i in 0 ..< n {
                let r = UInt32(image.pixels[3 * i]), g = UInt32(image.pixels[3 * i + 1]), b = UInt32(image.pixels[3 * i + 2])
                out[i] = UInt8((299 * r + 587 * g + 114 * b + 500) / 1000)
            }
        }
        return Image(width: image.width, height: image.height, channels: channels, pixels: out)
    }
}
