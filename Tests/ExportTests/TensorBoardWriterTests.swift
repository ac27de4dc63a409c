import Foundation
import XCTest

@testable import Export

final class TensorBoardWriterTests: XCTestCase {
    var dir = ""

    override func setUp() {
        dir = NSTemporaryDirectory() + "tb-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Splits a TFRecord file into its payloads, checking both masked CRCs of every record.
    func records(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> [[UInt8]] {
        let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
        func u32(_ at: Int) -> UInt32 { bytes[at ..< at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        var out: [[UInt8]] = [], at = 0
        while at < bytes.count {
            let length = Int(bytes[at ..< at + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            XCTAssertEqual(u32(at + 8), CRC32C.mask(CRC32C.checksum(bytes[at ..< at + 8])), "length CRC", file: file, line: line)
            let data = Array(bytes[at + 12 ..< at + 12 + length])
            XCTAssertEqual(u32(at + 12 + length), CRC32C.mask(CRC32C.checksum(data)), "data CRC", file: file, line: line)
            out.append(data)
            at += 16 + length
        }
        return out
    }

    func eventFile(_ run: TensorBoardWriter.Run) throws -> String {
        let folder = "\(dir)/\(run.rawValue)"
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(names.count, 1, "\(names)")
        return "\(folder)/\(names[0])"
    }

    func testScalarsAreVersionThenOneEventEachInTheirRunFolder() throws {
        let writer = try TensorBoardWriter(directory: dir, clock: { 1_700_000_000.5 })
        try writer.scalar("epoch_loss", 0.75, step: 1)
        try writer.scalar("epoch_loss", 0.5, step: 2)
        try writer.scalar("epoch_loss", 0.875, step: 1, run: .validation)

        let train = try records(try eventFile(.train)).map { try Tensorflow_Event(serializedBytes: $0) }
        XCTAssertEqual(train.count, 3)
        XCTAssertEqual(train[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(train[0].wallTime, 1_700_000_000.5)
        XCTAssertEqual(train[1].step, 1)
        XCTAssertEqual(train[1].summary.value.map(\.tag), ["epoch_loss"])
        XCTAssertEqual(train[1].summary.value[0].simpleValue, 0.75)
        XCTAssertEqual(train[2].step, 2)
        XCTAssertEqual(train[2].summary.value[0].simpleValue, 0.5)

        let validation = try records(try eventFile(.validation)).map { try Tensorflow_Event(serializedBytes: $0) }
        XCTAssertEqual(validation.map(\.step), [0, 1])
        XCTAssertEqual(validation[1].summary.value[0].simpleValue, 0.875)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(dir)/test"), "a run folder appears only when written to")
    }

    /// The event's bytes as TensorFlow's schema gives them, written out by hand: wall_time (field 1,
    /// double), step (2, varint), summary (5) { value (1) { tag (1), simple_value (2, float) } }.
    func testEventEncodingMatchesTheFieldNumbersOfTensorFlowsSchema() throws {
        let bytes = try TensorBoardWriter.event(tag: "a", value: 1, step: 3, wallTime: 2)
        let expected: [UInt8] =
            [0x09] + withUnsafeBytes(of: Double(2).bitPattern.littleEndian, Array.init) + [0x10, 0x03] + [0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, 0x61, 0x15]
            + withUnsafeBytes(of: Float(1).bitPattern.littleEndian, Array.init)
        XCTAssertEqual(bytes, expected)
    }
}
