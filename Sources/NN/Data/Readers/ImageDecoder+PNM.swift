extension ImageDecoder {
    /// Decodes PGM (P5 binary, P2 plain) and PPM (P6 binary, P3 plain); values are rescaled from
    /// `0...maxval` to `0...255` (binary files with maxval > 255 hold big-endian 16-bit samples).
    static func decodePNM(_ bytes: [UInt8], path: String) throws -> Image {
        let kind = bytes[1]
        let channels = (kind == UInt8(ascii: "3") || kind == UInt8(ascii: "6")) ? 3 : 1
        let binary = kind == UInt8(ascii: "5") || kind == UInt8(ascii: "6")
        var position = 2

        // Header tokens are separated by whitespace; '#' starts a comment running to the line's end.
        func nextNumber(_ what: String) throws -> Int {
            while position < bytes.count {
                if bytes[position] == UInt8(ascii: "#") {
                    while position < bytes.count && bytes[position] != 0x0A { position += 1 }
                } else if [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) {
                    position += 1
                } else {
                    break
                }
            }
            var value = 0, digits = 0
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39, digits < 9 {
                value = value * 10 + Int(bytes[position] - 0x30)
                position += 1
                digits += 1
            }
            guard digits > 0 else { throw DataError.badImage(path: path, reason: "the header's \(what) is missing or not a number") }
            return value
        }
        let width = try nextNumber("width"), height = try nextNumber("height"), maxval = try nextNumber("maximum value")
        guard width > 0, height > 0 else { throw DataError.badImage(path: path, reason: "empty image \(width)x\(height)") }
        guard maxval >= 1, maxval <= 65535 else {
            throw DataError.badImage(path: path, reason: "maximum value \(maxval) is not in 1...65535")
        }
        let count = width * height * channels
        let size = maxval > 255 ? 2 : 1
        if binary { position += 1 }  // exactly one whitespace byte separates the header from the data
        // Check the length before allocating: a corrupt header may claim a huge image.
        // (Plain files need at least two characters per value.)
        let needed = binary ? position + count * size : position + 2 * count - 1
        guard bytes.count >= needed else { throw DataError.truncated(path: path, expected: needed, got: bytes.count) }
        var samples = [Int](repeating: 0, count: count)
        if binary {
            for i in 0 ..< count {
                samples[i] =
                    size == 1
                    ? Int(bytes[position + i])
                    : Int(bytes[position + 2 * i]) << 8 | Int(bytes[position + 2 * i + 1])
            }
        } else {
            for i in 0 ..< count { samples[i] = try nextNumber("pixel value \(i)") }
        }
        var pixels = [UInt8](repeating: 0, count: count)
        for i in 0 ..< count {
            guard samples[i] <= maxval else {
                throw DataError.badImage(path: path, reason: "pixel value \(samples[i]) exceeds the maximum value \(maxval)")
            }
            pixels[i] = maxval == 255 ? UInt8(samples[i]) : UInt8((samples[i] * 255 + maxval / 2) / maxval)
        }
        return Image(width: width, height: height, channels: channels, pixels: pixels)
    }
}
