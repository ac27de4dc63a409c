import Foundation
import NN
import XCTest

/// Bad input never traps: the built `ddp` exits non-zero with one line per rank naming the file or
/// option and the problem (with a hint where the fix is known), every rank ends before the
/// timeout, and checkpoints it was given are left as they were.
///
/// Data files are exercised through `ddp eval --data` and model files through `ddp eval --model`,
/// which read them with the same NN readers `ddp train` uses. Every case runs bare; one case of
/// each source of the error (a data file in eval and in train, a checkpoint, a model file, the
/// data against the checkpoint or an option, an image, an option refused while parsing) runs under
/// `mpirun -np 2` as well: an error of the same source takes the same way out of every rank, so
/// more cases under mpirun would test that way again, not another one.
final class BadInputTests: XCTestCase {
    var dir = ""
    /// A valid checkpoint of the `tiny` model for 8x8 samples and 7 classes.
    var checkpoint = ""

    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
        dir = InferenceFixtures.makeDirectory(name)
        checkpoint = "\(dir)/tiny.safetensors"
        InferenceFixtures.checkpoint(InferenceFixtures.spec("tiny", side: 8, classes: 7), at: checkpoint)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs `ddp <arguments>` bare (ranks 1) or under mpirun and checks the failure: non-zero exit,
    /// no timeout, no trap, between 1 and `ranks` error lines, each mentioning every string of
    /// `mentions` (and `hint:` when `hint`), and every file of `unchanged` byte for byte as before.
    ///
    /// `optionError`: the option is rejected before MPI starts, where ArgumentParser writes the
    /// message in pieces that mpirun's own report of the failed ranks can split; under mpirun only
    /// the exit is checked then (the bare run checks the message).
    func expectFailure(
        _ arguments: [String], ranks: [Int] = [1], mentions: [String], hint: Bool = true,
        optionError: Bool = false, unchanged: [String]? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let guarded = unchanged ?? [checkpoint]
        let before = guarded.map(InferenceFixtures.bytes)
        for p in ranks {
            let r = p == 1 ? try DDPProcess.bare(arguments, timeout: 60) : try DDPProcess.mpirun(p, arguments, timeout: 60)
            let context = "P=\(p) ddp \(arguments.joined(separator: " "))\n\(r.stderr)"
            XCTAssertFalse(r.timedOut, "a rank was left running: \(context)", file: file, line: line)
            XCTAssertNotEqual(r.status, 0, context, file: file, line: line)
            XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), "trapped: \(context)", file: file, line: line)
            if optionError && p > 1 { continue }
            let errors = InferenceFixtures.errorLines(r.stderr)
            XCTAssertTrue((1 ... p).contains(errors.count), "expected 1...\(p) error lines: \(context)", file: file, line: line)
            for message in errors {
                for m in mentions { XCTAssertTrue(message.contains(m), "'\(m)' missing from: \(message)", file: file, line: line) }
                if hint { XCTAssertTrue(message.contains("hint: "), "no hint in: \(message)", file: file, line: line) }
            }
        }
        for (path, bytes) in zip(guarded, before) {
            XCTAssertEqual(InferenceFixtures.bytes(path), bytes, "\(path) was changed", file: file, line: line)
        }
    }

    /// A folder of IDX test files for the tiny checkpoint (8x8, labels below 7), then `damage`.
    func idxData(count: Int = 10, damage: (String) -> Void = { _ in }) -> String {
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data", count: count, side: 8, classes: 7)
        damage(data)
        return data
    }

    func eval(_ data: String, _ extra: [String] = []) -> [String] {
        ["eval", "--checkpoint", checkpoint, "--data", data] + extra
    }

    // MARK: data files

    func testMissingDataDirectory() throws {
        let missing = "\(dir)/no-such-folder"
        try expectFailure(eval(missing), ranks: [1, 2], mentions: ["dataset file not found: \(missing)"])
    }

    func testMissingLabelFile() throws {
        let data = idxData { try! FileManager.default.removeItem(atPath: "\($0)/t10k-labels-idx1-ubyte") }
        try expectFailure(eval(data), mentions: ["\(data)/t10k-labels-idx1-ubyte[.gz]", "not found"])
    }

    func testTruncatedIDXFile() throws {
        let data = idxData { d in
            let path = "\(d)/t10k-images-idx3-ubyte"
            InferenceFixtures.write(Array(InferenceFixtures.bytes(path).dropLast(100)), to: path)
        }
        try expectFailure(eval(data), mentions: ["truncated file \(data)/t10k-images-idx3-ubyte: expected 656 bytes, got 556"])
    }

    func testCorruptGzip() throws {
        let data = idxData { d in
            let path = "\(d)/t10k-images-idx3-ubyte"
            try! FileManager.default.removeItem(atPath: path)
            // A gzip header followed by bytes that are not a deflate stream.
            InferenceFixtures.write([0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 3] + [UInt8](repeating: 0xFF, count: 40), to: path + ".gz")
        }
        try expectFailure(eval(data), mentions: ["corrupt gzip file \(data)/t10k-images-idx3-ubyte.gz"])
    }

    func testWrongMagicNumber() throws {
        let data = idxData { d in
            // A label file's magic (1 dimension) where images belong.
            InferenceFixtures.write(InferenceFixtures.idx(dims: [640], data: [UInt8](repeating: 0, count: 640)), to: "\(d)/t10k-images-idx3-ubyte")
        }
        try expectFailure(
            eval(data), mentions: ["wrong magic number in \(data)/t10k-images-idx3-ubyte", "expected 0x00000803", "found 0x00000801"],
            hint: false)
    }

    func testLabelOutOfRange() throws {
        let data = idxData { d in
            InferenceFixtures.write(InferenceFixtures.idx(dims: [10], data: [0, 1, 2, 9, 4, 5, 6, 0, 1, 2]), to: "\(d)/t10k-labels-idx1-ubyte")
        }
        try expectFailure(
            eval(data), mentions: ["label out of range in \(data)/t10k-labels-idx1-ubyte: sample 3 has label 9, but there are 7 classes"],
            hint: false)
    }

    func testImagesOfInconsistentSizesInClassFolders() throws {
        let folders = "\(dir)/folders"
        let first = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 9, count: 64)),
            to: "\(folders)/test/a/0.pgm")
        let odd = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 6, height: 6, channels: 1, pixels: [UInt8](repeating: 9, count: 36)),
            to: "\(folders)/test/b/0.pgm")
        try expectFailure(eval(folders), mentions: ["inconsistent image size: \(odd) is 6x6x1 but \(first) is 8x8x1"])
    }

    /// `ddp train` reads its data with the same readers: a truncated training file ends every rank
    /// with the file named, and the checkpoints in the run's folder stay as they were.
    func testTrainingOnATruncatedFileEndsEveryRankAndLeavesCheckpointsAlone() throws {
        let data = idxData { d in
            let path = "\(d)/train-images-idx3-ubyte"
            InferenceFixtures.write(Array(InferenceFixtures.bytes(path).dropLast(64)), to: path)
        }
        let runs = "\(dir)/runs"
        try FileManager.default.createDirectory(atPath: runs, withIntermediateDirectories: true)
        let earlier = "\(runs)/step-00000004.safetensors"
        try FileManager.default.copyItem(atPath: checkpoint, toPath: earlier)
        try expectFailure(
            [
                "train", "--data", data, "--model", "tiny", "--epochs", "1", "--batch-size", "4",
                "--checkpoint-dir", runs, "--log-interval", "0"
            ], ranks: [1, 2],
            mentions: ["truncated file \(data)/train-images-idx3-ubyte: expected 656 bytes, got 592"],
            unchanged: [checkpoint, earlier])
    }

    func testMissingSplit() throws {
        let folders = "\(dir)/folders"
        InferenceFixtures.write(
            InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 9, count: 64)),
            to: "\(folders)/train/a/0.pgm")
        try expectFailure(eval(folders), ranks: [1], mentions: ["\(folders) has no test split", "--split train"])
    }

    // MARK: checkpoints

    func testCorruptCheckpoint() throws {
        let data = idxData()
        let garbage = InferenceFixtures.write("this is not a safetensors file", to: "\(dir)/garbage.safetensors")
        var badJSON: [UInt8] = [10, 0, 0, 0, 0, 0, 0, 0]
        badJSON += Array("{not json}".utf8)
        let header = InferenceFixtures.write(badJSON, to: "\(dir)/header.safetensors")
        let image = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 9, count: 64)),
            to: "\(dir)/x.pgm")
        try expectFailure(
            ["eval", "--checkpoint", garbage, "--data", data], ranks: [1, 2], mentions: ["truncated checkpoint \(garbage)"], hint: false,
            unchanged: [garbage])
        try expectFailure(
            ["predict", "--checkpoint", garbage, image], ranks: [1], mentions: ["truncated checkpoint \(garbage)"], hint: false,
            unchanged: [garbage])
        try expectFailure(["eval", "--checkpoint", header, "--data", data], mentions: ["bad checkpoint header in \(header)"], unchanged: [header])
        try expectFailure(["predict", "--checkpoint", header, image], ranks: [1], mentions: ["bad checkpoint header in \(header)"], unchanged: [header])
    }

    func testTruncatedCheckpoint() throws {
        let data = idxData()
        let cut = InferenceFixtures.write(Array(InferenceFixtures.bytes(checkpoint).dropLast(40)), to: "\(dir)/cut.safetensors")
        try expectFailure(
            ["eval", "--checkpoint", cut, "--data", data], mentions: ["truncated checkpoint \(cut): tensor"], hint: false,
            unchanged: [cut, checkpoint])
    }

    func testMissingCheckpoint() throws {
        let image = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 9, count: 64)),
            to: "\(dir)/x.pgm")
        try expectFailure(
            ["predict", "--checkpoint", "\(dir)/none.safetensors", image], ranks: [1],
            mentions: ["checkpoint not found: \(dir)/none.safetensors"])
        try expectFailure(["eval", "--checkpoint", "\(dir)/none.safetensors", "--data", idxData()], mentions: ["checkpoint not found: \(dir)/none.safetensors"])
    }

    func testCheckpointWithoutAUsableModelDescription() throws {
        let data = idxData()
        let model = try InferenceFixtures.spec("tiny", side: 8, classes: 7).build()
        let bare = "\(dir)/bare.safetensors", broken = "\(dir)/broken.safetensors"
        try Checkpoint.save(arena: model.arena, optimizer: nil, metadata: TrainingMetadata(), to: bare)
        try Checkpoint.save(
            arena: model.arena, optimizer: nil, metadata: TrainingMetadata(modelSpec: #"{"input": [1, 8, 8], "layers": [{"type": "warp"}]}"#),
            to: broken)
        try expectFailure(
            ["eval", "--checkpoint", bare, "--data", data], mentions: ["checkpoint \(bare) has no model_spec metadata", "--model"],
            unchanged: [bare])
        try expectFailure(
            ["eval", "--checkpoint", broken, "--data", data],
            mentions: ["\(broken) (model_spec metadata): layer 0", "unknown layer type 'warp'"], unchanged: [broken])
        // --model names the model a bare checkpoint holds.
        let r = try DDPProcess.bare(["eval", "--checkpoint", bare, "--data", data, "--model", "tiny"], timeout: 60)
        XCTAssertNotEqual(r.status, 0, "IDX data has 10 classes, the checkpoint 7")
        XCTAssertTrue(r.stderr.contains("tensor 4.dense.weight in \(bare) has shape [7, 32], the model expects [10, 32]"), r.stderr)
    }

    func testCheckpointOfAnotherModel() throws {
        let data = idxData()
        // mlp has no convolution: the first tensor it needs is not in a tiny checkpoint.
        try expectFailure(
            eval(data, ["--model", "mlp"]),
            mentions: ["checkpoint \(checkpoint) has no tensor 1.dense.weight", "different model"])
    }

    func testCheckpointForOtherSampleShape() throws {
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data6", count: 10, side: 6, classes: 7)
        try expectFailure(
            eval(data), ranks: [1, 2],
            mentions: [
                "the model in \(checkpoint) takes samples of shape [1, 8, 8]",
                "\(data) (test split) has samples of shape [1, 6, 6]"
            ])
        // The same model built for 6x6 samples (IDX data: Fashion-MNIST's 10 classes): its dense layer has another shape.
        try expectFailure(
            eval(data, ["--model", "tiny"]), ranks: [1],
            mentions: ["tensor 4.dense.weight in \(checkpoint) has shape [7, 32], the model expects [10, 8]"])
    }

    func testRanksGivenDifferentCheckpointsEndWithTheFirstDifference() throws {
        let data = idxData()
        let other = "\(dir)/other.safetensors"
        InferenceFixtures.checkpoint(InferenceFixtures.spec("tiny", side: 8, classes: 7), at: other, seed: 99)
        let r = try DDPProcess.mpirun(
            contexts: [
                (1, ["eval", "--checkpoint", checkpoint, "--data", data]),
                (1, ["eval", "--checkpoint", other, "--data", data])
            ], timeout: 60)
        XCTAssertFalse(r.timedOut, "mismatched ranks must not hang")
        XCTAssertNotEqual(r.status, 0)
        let errors = InferenceFixtures.errorLines(r.stderr)
        XCTAssertFalse(errors.isEmpty, r.stderr)
        for line in errors { XCTAssertTrue(line.contains("ranks built different replicas: option parameters: rank 1 has"), line) }
    }

    // MARK: model files

    func testModelFileWithUnknownLayerType() throws {
        let data = idxData()
        let model = InferenceFixtures.write(
            "layers:\n  - {type: flatten}\n  - {type: conv3d, filters: 4}\n  - {type: dense, units: classes}\n",
            to: "\(dir)/model.yaml")
        try expectFailure(eval(data, ["--model", model]), ranks: [1, 2], mentions: ["\(model): layer 1", "unknown layer type 'conv3d'"])
    }

    func testModelFileWithUnknownOption() throws {
        let data = idxData()
        let model = InferenceFixtures.write(
            "layers:\n  - {type: maxpool2d, size: 2}\n  - {type: flatten}\n  - {type: dense, units: classes}\n",
            to: "\(dir)/model.yaml")
        try expectFailure(eval(data, ["--model", model]), mentions: ["\(model): layer 0 (maxpool2d)", "unknown option 'size'"])
    }

    // MARK: options

    /// An option refused while parsing ends the bare run and every rank under mpirun. Which
    /// options are refused, and their messages: `CommandParsingTests`, in process.
    func testZeroBatchSize() throws {
        try expectFailure(["train", "--batch-size", "0"], ranks: [1, 2], mentions: ["--batch-size must be positive, got 0"], hint: false, optionError: true)
    }

    func testBadNormalization() throws {
        let data = idxData()
        try expectFailure(
            eval(data, ["--normalize", "0.5,0.1,0.2"]), ranks: [1, 2], mentions: ["invalid normalization 0.5,0.1,0.2 from --normalize"], hint: false)
        try expectFailure(eval(data, ["--normalize", "0.5,0"]), ranks: [1], mentions: ["standard deviation must be > 0"], hint: false)
        let recorded = "\(dir)/recorded.safetensors"
        InferenceFixtures.checkpoint(
            InferenceFixtures.spec("tiny", side: 8, classes: 7), at: recorded,
            options: #"{"options": {"normalize": "0.1,0.2,0.3,0.4"}}"#)
        try expectFailure(
            ["eval", "--checkpoint", recorded, "--data", data], ranks: [1],
            mentions: ["from checkpoint \(recorded): 2 means for a model with 1 channel; give 1"], hint: false, unchanged: [recorded])
    }

    // MARK: images

    func testBadImagesAreNamed() throws {
        let good = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 9, count: 64)),
            to: "\(dir)/good.pgm")
        let text = InferenceFixtures.write("hello", to: "\(dir)/text.png")
        let cutPNG = InferenceFixtures.write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48], to: "\(dir)/cut.png")
        let cutPGM = InferenceFixtures.write(Array("P5\n8 8\n255\n".utf8) + [1, 2, 3], to: "\(dir)/cut.pgm")
        for (bad, message) in [
            (text, "cannot decode image \(text)"), (cutPNG, "cannot decode image \(cutPNG)"),
            (cutPGM, "truncated file \(cutPGM): expected 75 bytes, got 14")
        ] {
            try expectFailure(["predict", "--checkpoint", checkpoint, good, bad], ranks: bad == text ? [1, 2] : [1], mentions: [message], hint: false)
        }
        try expectFailure(
            ["predict", "--checkpoint", checkpoint, good, "\(dir)/missing.png"], ranks: [1],
            mentions: ["image not found: \(dir)/missing.png"])
    }
}
