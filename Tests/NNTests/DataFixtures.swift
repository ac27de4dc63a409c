import CCodecs
import Foundation
import XCTest

@testable import NN

/// Small files that dataset and checkpoint tests write into a fresh temporary folder.
enum DataFixtures {
    /// A new empty folder under the system's temporary directory.
    static func makeTemporaryDirectory(_ name: String = #function) -> String {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("nntests-\(clean)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ bytes: [UInt8], to path: String) {
        let folder = (path as NSString).deletingLastPathComponent
        try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    /// An IDX file: magic 00 00 08 D, big-endian extents, data.
    static func idx(dims: [Int], data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + data
    }

    /// `count` images of `rows × columns` whose pixel j of image i is (i·7 + j) mod 256.
    static func idxImages(count: Int, rows: Int, columns: Int) -> (file: [UInt8], pixels: [UInt8]) {
        let pixels = (0 ..< count * rows * columns).map { k in UInt8((k / (rows * columns) * 7 + k % (rows * columns)) % 256) }
        return (idx(dims: [count, rows, columns], data: pixels), pixels)
    }

    /// gzip through zlib's deflate (windowBits 16 + 15 writes a gzip wrapper).
    static func gzip(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        precondition(
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY,
                zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK)
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 64)
        var input = input
        let produced: Int = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = UInt32(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = UInt32(outBuffer.count)
                precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
                return outBuffer.count - Int(stream.avail_out)
            }
        }
        return Array(output[..<produced])
    }

    /// 3×2 PNGs written by a separate encoder (Python's zlib + struct: signature, IHDR, PLTE, IDAT
    /// with filter byte 0 on every row, IEND; CRCs from zlib.crc32), stored as base64.
    /// gray: rows [0,100,255], [10,20,30]. rgb: (255,0,0) (0,255,0) (0,0,255) / (10,20,30) (40,50,60)
    /// (70,80,90). rgba: the same with alpha 255. palette: indices [0,1,2], [2,1,0] into red, green,
    /// blue. gray16: 16-bit [0, 25700, 65535], [2570, 5140, 7710]. rgbaTransparent (2×1):
    /// (200,100,50, alpha 0) (10,20,30, alpha 128). grayAlpha (2×1): (77, alpha 0) (99, alpha 255).
    static let png: [String: String] = [
        "gray": "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAAAAAC4HznGAAAAEElEQVR4nGNgSPnPwCUiBwAHvwGgiiAZCQAAAABJRU5ErkJggg==",
        "rgb": "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAF0lEQVR4nGP4z8DAAMFcInIaRjZuAVEAM1kEwOQkmMsAAAAASUVORK5CYII=",
        "rgba": "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAYAAACddGYaAAAAH0lEQVR4nGP4z8DwHwwZ/v9n4BKR+69hZPPfLSDqPwCJ2wq6OEinjgAAAABJRU5ErkJggg==",
        "palette": "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAMAAACqqpYoAAAACVBMVEX/AAAA/wAAAP8tSs2KAAAAEElEQVR4nGNgYGRiYGJkAAAAIAAHHStwoAAAAABJRU5ErkJggg==",
        "gray16": "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACEAAAAADoj+WFAAAAFklEQVR4nGNgYEhJ+f+fgYtLRERODgAahQM/3E1PgwAAAABJRU5ErkJggg==",
        "rgbaTransparent": "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAYAAAD0In+KAAAAEUlEQVR4nGM4kWLEwCUi1wAAC1ECG14EJOwAAAAASUVORK5CYII=",
        "grayAlpha": "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAQAAABeK7cBAAAADUlEQVR4nGPwZUj+DwAC/gGw/B2oUAAAAABJRU5ErkJggg=="
    ]

    static func pngBytes(_ name: String) -> [UInt8] { [UInt8](Data(base64Encoded: png[name]!)!) }

    /// The message of the error `body` throws, or "no error".
    static func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch { return "\(error)" }
    }
}
