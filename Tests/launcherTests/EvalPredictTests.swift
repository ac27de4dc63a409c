import Foundation
import NN
import XCTest

/// `ddp eval` and `ddp predict` on checkpoints written with NN's `Checkpoint.save`, run as the built
/// binary, bare and under mpirun.
final class EvalPredictTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
    }

    /// `ddp eval --json` on `ranks` ranks (1: bare), decoded.
    func evalJSON(_ arguments: [String], ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let arguments = ["eval", "--json"] + arguments
        let r = ranks == 1 ? try DDPProcess.bare(arguments, timeout: 60) : try DDPProcess.mpirun(ranks, arguments, timeout: 60)
        XCTAssertFalse(r.timedOut, "eval on \(ranks) ranks hung", file: file, line: line)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr, file: file, line: line)
        let objects = InferenceFixtures.jsonObjects(r.stdout)
        XCTAssertEqual(objects.count, 1, "rank 0 alone prints one object: \(r.stdout)", file: file, line: line)
        return objects.first ?? [:]
    }

    func testEvalOnOneAndTwoAndThreeRanksCountsEverySampleOnce() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 37 samples: the shards are uneven for 2 and 3 ranks.
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data", count: 37, side: 8, classes: 7)
        let checkpoint = "\(dir)/tiny.safetensors"
        InferenceFixtures.checkpoint(InferenceFixtures.spec("tiny", side: 8, classes: 7), at: checkpoint)
        let one = try evalJSON(["--checkpoint", checkpoint, "--data", data, "--batch-size", "5"], ranks: 1)
        XCTAssertEqual(one["samples"] as? Int, 37)
        XCTAssertEqual(one["ranks"] as? Int, 1)
        XCTAssertNotNil(one["top5_accuracy"], "7 classes: top-5 is reported")
        for p in [2, 3] {
            let many = try evalJSON(["--checkpoint", checkpoint, "--data", data, "--batch-size", "5"], ranks: p)
            XCTAssertEqual(many["samples"] as? Int, 37, "P=\(p)")
            XCTAssertEqual(many["ranks"] as? Int, p)
            // Counts are integers: identical. The loss sum is added in another order: float noise.
            XCTAssertEqual(many["accuracy"] as? Double, one["accuracy"] as? Double, "P=\(p)")
            XCTAssertEqual(many["top5_accuracy"] as? Double, one["top5_accuracy"] as? Double, "P=\(p)")
            XCTAssertEqual(many["loss"] as! Double, one["loss"] as! Double, accuracy: 1e-5 * max(1, abs(one["loss"] as! Double)))
        }
    }

    func testEvalMatchesAnInProcessForwardPass() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data", count: 30, side: 8, classes: 7)
        let checkpoint = "\(dir)/mlp.safetensors"
        var model = InferenceFixtures.checkpoint(InferenceFixtures.spec("mlp", side: 8, classes: 7), at: checkpoint, seed: 11)
        let (pixels, labels) = InferenceFixtures.quadrantSamples(count: 30, side: 8, classes: 7)
        let input = Tensor(shape: [30, 1, 8, 8], values: pixels.map { Float($0) / 255 })
        let logits = model.forward(input, context: ForwardContext(training: false))
        let expected = Double(Metrics.correctCount(logits: logits, labels: labels.map(Int32.init))) / 30
        let result = try evalJSON(["--checkpoint", checkpoint, "--data", data, "--np", "2"], ranks: 1)
        XCTAssertEqual(result["accuracy"] as? Double, expected)
        XCTAssertEqual(result["ranks"] as? Int, 2, "--np 2 re-executed under mpirun")
    }

    func testQuadrantModelIsPerfectOnQuadrantData() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data", count: 20, side: 8, classes: 4)
        let checkpoint = "\(dir)/quadrant.safetensors"
        InferenceFixtures.quadrantCheckpoint(at: checkpoint)
        let result = try evalJSON(["--checkpoint", checkpoint, "--data", data, "--split", "train"], ranks: 2)
        XCTAssertEqual(result["accuracy"] as? Double, 1)
        XCTAssertEqual(result["samples"] as? Int, 20)
        XCTAssertNil(result["top5_accuracy"], "4 classes: no top-5")
        XCTAssertEqual(result["split"] as? String, "train")
    }

    func testEvalReadsClassFolders() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (k, name) in ["a-top-left", "b-top-right", "c-bottom-left", "d-bottom-right"].enumerated() {
            for i in 0 ..< 3 {
                InferenceFixtures.write(
                    InferenceFixtures.pnm(
                        width: 8, height: 8, channels: 1,
                        pixels: InferenceFixtures.quadrantImage(side: 8, quadrant: k, seed: i)),
                    to: "\(dir)/folders/test/\(name)/\(i).pgm")
            }
        }
        let checkpoint = "\(dir)/quadrant.safetensors"
        InferenceFixtures.quadrantCheckpoint(at: checkpoint)
        let result = try evalJSON(["--checkpoint", checkpoint, "--data", "\(dir)/folders"], ranks: 2)
        XCTAssertEqual(result["samples"] as? Int, 12)
        XCTAssertEqual(result["accuracy"] as? Double, 1)
    }

    func testEvalTextOutputOnFashionMNIST() throws {
        guard FileManager.default.fileExists(atPath: IDXReader.defaultFashionMNISTDirectory) else {
            throw XCTSkip("Fashion-MNIST is not installed at \(IDXReader.defaultFashionMNISTDirectory)")
        }
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = "\(dir)/tiny.safetensors"
        InferenceFixtures.checkpoint(InferenceFixtures.spec("tiny", side: 28, classes: 10), at: checkpoint)
        let r = try DDPProcess.mpirun(2, ["eval", "--checkpoint", checkpoint], timeout: 120)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("on \(IDXReader.defaultFashionMNISTDirectory) (test split), 2 ranks"), r.stdout)
        XCTAssertTrue(r.stdout.contains("top-5 accuracy"), r.stdout)
        XCTAssertTrue(r.stdout.contains("samples 10000"), r.stdout)
    }

    func testEvalAppliesTheRecordedOrGivenNormalization() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data", count: 23, side: 8, classes: 7)
        let spec = InferenceFixtures.spec("mlp", side: 8, classes: 7)
        // The trainer keeps the launcher's options in the record's `options` object.
        let recorded = "\(dir)/recorded.safetensors", plain = "\(dir)/plain.safetensors"
        InferenceFixtures.checkpoint(spec, at: recorded, seed: 4, options: #"{"options": {"normalize": "0.3,0.2"}}"#)
        InferenceFixtures.checkpoint(spec, at: plain, seed: 4)
        let fromCheckpoint = try evalJSON(["--checkpoint", recorded, "--data", data], ranks: 2)
        let fromOption = try evalJSON(["--checkpoint", plain, "--data", data, "--normalize", "0.3,0.2"], ranks: 1)
        let none = try evalJSON(["--checkpoint", plain, "--data", data], ranks: 1)
        XCTAssertEqual(fromCheckpoint["accuracy"] as? Double, fromOption["accuracy"] as? Double)
        XCTAssertEqual(fromCheckpoint["loss"] as! Double, fromOption["loss"] as! Double, accuracy: 1e-5 * (fromOption["loss"] as! Double))
        XCTAssertNotEqual(none["loss"] as! Double, fromOption["loss"] as! Double, accuracy: 1e-3, "normalization changes the inputs")
    }

    func testPredictTakesClassNamesFromTheRecordedDataFolder() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // An IDX folder: the trainer labels it with Fashion-MNIST's names.
        let data = InferenceFixtures.idxDataset(in: "\(dir)/data", count: 10, side: 8, classes: 10)
        let checkpoint = "\(dir)/tiny.safetensors"
        InferenceFixtures.checkpoint(
            InferenceFixtures.spec("tiny", side: 8, classes: 10), at: checkpoint,
            options: #"{"options": {"data": "\#(data)"}}"#)
        let image = InferenceFixtures.write(
            InferenceFixtures.pnm(
                width: 8, height: 8, channels: 1,
                pixels: InferenceFixtures.quadrantImage(side: 8, quadrant: 1, seed: 1)),
            to: "\(dir)/x.pgm")
        let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--top-k", "10", "--json", image], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let predictions = try XCTUnwrap(InferenceFixtures.jsonObjects(r.stdout).first?["predictions"] as? [[String: Any]], r.stdout)
        XCTAssertEqual(Set(predictions.compactMap { $0["name"] as? String }), Set(IDXReader.fashionMNISTClassNames))
        for entry in predictions {
            XCTAssertEqual(entry["name"] as? String, IDXReader.fashionMNISTClassNames[entry["class"] as! Int])
        }
    }

    func testPredictPrintsTheBrightestQuadrantWithClassNames() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = "\(dir)/quadrant.safetensors"
        let names = ["top-left", "top-right", "bottom-left", "bottom-right"]
        let options = String(decoding: try JSONSerialization.data(withJSONObject: ["class_names": names]), as: UTF8.self)
        InferenceFixtures.quadrantCheckpoint(at: checkpoint, options: options)
        var paths: [String] = []
        for k in 0 ..< 4 {
            // Gray PGMs and one RGB PPM (converted to the model's one channel).
            if k == 3 {
                let gray = InferenceFixtures.quadrantImage(side: 8, quadrant: k, seed: 9)
                paths.append(
                    InferenceFixtures.write(
                        InferenceFixtures.pnm(width: 8, height: 8, channels: 3, pixels: gray.flatMap { [$0, $0, $0] }),
                        to: "\(dir)/q\(k).ppm"))
            } else {
                paths.append(
                    InferenceFixtures.write(
                        InferenceFixtures.pnm(
                            width: 8, height: 8, channels: 1,
                            pixels: InferenceFixtures.quadrantImage(side: 8, quadrant: k, seed: k)),
                        to: "\(dir)/q\(k).pgm"))
            }
        }
        let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--top-k", "2"] + paths, timeout: 60)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, r.stdout)
        for (k, line) in lines.enumerated() {
            XCTAssertTrue(line.hasPrefix("\(paths[k]): \(names[k]) (\(k)) "), line)
            XCTAssertEqual(line.components(separatedBy: ", ").count, 2, "top-2: \(line)")
        }
    }

    func testPredictKeepsTheOrderOfManyImages() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = "\(dir)/quadrant.safetensors"
        InferenceFixtures.quadrantCheckpoint(at: checkpoint)
        // More images than one forward pass takes.
        let paths = (0 ..< 150).map { i in
            InferenceFixtures.write(
                InferenceFixtures.pnm(
                    width: 8, height: 8, channels: 1,
                    pixels: InferenceFixtures.quadrantImage(side: 8, quadrant: (i * 7) % 4, seed: i)),
                to: "\(dir)/img\(i).pgm")
        }
        let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--top-k", "1"] + paths, timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 150)
        for (i, line) in lines.enumerated() {
            XCTAssertTrue(line.hasPrefix("\(paths[i]): class \((i * 7) % 4) "), line)
        }
    }

    func testPredictProbabilitiesMatchAnInProcessForwardPass() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = "\(dir)/tiny.safetensors"
        var model = InferenceFixtures.checkpoint(InferenceFixtures.spec("tiny", side: 8, classes: 7), at: checkpoint, seed: 5)
        let pixels = InferenceFixtures.quadrantImage(side: 8, quadrant: 2, seed: 4)
        let image = InferenceFixtures.write(InferenceFixtures.pnm(width: 8, height: 8, channels: 1, pixels: pixels), to: "\(dir)/x.pgm")
        let logits = model.forward(Tensor(shape: [1, 1, 8, 8], values: pixels.map { Float($0) / 255 }), context: ForwardContext(training: false))
        let maxZ = Double(logits.storage.max()!)
        let e = logits.storage.map { exp(Double($0) - maxZ) }
        let p = e.map { $0 / e.reduce(0, +) }
        let best = p.indices.max { p[$0] < p[$1] }!

        let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--top-k", "7", "--json", image], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try XCTUnwrap(InferenceFixtures.jsonObjects(r.stdout).first, r.stdout)
        XCTAssertEqual(object["file"] as? String, image)
        let predictions = try XCTUnwrap(object["predictions"] as? [[String: Any]])
        XCTAssertEqual(predictions.count, 7)
        XCTAssertEqual(predictions.first?["class"] as? Int, best)
        XCTAssertNil(predictions.first?["name"], "no class names recorded")
        for entry in predictions {
            let k = try XCTUnwrap(entry["class"] as? Int)
            // Both sides compute the softmax in Double from the same float32 logits.
            XCTAssertEqual(entry["probability"] as! Double, p[k], accuracy: 1e-6)
        }

        // Normalized as (x − 0.3) / 0.2, with Augmentation's arithmetic.
        let normalized = pixels.map { Float($0) / 255 * (1 / Float(0.2)) + (-0.3 * (1 / Float(0.2))) }
        let z = model.forward(Tensor(shape: [1, 1, 8, 8], values: normalized), context: ForwardContext(training: false)).storage
        let zMax = Double(z.max()!), ez = z.map { exp(Double($0) - zMax) }
        let pz = ez.map { $0 / ez.reduce(0, +) }
        let n = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--top-k", "7", "--json", "--normalize", "0.3,0.2", image], timeout: 60)
        XCTAssertEqual(n.status, 0, n.stderr)
        for entry in try XCTUnwrap(InferenceFixtures.jsonObjects(n.stdout).first?["predictions"] as? [[String: Any]], n.stdout) {
            XCTAssertEqual(entry["probability"] as! Double, pz[entry["class"] as! Int], accuracy: 1e-6)
        }
    }

    func testPredictResizesWhenAsked() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = "\(dir)/quadrant.safetensors"
        InferenceFixtures.quadrantCheckpoint(at: checkpoint)
        // 16x16 with the bottom-right quadrant bright: scaled to 8x8 it stays there.
        let image = InferenceFixtures.write(
            InferenceFixtures.pnm(
                width: 16, height: 16, channels: 1,
                pixels: InferenceFixtures.quadrantImage(side: 16, quadrant: 3, seed: 1)),
            to: "\(dir)/big.pgm")
        let refused = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, image], timeout: 60)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("image \(image) is 16x16 (width x height) but the model takes 8x8; hint: pass --resize"), refused.stderr)
        for method in ["nearest", "bilinear"] {
            let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, "--resize", method, "--top-k", "1", image], timeout: 60)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.hasPrefix("\(image): class 3 "), "\(method): \(r.stdout)")
        }
    }

    func testPredictWithASigmoidModelPrintsTheProbabilityOfClassOne() throws {
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let checkpoint = "\(dir)/binary.safetensors"
        let spec = ModelSpec(
            name: "binary", inputShape: [1, 4, 4], layers: [.flatten, .dense(units: 1, bias: true)],
            loss: .sigmoidBinaryCrossEntropy)
        // Logit = 2·(mean pixel) − 1 on [0, 1] pixels: a white image gives sigmoid(1).
        InferenceFixtures.checkpoint(spec, at: checkpoint, options: #"{"class_names": ["dark", "light"]}"#) { model in
            model.arena.setParameter(model.arena.slot(named: "1.dense.weight")!, [Float](repeating: 2.0 / 16, count: 16))
            model.arena.setParameter(model.arena.slot(named: "1.dense.bias")!, [-1])
        }
        let image = InferenceFixtures.write(
            InferenceFixtures.pnm(width: 4, height: 4, channels: 1, pixels: [UInt8](repeating: 255, count: 16)),
            to: "\(dir)/white.pgm")
        let r = try DDPProcess.bare(["predict", "--checkpoint", checkpoint, image], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(image): light (1) probability \(String(format: "%.4f", 1 / (1 + exp(-1.0))))\n")
    }
}
