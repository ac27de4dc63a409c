import XCTest

@testable import NN

final class DatasetDirectoryTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = DataFixtures.makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    func testDetectsIDX() throws {
        DataFixtures.write(DataFixtures.gzip(DataFixtures.idxImages(count: 2, rows: 2, columns: 2).file), to: path("train-images-idx3-ubyte.gz"))
        DataFixtures.write(DataFixtures.idx(dims: [2], data: [0, 1]), to: path("train-labels-idx1-ubyte"))
        DataFixtures.write(DataFixtures.idxImages(count: 1, rows: 2, columns: 2).file, to: path("t10k-images-idx3-ubyte"))
        DataFixtures.write(DataFixtures.idx(dims: [1], data: [5]), to: path("t10k-labels-idx1-ubyte"))
        XCTAssertEqual(DatasetDirectory.format(of: dir), .idx)
        let (train, test) = try DatasetDirectory.load(dir)
        XCTAssertEqual(train.count, 2)
        XCTAssertEqual(test?.labels, [5])
    }

    func testTrainAndTestClassFolders() throws {
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("train/a/1.png"))
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("train/b/1.png"))
        DataFixtures.write(DataFixtures.pngBytes("rgb"), to: path("test/a/1.png"))
        DataFixtures.write(DataFixtures.pngBytes("rgb"), to: path("test/b/1.png"))
        let (train, test) = try DatasetDirectory.load(dir)
        XCTAssertEqual(DatasetDirectory.format(of: dir), .imageFolder)
        XCTAssertEqual(train.count, 2)
        XCTAssertEqual(test?.sampleShape, [1, 2, 3])
        try FileManager.default.removeItem(atPath: path("test/b"))
        DataFixtures.write(DataFixtures.pngBytes("rgb"), to: path("test/c/1.png"))
        XCTAssertEqual(
            DataFixtures.message { _ = try DatasetDirectory.load(dir) },
            "class mismatch in \(path("test")): found classes [\"a\", \"c\"], the training set has [\"a\", \"b\"]; hint: use the same class folders for training and test"
        )
    }

    func testSingleClassFolderTreeHasNoTestSet() throws {
        DataFixtures.write(DataFixtures.pngBytes("gray"), to: path("a/1.png"))
        let (train, test) = try DatasetDirectory.load(dir)
        XCTAssertEqual(train.count, 1)
        XCTAssertNil(test)
    }
}
