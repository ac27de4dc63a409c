import XCTest

@testable import NN

final class AugmentationTests: XCTestCase {
    /// 2 samples of [2, 4, 5] whose bytes are all distinct within a sample.
    let data = InMemoryDataset(
        pixels: (0 ..< 80).map { UInt8($0 * 3 % 256) }, labels: [1, 0],
        sampleShape: [2, 4, 5], classNames: ["a", "b"])

    func batch(_ augmentation: Augmentation, keys: [UInt64], indices: [Int] = [0, 1]) -> Tensor {
        BatchLoader.makeBatch(dataset: data, indices: indices, keys: keys, augmentation: augmentation).0
    }

    func testPlainBatchIsBytesOver255WithLabels() {
        let (x, y) = BatchLoader.makeBatch(dataset: data, indices: [1, 0, 1], keys: [])
        XCTAssertEqual(x.shape, [3, 2, 4, 5])
        XCTAssertEqual(y, [0, 1, 0])
        XCTAssertEqual(x.storage[0], Float(120) / 255, accuracy: 1e-7)
        XCTAssertEqual(Array(x.storage[0 ..< 40]), Array(x.storage[80 ..< 120]))
    }

    func testFlipIsAnExactMirror() throws {
        let flip = try Augmentation(horizontalFlip: true)
        let plain = batch(.none, keys: [], indices: [0])
        // Find keys that flip and keys that do not; every sample is either identical or mirrored.
        var flipped = 0, kept = 0
        for key in UInt64(0) ..< 40 {
            let out = batch(flip, keys: [key], indices: [0])
            let mirrored = (0 ..< 8).flatMap { row in plain.storage[row * 5 ..< row * 5 + 5].reversed() }
            if out.storage == plain.storage {
                kept += 1
            } else {
                XCTAssertEqual(out.storage, mirrored)
                flipped += 1
            }
        }
        XCTAssertGreaterThan(flipped, 5)
        XCTAssertGreaterThan(kept, 5)
    }

    func testSameKeySameOutputDifferentKeysDiffer() throws {
        let augmentation = try Augmentation(horizontalFlip: true, maxShift: 2, zoomRange: 0.2, shearRange: 10)
        let a = batch(augmentation, keys: [11, 12]), b = batch(augmentation, keys: [11, 12])
        XCTAssertEqual(a.storage, b.storage)
        XCTAssertNotEqual(batch(augmentation, keys: [13, 14]).storage, a.storage)
        // Per sample: a sample's result depends on its key only, not on its batch position.
        let alone = batch(augmentation, keys: [12], indices: [1])
        XCTAssertEqual(alone.storage, Array(a.storage[40 ..< 80]))
    }

    func testSampleKeysDependOnSeedEpochAndIndex() {
        let k = BatchLoader.sampleKey(seed: 1, epoch: 0, index: 5)
        XCTAssertEqual(k, BatchLoader.sampleKey(seed: 1, epoch: 0, index: 5))
        XCTAssertNotEqual(k, BatchLoader.sampleKey(seed: 1, epoch: 1, index: 5))
        XCTAssertNotEqual(k, BatchLoader.sampleKey(seed: 1, epoch: 0, index: 6))
        XCTAssertNotEqual(k, BatchLoader.sampleKey(seed: 2, epoch: 0, index: 5))
    }

    func testShiftIsPadAndCrop() throws {
        let shift = try Augmentation(maxShift: 1)
        let plain = batch(.none, keys: [], indices: [0]).storage
        for key in UInt64(0) ..< 20 {
            let out = batch(shift, keys: [key], indices: [0]).storage
            // Some (dx, dy) in [-1, 1]² must explain the output exactly, with zeros shifted in.
            let explained = (-1 ... 1).contains { dy in
                (-1 ... 1).contains { dx in
                    (0 ..< 40).allSatisfy { i in
                        let (c, y, x) = (i / 20, i / 5 % 4, i % 5)
                        let (sy, sx) = (y - dy, x - dx)
                        let expected: Float = sy >= 0 && sy < 4 && sx >= 0 && sx < 5 ? plain[c * 20 + sy * 5 + sx] : 0
                        return out[i] == expected
                    }
                }
            }
            XCTAssertTrue(explained, "key \(key)")
        }
    }

    func testIdentityAffineKeepsTheImage() {
        // A zoom range and shear range of zero with bilinear sampling: the affine kernel with the
        // identity map must reproduce the input exactly.
        let input = (0 ..< 40).map { Float($0) }
        var output = [Float](repeating: -1, count: 40)
        AugmentationKernels.affine(
            output: &output, input: input, C: 2, H: 4, W: 5, map: (1, 0, 1), shift: (0, 0),
            bilinear: true, fill: 0)
        XCTAssertEqual(output, input)
        AugmentationKernels.affine(
            output: &output, input: input, C: 2, H: 4, W: 5, map: (1, 0, 1), shift: (1, 0),
            bilinear: false, fill: -5)
        XCTAssertEqual(Array(output[0 ..< 5]), [-5, 0, 1, 2, 3])
    }

    func testZoomOutHalvesSpacing() {
        // Zoom factor 2 about the centre of a 1×1×5 row: output x samples input at cx + 2(x − cx), cx = 2.
        let input: [Float] = [10, 20, 30, 40, 50]
        var output = [Float](repeating: 0, count: 5)
        AugmentationKernels.affine(
            output: &output, input: input, C: 1, H: 1, W: 5, map: (2, 0, 1), shift: (0, 0),
            bilinear: true, fill: 0)
        XCTAssertEqual(output, [0, 10, 30, 50, 0])
    }

    func testNormalizeUsesChannelMeanAndStd() throws {
        let norm = try Augmentation(rescale: 255, mean: [0, 100], std: [1, 2])
        let out = batch(norm, keys: [], indices: [0]).storage
        XCTAssertEqual(out[0], 0, accuracy: 1e-4)  // byte 0, channel 0
        XCTAssertEqual(out[20], (60 - 100) / 2, accuracy: 1e-4)  // byte 60, channel 1
    }

    func testInvalidSettingsThrow() {
        XCTAssertEqual(
            DataFixtures.message { _ = try Augmentation(zoomRange: 1.5) },
            "invalid zoom range 1.5: the zoom range must be in [0, 1)")
        XCTAssertTrue(DataFixtures.message { _ = try Augmentation(mean: [0.5], std: []) }.hasPrefix("invalid std"))
        XCTAssertTrue(DataFixtures.message { _ = try Augmentation(maxShift: -1) }.hasPrefix("invalid shift -1"))
    }

    func testBatchBuffersAreReused() {
        var x = Tensor(shape: [0]), y: [Int32] = []
        BatchLoader.makeBatch(into: &x, labels: &y, dataset: data, indices: [0, 1], keys: [])
        let first = x.storage
        BatchLoader.makeBatch(into: &x, labels: &y, dataset: data, indices: [1, 0], keys: [])
        XCTAssertEqual(y, [0, 1])
        XCTAssertEqual(Array(x.storage[0 ..< 40]), Array(first[40 ..< 80]))
    }
}
