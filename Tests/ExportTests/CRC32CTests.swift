import XCTest

@testable import Export

final class CRC32CTests: XCTestCase {
    /// RFC 3720 §B.4's check value and test patterns.
    func testKnownValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0 ..< 32).map(UInt8.init)), 0x46DD_794E)
    }

    func testTableMatchesTheBitwiseReference() {
        var generator = SystemRandomNumberGenerator()
        for length in [0, 1, 7, 8, 63, 1000] {
            let bytes = (0 ..< length).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
            XCTAssertEqual(CRC32C.checksum(bytes), CRC32C.referenceChecksum(bytes), "length \(length)")
        }
    }

    /// TensorFlow's mask: rotate right by 15, add 0xa282ead8 (wrapping).
    func testMaskRotatesAndAddsTheConstant() {
        XCTAssertEqual(CRC32C.mask(0), 0xA282_EAD8)
        XCTAssertEqual(CRC32C.mask(0x0000_8000), 0xA282_EAD9)
        XCTAssertEqual(CRC32C.mask(0xFFFF_FFFF), 0xA282_EAD7)
    }

    func testTFRecordFrameLayout() {
        let data: [UInt8] = [1, 2, 3]
        let frame = TFRecordWriter.frame(data)
        XCTAssertEqual(frame.count, 8 + 4 + 3 + 4)
        XCTAssertEqual(Array(frame[0 ..< 8]), [3, 0, 0, 0, 0, 0, 0, 0])
        func u32(_ s: ArraySlice<UInt8>) -> UInt32 { s.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        XCTAssertEqual(u32(frame[8 ..< 12]), CRC32C.mask(CRC32C.checksum(frame[0 ..< 8])))
        XCTAssertEqual(Array(frame[12 ..< 15]), data)
        XCTAssertEqual(u32(frame[15 ..< 19]), CRC32C.mask(CRC32C.checksum(data)))
    }
}
