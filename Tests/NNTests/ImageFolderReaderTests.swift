import XCTest

@testable import NN

final class ImageFolderReaderTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = DataFixtures.makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    func testDecodesGrayPNG() throws {
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("g.png"))
        let image = try ImageDecoder.decode(path: path("g.png"))
        XCTAssertEqual(image, ImageDecoder.Image(width: 3, height: 2, channels: 1, pixels: [0, 100, 255, 10, 20, 30]))
    }

    func testDecodesRGBRGBAAndPalettePNGToTheSameRGB() throws {
        for name in ["rgb", "rgba"] {
            DataFixtures.write(DataFixtures.pngBytes(name), to: path("\(name).png"))
            let image = try ImageDecoder.decode(path: path("\(name).png"))
            XCTAssertEqual(image.channels, 3, name)
            XCTAssertEqual(image.pixels, [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90], name)
        }
        DataFixtures.write(DataFixtures.pngBytes("palette"), to: path("p.png"))
        XCTAssertEqual(
            try ImageDecoder.decode(path: path("p.png")).pixels,
            [255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 255, 0, 255, 0, 255, 0, 0])
    }

    func testAlphaIsDroppedNotComposited() throws {
        // As PIL's convert("RGB") does: a fully transparent pixel keeps its colour.
        DataFixtures.write(DataFixtures.pngBytes("rgbaTransparent"), to: path("t.png"))
        XCTAssertEqual(try ImageDecoder.decode(path: path("t.png")).pixels, [200, 100, 50, 10, 20, 30])
        DataFixtures.write(DataFixtures.pngBytes("grayAlpha"), to: path("ga.png"))
        XCTAssertEqual(try ImageDecoder.decode(path: path("ga.png")), ImageDecoder.Image(width: 2, height: 1, channels: 1, pixels: [77, 99]))
    }

    func testDecodes16BitPNGTo8Bits() throws {
        DataFixtures.write(DataFixtures.pngBytes("gray16"), to: path("g16.png"))
        let image = try ImageDecoder.decode(path: path("g16.png"))
        XCTAssertEqual(image.channels, 1)
        XCTAssertEqual(image.pixels.count, 6)
        XCTAssertEqual(image.pixels[0], 0)
        XCTAssertEqual(image.pixels[2], 255)
    }

    func testConvertsChannels() throws {
        DataFixtures.write(DataFixtures.pngBytes("rgb"), to: path("c.png"))
        // ITU-R 601 luma, rounded: 0.299·255 = 76.2, 0.587·255 = 149.7, 0.114·255 = 29.1,
        // 0.299·10 + 0.587·20 + 0.114·30 = 18.15, … 48.15, 78.15.
        XCTAssertEqual(try ImageDecoder.decode(path: path("c.png"), channels: 1).pixels, [76, 150, 29, 18, 48, 78])
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("g.png"))
        XCTAssertEqual(Array(try ImageDecoder.decode(path: path("g.png"), channels: 3).pixels.prefix(6)), [0, 0, 0, 100, 100, 100])
    }

    func testDecodesBinaryAndPlainPGMAndPPM() throws {
        DataFixtures.write(Array("P5\n# comment\n3 2\n255\n".utf8) + [0, 100, 255, 10, 20, 30], to: path("a.pgm"))
        XCTAssertEqual(try ImageDecoder.decode(path: path("a.pgm")).pixels, [0, 100, 255, 10, 20, 30])
        DataFixtures.write(Array("P2 3 2 15\n0 5 15\n1 2 3\n".utf8), to: path("b.pgm"))
        XCTAssertEqual(try ImageDecoder.decode(path: path("b.pgm")).pixels, [0, 85, 255, 17, 34, 51])
        DataFixtures.write(Array("P6\n1 2\n255\n".utf8) + [1, 2, 3, 4, 5, 6], to: path("c.ppm"))
        XCTAssertEqual(try ImageDecoder.decode(path: path("c.ppm")), ImageDecoder.Image(width: 1, height: 2, channels: 3, pixels: [1, 2, 3, 4, 5, 6]))
        DataFixtures.write(Array("P3 1 1 255 7 8 9".utf8), to: path("d.ppm"))
        XCTAssertEqual(try ImageDecoder.decode(path: path("d.ppm")).pixels, [7, 8, 9])
    }

    func testTruncatedPGM() {
        DataFixtures.write(Array("P5\n3 2\n255\n".utf8) + [0, 100], to: path("t.pgm"))
        XCTAssertEqual(
            DataFixtures.message { _ = try ImageDecoder.decode(path: path("t.pgm")) },
            "truncated file \(path("t.pgm")): expected 17 bytes, got 13; hint: download it again")
    }

    func testHugePGMHeaderIsTruncationNotACrash() {
        DataFixtures.write(Array("P5 999999999 999999999 255\n".utf8) + [1, 2], to: path("h.pgm"))
        XCTAssertTrue(
            DataFixtures.message { _ = try ImageDecoder.decode(path: path("h.pgm")) }
                .hasPrefix("truncated file \(path("h.pgm")): expected 999999998000000028 bytes, got 29"))
    }

    func testCorruptPNGNamesTheFile() {
        DataFixtures.write(Array(DataFixtures.pngBytes("rgb").prefix(40)), to: path("x.png"))
        let message = DataFixtures.message { _ = try ImageDecoder.decode(path: path("x.png")) }
        XCTAssertTrue(message.hasPrefix("cannot decode image \(path("x.png")): "), message)
    }

    func testLoadsClassFoldersSortedAsCHW() throws {
        DataFixtures.write(DataFixtures.pngBytes("rgb"), to: path("zebra/1.png"))
        DataFixtures.write(DataFixtures.pngBytes("palette"), to: path("ant/2.png"))
        DataFixtures.write(Array("P6\n3 2\n255\n".utf8) + [UInt8](repeating: 9, count: 18), to: path("ant/1.ppm"))
        DataFixtures.write([1, 2, 3], to: path("ant/notes.txt"))
        let data = try ImageFolderReader.load(directory: dir)
        XCTAssertEqual(data.classNames, ["ant", "zebra"])
        XCTAssertEqual(data.labels, [0, 0, 1])
        XCTAssertEqual(data.sampleShape, [3, 2, 3])
        // Sample 2 (zebra/1.png) as planes: red row-major, then green, then blue.
        XCTAssertEqual(
            Array(data.pixels[36 ..< 54]),
            [255, 0, 0, 10, 40, 70, 0, 255, 0, 20, 50, 80, 0, 0, 255, 30, 60, 90])
    }

    func testGrayFoldersCanBeReadAsRGBAndBack() throws {
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("a/1.png"))
        DataFixtures.write(DataFixtures.pngBytes("rgb"), to: path("b/1.png"))
        XCTAssertEqual(try ImageFolderReader.load(directory: dir).sampleShape, [1, 2, 3])
        XCTAssertEqual(try ImageFolderReader.load(directory: dir, channels: 3).sampleShape, [3, 2, 3])
    }

    func testInconsistentSizesNameTheFileAndBothSizes() {
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("a/1.png"))
        DataFixtures.write(Array("P5 2 2 255\n".utf8) + [1, 2, 3, 4], to: path("b/odd.pgm"))
        XCTAssertEqual(
            DataFixtures.message { _ = try ImageFolderReader.load(directory: dir) },
            "inconsistent image size: \(path("b/odd.pgm")) is 2x2x1 but \(path("a/1.png")) is 3x2x1; hint: all images must have the same size")
    }

    func testEmptyClassFolder() {
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("a/1.png"))
        try! FileManager.default.createDirectory(atPath: path("b"), withIntermediateDirectories: true)
        XCTAssertEqual(
            DataFixtures.message { _ = try ImageFolderReader.load(directory: dir) },
            "no images in \(path("b")); hint: put .png, .pgm or .ppm files in one sub-folder per class")
    }

    func testNoClassFolders() {
        XCTAssertEqual(
            DataFixtures.message { _ = try ImageFolderReader.load(directory: dir) },
            "no images in \(dir); hint: put .png, .pgm or .ppm files in one sub-folder per class")
        XCTAssertTrue(
            DataFixtures.message { _ = try ImageFolderReader.load(directory: path("nope")) }
                .hasPrefix("dataset file not found: \(path("nope")); hint: pass --data"))
    }

    func testValidationSplitIsSeededAndDisjoint() throws {
        let data = InMemoryDataset(
            pixels: (0 ..< 100).map { UInt8($0) }, labels: (0 ..< 100).map { Int32($0 % 10) },
            sampleShape: [1, 1, 1], classNames: (0 ..< 10).map(String.init))
        let (train, validation) = try data.splitValidation(fraction: 0.2, seed: 42)
        XCTAssertEqual(train.count, 80)
        XCTAssertEqual(validation.count, 20)
        XCTAssertEqual(Set(train.pixels + validation.pixels).count, 100)
        XCTAssertEqual(try data.splitValidation(fraction: 0.2, seed: 42).validation.pixels, validation.pixels)
        XCTAssertNotEqual(try data.splitValidation(fraction: 0.2, seed: 43).validation.pixels, validation.pixels)
        XCTAssertEqual(try data.splitValidation(fraction: 0, seed: 1).train.count, 100)
        XCTAssertEqual(
            DataFixtures.message { _ = try data.splitValidation(fraction: 1.5, seed: 1) },
            "invalid validation fraction 1.5: the validation fraction must be in [0, 1)")
    }
}
