import XCTest

@testable import NN

final class IDXReaderTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = DataFixtures.makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    func writeStandardFiles(gzip: Bool, trainCount: Int = 5, testCount: Int = 3) {
        let suffix = gzip ? ".gz" : ""
        func put(_ bytes: [UInt8], _ name: String) { DataFixtures.write(gzip ? DataFixtures.gzip(bytes) : bytes, to: path(name + suffix)) }
        put(DataFixtures.idxImages(count: trainCount, rows: 4, columns: 3).file, "train-images-idx3-ubyte")
        put(DataFixtures.idx(dims: [trainCount], data: (0 ..< trainCount).map { UInt8($0 % 10) }), "train-labels-idx1-ubyte")
        put(DataFixtures.idxImages(count: testCount, rows: 4, columns: 3).file, "t10k-images-idx3-ubyte")
        put(DataFixtures.idx(dims: [testCount], data: (0 ..< testCount).map { UInt8(9 - $0) }), "t10k-labels-idx1-ubyte")
    }

    func testReadsRawImagesAndLabels() throws {
        let (file, pixels) = DataFixtures.idxImages(count: 5, rows: 4, columns: 3)
        DataFixtures.write(file, to: path("img"))
        let images = try IDXReader.readImages(path: path("img"))
        XCTAssertEqual(images.count, 5)
        XCTAssertEqual(images.rows, 4)
        XCTAssertEqual(images.columns, 3)
        XCTAssertEqual(images.pixels, pixels)
        DataFixtures.write(DataFixtures.idx(dims: [3], data: [7, 0, 9]), to: path("lab"))
        XCTAssertEqual(try IDXReader.readLabels(path: path("lab")), [7, 0, 9])
    }

    func testReadsGzippedFilesLikeRawOnes() throws {
        writeStandardFiles(gzip: true)
        let (train, test) = try IDXReader.loadDirectory(dir)
        XCTAssertEqual(train.count, 5)
        XCTAssertEqual(test.count, 3)
        XCTAssertEqual(train.sampleShape, [1, 4, 3])
        XCTAssertEqual(train.pixels, DataFixtures.idxImages(count: 5, rows: 4, columns: 3).pixels)
        XCTAssertEqual(test.labels, [9, 8, 7])
        XCTAssertEqual(train.classNames, IDXReader.fashionMNISTClassNames)
    }

    func testLoadDirectoryWithRawFiles() throws {
        writeStandardFiles(gzip: false)
        let (train, test) = try IDXReader.loadDirectory(dir)
        XCTAssertEqual(train.labels, [0, 1, 2, 3, 4])
        XCTAssertEqual(test.count, 3)
        var sample = [Float](repeating: 0, count: 12)
        train.writeSample(at: 1, into: &sample)
        XCTAssertEqual(sample[0], 7.0 / 255.0, accuracy: 1e-7)
    }

    func testMissingFileNamesItAndHintsAtThePackage() {
        let message = DataFixtures.message { _ = try IDXReader.loadDirectory(dir) }
        XCTAssertTrue(message.hasPrefix("dataset file not found: \(path("train-images-idx3-ubyte"))[.gz]"), message)
        XCTAssertTrue(message.contains("hint: install dataset-fashion-mnist"), message)
        XCTAssertTrue(message.contains("--data"), message)
    }

    func testTruncatedFileSaysExpectedAndGotBytes() {
        let file = DataFixtures.idxImages(count: 5, rows: 4, columns: 3).file
        DataFixtures.write(Array(file.dropLast(10)), to: path("img"))
        XCTAssertEqual(
            DataFixtures.message { _ = try IDXReader.readImages(path: path("img")) },
            "truncated file \(path("img")): expected 76 bytes, got 66; hint: download it again")
    }

    func testHugeHeaderExtentsAreTruncationNotACrash() {
        DataFixtures.write([0, 0, 8, 3] + [UInt8](repeating: 0xFF, count: 12) + [1, 2, 3], to: path("img"))
        let message = DataFixtures.message { _ = try IDXReader.readImages(path: path("img")) }
        XCTAssertTrue(message.hasPrefix("truncated file \(path("img")): expected "), message)
        XCTAssertTrue(message.contains("got 19"), message)
    }

    func testTruncatedGzipIsCorrupt() {
        let gz = DataFixtures.gzip(DataFixtures.idxImages(count: 50, rows: 4, columns: 3).file)
        DataFixtures.write(Array(gz.prefix(gz.count / 2)), to: path("img.gz"))
        let message = DataFixtures.message { _ = try IDXReader.readImages(path: path("img.gz")) }
        XCTAssertTrue(message.hasPrefix("corrupt gzip file \(path("img.gz")): "), message)
    }

    func testGarbageAfterGzipMagicIsCorrupt() {
        DataFixtures.write([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3] + [UInt8](repeating: 0xFF, count: 40), to: path("bad.gz"))
        let message = DataFixtures.message { _ = try IDXReader.readLabels(path: path("bad.gz")) }
        XCTAssertTrue(message.hasPrefix("corrupt gzip file \(path("bad.gz")): "), message)
        XCTAssertTrue(message.hasSuffix("hint: download it again or pass the uncompressed file"), message)
    }

    func testWrongMagicSaysWhatWasExpected() {
        DataFixtures.write(DataFixtures.idx(dims: [3], data: [1, 2, 3]), to: path("labels"))
        XCTAssertEqual(
            DataFixtures.message { _ = try IDXReader.readImages(path: path("labels")) },
            "wrong magic number in \(path("labels")): expected 0x00000803 (IDX unsigned-byte images, 3 dimensions), found 0x00000801")
    }

    func testLabelOutOfRange() {
        DataFixtures.write(DataFixtures.idxImages(count: 3, rows: 2, columns: 2).file, to: path("i"))
        DataFixtures.write(DataFixtures.idx(dims: [3], data: [1, 12, 3]), to: path("l"))
        XCTAssertEqual(
            DataFixtures.message { _ = try IDXReader.load(images: path("i"), labels: path("l"), classNames: IDXReader.fashionMNISTClassNames) },
            "label out of range in \(path("l")): sample 1 has label 12, but there are 10 classes (0...9)")
    }

    func testImageLabelCountMismatch() {
        DataFixtures.write(DataFixtures.idxImages(count: 3, rows: 2, columns: 2).file, to: path("i"))
        DataFixtures.write(DataFixtures.idx(dims: [4], data: [1, 2, 3, 4]), to: path("l"))
        XCTAssertEqual(
            DataFixtures.message { _ = try IDXReader.load(images: path("i"), labels: path("l"), classNames: ["a", "b", "c", "d", "e"]) },
            "image/label count mismatch: \(path("i")) holds 3 images but \(path("l")) holds 4 labels")
    }

    func testRealFashionMNISTWhenInstalled() throws {
        let dir = IDXReader.defaultFashionMNISTDirectory
        guard
            FileManager.default.fileExists(atPath: dir + "/train-images-idx3-ubyte.gz")
                || FileManager.default.fileExists(atPath: dir + "/train-images-idx3-ubyte")
        else {
            throw XCTSkip("Fashion-MNIST is not installed at \(dir)")
        }
        let (train, test) = try IDXReader.loadDirectory()
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(train.sampleShape, [1, 28, 28])
        XCTAssertEqual(Set(train.labels), Set(0 ..< 10))
        // Balanced classes: 6000 per class in the training set.
        XCTAssertEqual(train.labels.filter { $0 == 3 }.count, 6000)
    }
}
