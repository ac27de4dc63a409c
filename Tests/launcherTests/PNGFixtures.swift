import Foundation

/// A minimal PNG encoder for test images (8-bit gray or RGB, no filtering, one zlib stream of
/// stored deflate blocks), independent of libpng, which the reader under test uses.
enum PNGFixtures {
    /// The PNG file of `width × height` pixels, `channels` (1 or 3) interleaved bytes per pixel.
    static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> [UInt8] {
        precondition(pixels.count == width * height * channels && (channels == 1 || channels == 3))
        var raw: [UInt8] = []
        for y in 0 ..< height {
            raw.append(0)  // filter type None
            raw += pixels[y * width * channels ..< (y + 1) * width * channels]
        }
        var z: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, raw.count - offset)
            let last: UInt8 = offset + n == raw.count ? 1 : 0
            z += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[offset ..< offset + n]
            offset += n
        } while offset < raw.count
        z += bigEndian(adler32(raw))
        var ihdr = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        ihdr += [8, channels == 1 ? 0 : 2, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", z) + chunk("IEND", [])
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in bytes {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        return b << 16 | a
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0 ..< 8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// A two-class folder dataset like Keras's cats-and-dogs layout: `train/cats`, `train/dogs`,
    /// `test/cats`, `test/dogs` of `side × side` RGB PNGs. Cats are bright in the top half, dogs in
    /// the bottom half (a left-right flip keeps the class), with per-image noise, so a small model
    /// learns them in a few steps.
    @discardableResult
    static func catsAndDogs(in directory: String, side: Int = 16, train: Int = 24, test: Int = 8) -> String {
        for (split, count) in [("train", train), ("test", test)] {
            for (label, name) in ["cats", "dogs"].enumerated() {
                for i in 0 ..< count {
                    var pixels = [UInt8](repeating: 0, count: side * side * 3)
                    for y in 0 ..< side {
                        for x in 0 ..< side {
                            for c in 0 ..< 3 {
                                let bright = (y < side / 2) == (label == 0)
                                let noise = (x * 31 + y * 17 + c * 7 + i * 13 + (split == "test" ? 5 : 0)) % 40
                                pixels[(y * side + x) * 3 + c] = UInt8(bright ? 180 + noise : 20 + noise)
                            }
                        }
                    }
                    let path = "\(directory)/\(split)/\(name)/\(name)-\(i).png"
                    InferenceFixtures.write(encode(width: side, height: side, channels: 3, pixels: pixels), to: path)
                }
            }
        }
        return directory
    }
}
