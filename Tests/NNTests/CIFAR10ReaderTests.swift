import XCTest

@testable import NN

final class CIFAR10ReaderTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = DataFixtures.makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    /// `count` records; record r has label (first + r) mod 10 and pixel j = (r + j) mod 256.
    func batch(count: Int, firstLabel: Int) -> [UInt8] {
        var out: [UInt8] = []
        for r in 0 ..< count {
            out.append(UInt8((firstLabel + r) % 10))
            out += (0 ..< 3072).map { UInt8((r + $0) % 256) }
        }
        return out
    }

    func testLoadsTrainingBatchesInOrderAndTheTestBatch() throws {
        for b in 1 ... 5 { DataFixtures.write(batch(count: 2, firstLabel: b), to: path("data_batch_\(b).bin")) }
        DataFixtures.write(batch(count: 3, firstLabel: 7), to: path("test_batch.bin"))
        let (train, test) = try CIFAR10Reader.loadDirectory(dir)
        XCTAssertEqual(train.count, 10)
        XCTAssertEqual(test.count, 3)
        XCTAssertEqual(train.sampleShape, [3, 32, 32])
        XCTAssertEqual(train.labels, [1, 2, 2, 3, 3, 4, 4, 5, 5, 6])
        XCTAssertEqual(test.labels, [7, 8, 9])
        XCTAssertEqual(Array(train.pixels[3072 ..< 3075]), [1, 2, 3])  // second record, red plane first
        XCTAssertEqual(train.classNames[9], "truck")
    }

    func testFindsTheArchiveSubfolder() throws {
        for b in 1 ... 5 { DataFixtures.write(batch(count: 1, firstLabel: 0), to: path("cifar-10-batches-bin/data_batch_\(b).bin")) }
        DataFixtures.write(batch(count: 1, firstLabel: 0), to: path("cifar-10-batches-bin/test_batch.bin"))
        XCTAssertEqual(try CIFAR10Reader.loadDirectory(dir).train.count, 5)
    }

    func testPartialRecordIsTruncated() {
        DataFixtures.write(Array(batch(count: 2, firstLabel: 0).dropLast(100)), to: path("test_batch.bin"))
        XCTAssertEqual(
            DataFixtures.message { _ = try CIFAR10Reader.readBatch(path: path("test_batch.bin")) },
            "truncated file \(path("test_batch.bin")): expected 6146 bytes, got 6046; hint: download it again")
    }

    func testLabelAboveNine() {
        var bytes = batch(count: 2, firstLabel: 0)
        bytes[3073] = 10
        DataFixtures.write(bytes, to: path("test_batch.bin"))
        XCTAssertEqual(
            DataFixtures.message { _ = try CIFAR10Reader.readBatch(path: path("test_batch.bin")) },
            "label out of range in \(path("test_batch.bin")): sample 1 has label 10, but there are 10 classes (0...9)")
    }

    func testMissingBatchHintsAtTheDownload() {
        let message = DataFixtures.message { _ = try CIFAR10Reader.loadDirectory(dir) }
        XCTAssertTrue(message.hasPrefix("dataset file not found: \(path("data_batch_1.bin")); hint: download cifar-10-binary"), message)
    }
}
