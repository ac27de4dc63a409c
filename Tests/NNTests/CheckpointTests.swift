import Foundation
import XCTest

@testable import NN

final class CheckpointTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = DataFixtures.makeTemporaryDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    /// A safetensors file from a header string (padded to 8 bytes) and raw data bytes.
    func craft(_ header: String, data: [UInt8], to name: String = "c.safetensors") -> String {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        let n = UInt64(h.count)
        DataFixtures.write((0 ..< 8).map { UInt8(n >> (8 * UInt64($0)) & 0xFF) } + h + data, to: path(name))
        return path(name)
    }

    func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in (0 ..< 4).map { UInt8(v.bitPattern >> (8 * $0) & 0xFF) } } }

    func testRoundTripIsBitExact() throws {
        let special: [Float] = [
            0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
            Float(bitPattern: 0x7FC0_1234), 1.0 / 3
        ]
        let a = Tensor(shape: [2, 4], values: special), b = Tensor(shape: [3], values: [1, 2, 3]), e = Tensor(shape: [0], values: [])
        let metadata = ["quote": "say \"hi\"\n\tand \\ go", "unicode": "héllo ✓", "empty": ""]
        try Checkpoint.write(
            [.init(name: "a.weight", tensor: a), .init(name: "b", tensor: b), .init(name: "empty", tensor: e)],
            metadata: metadata, to: path("c.safetensors"))
        let c = try Checkpoint.read(from: path("c.safetensors"))
        XCTAssertEqual(c.names, ["a.weight", "b", "empty"])
        XCTAssertEqual(c.tensors["a.weight"]!.shape, [2, 4])
        XCTAssertEqual(c.tensors["a.weight"]!.storage.map(\.bitPattern), special.map(\.bitPattern))
        XCTAssertEqual(c.tensors["b"], b)
        XCTAssertEqual(c.tensors["empty"]?.shape, [0])
        XCTAssertEqual(c.metadata, metadata)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("c.safetensors.tmp")))
    }

    func testHeaderLayoutByHand() throws {
        try Checkpoint.write(
            [
                .init(name: "w", tensor: Tensor(shape: [1, 2], values: [1.5, -2])),
                .init(name: "b", tensor: Tensor(shape: [1], values: [0.25]))
            ],
            metadata: ["step": "7"], to: path("c.safetensors"))
        let bytes = [UInt8](FileManager.default.contents(atPath: path("c.safetensors"))!)
        let n = bytes[0 ..< 8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(n % 8, 0, "data must start 8-byte aligned")
        let json = String(decoding: bytes[8 ..< 8 + n], as: UTF8.self)
        let expected =
            #"{"__metadata__":{"step":"7"},"w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        XCTAssertEqual(json.trimmingCharacters(in: .whitespaces), expected)
        XCTAssertTrue(json.dropFirst(expected.count).allSatisfy { $0 == " " })
        // 1.5 = 0x3FC00000, -2 = 0xC0000000, 0.25 = 0x3E800000, little-endian.
        XCTAssertEqual(Array(bytes[(8 + n)...]), [0, 0, 0xC0, 0x3F, 0, 0, 0, 0xC0, 0, 0, 0x80, 0x3E])
    }

    func testNumpyReadsTheFile() throws {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":").map { "\($0)/python3" }
        guard let python = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("python3 is not installed")
        }
        try Checkpoint.write(
            [.init(name: "w", tensor: Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6.5]))],
            metadata: ["epoch": "3"], to: path("c.safetensors"))
        // An independent reader: struct + json + numpy.frombuffer, as a numpy user would write it.
        let script = """
            import json, struct, sys
            try:
                import numpy as np
            except ImportError:
                print("SKIP"); sys.exit(0)
            b = open(sys.argv[1], "rb").read()
            n = struct.unpack("<Q", b[:8])[0]
            h = json.loads(b[8:8 + n])
            e = h["w"]; s, t = e["data_offsets"]
            a = np.frombuffer(b[8 + n + s:8 + n + t], dtype="<f4").reshape(e["shape"])
            print(h["__metadata__"]["epoch"], a.shape, float(a.sum()), float(a[1, 2]))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script, path("c.safetensors")]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if output.hasPrefix("SKIP") { throw XCTSkip("numpy is not installed") }
        XCTAssertEqual(output, "3 (2, 3) 21.5 6.5\n")
    }

    func testFailedDataLeavesExistingCheckpointIntact() throws {
        struct Boom: Error {}
        try Checkpoint.write([.init(name: "w", tensor: Tensor(shape: [2], values: [1, 2]))], metadata: [:], to: path("c.safetensors"))
        let before = FileManager.default.contents(atPath: path("c.safetensors"))
        XCTAssertThrowsError(
            try Checkpoint.write(
                [
                    .init(name: "w", tensor: Tensor(shape: [2], values: [3, 4])),
                    .init(name: "x", shape: [5]) { _ in throw Boom() }
                ],
                metadata: [:], to: path("c.safetensors"))
        ) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(FileManager.default.contents(atPath: path("c.safetensors")), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("c.safetensors.tmp")))
    }

    func testUnwritableTemporaryLeavesExistingCheckpointIntact() throws {
        try Checkpoint.write([.init(name: "w", tensor: Tensor(shape: [2], values: [1, 2]))], metadata: [:], to: path("c.safetensors"))
        let before = FileManager.default.contents(atPath: path("c.safetensors"))
        // A directory where the temporary file should go makes open(2) fail, even for root.
        try FileManager.default.createDirectory(atPath: path("c.safetensors.tmp"), withIntermediateDirectories: false)
        let message = DataFixtures.message {
            try Checkpoint.write([.init(name: "w", tensor: Tensor(shape: [2], values: [3, 4]))], metadata: [:], to: path("c.safetensors"))
        }
        XCTAssertEqual(
            message, "cannot write checkpoint \(path("c.safetensors.tmp")): open failed: Is a directory; hint: check free space and permissions of the folder")
        XCTAssertEqual(FileManager.default.contents(atPath: path("c.safetensors")), before)
    }

    func testMissingFolderFailsToWrite() {
        let message = DataFixtures.message { try Checkpoint.write([], metadata: [:], to: path("no/such/c.safetensors")) }
        XCTAssertTrue(message.hasPrefix("cannot write checkpoint \(path("no/such/c.safetensors.tmp")): open failed: No such file or directory"), message)
    }

    func testMissingFile() {
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: path("none.safetensors")) },
            "checkpoint not found: \(path("none.safetensors")); hint: check the path, or start without --resume")
    }

    func testTruncatedHeader() {
        DataFixtures.write([16, 0, 0], to: path("short"))
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: path("short")) },
            "truncated checkpoint \(path("short")): the header needs 8 bytes, the file has 3")
        DataFixtures.write([64, 0, 0, 0, 0, 0, 0, 0] + Array("{\"a\":".utf8), to: path("cut"))
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: path("cut")) },
            "truncated checkpoint \(path("cut")): the header needs 72 bytes, the file has 13")
    }

    func testTruncatedData() throws {
        let p = craft(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, data: floatBytes([1, 2, 3]))
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: p) },
            "truncated checkpoint \(p): tensor w needs the file to be at least 88 bytes, it has 84")
    }

    func testBadJSON() {
        let p = craft("{\"w\": [nope", data: [])
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: p) },
            "bad checkpoint header in \(p): the 16-byte header is not a JSON object; hint: is this a safetensors file?")
    }

    func testOffsetsThatDisagreeWithTheShape() {
        let p = craft(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, data: floatBytes([1, 2, 3, 4]))
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: p) },
            "bad data_offsets [0, 12] for tensor w in \(p): 12 bytes, but shape [2, 2] of F32 needs 16")
        let q = craft(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, data: floatBytes([1, 2, 3, 4]), to: "q")
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: q) },
            "bad data_offsets [8, 4] for tensor w in \(q): the range is reversed or negative")
    }

    func testHugeShapeIsRejected() {
        let p = craft(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, data: floatBytes([1, 2, 3, 4]))
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: p) },
            "bad data_offsets [0, 16] for tensor w in \(p): shape [4611686018427387904, 4] is too large")
    }

    func testOverlappingTensors() {
        let p = craft(
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            data: floatBytes([1, 2, 3]))
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: p) },
            "corrupt checkpoint \(p): the data of tensors a and b overlap")
    }

    func testUnsupportedDType() {
        let p = craft(#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.read(from: p) },
            "unsupported dtype F16 for tensor h in \(p): only F32 is supported")
    }

    func makeArena() -> ParameterArena {
        let arena = ParameterArena(tensors: [
            (name: "0.dense.weight", shape: [3, 5], trainable: true),
            (name: "0.dense.bias", shape: [3], trainable: true),
            (name: "1.batchnorm.runningMean", shape: [3], trainable: false)
        ])
        for slot in arena.slots { arena.setParameter(slot, randomValues(slot.count, seed: UInt64(slot.offset))) }
        return arena
    }

    func testArenaAndOptimizerStateRoundTrip() throws {
        let arena = makeArena()
        let adam = try Adam(learningRate: 0.01)
        for seed in UInt64(1) ... 2 {
            for i in 0 ..< arena.count { arena.gradients[i] = randomValues(1, seed: seed &* 1000 &+ UInt64(i))[0] }
            adam.step(arena: arena)
        }
        let metadata = TrainingMetadata(
            step: 2, epoch: 1, rngState: 0xDEAD_BEEF_0123_4567, modelSpec: #"{"layers":[]}"#,
            options: #"{"lr":0.01}"#, optimizer: adam.summary)
        try Checkpoint.save(arena: arena, optimizer: adam.state, metadata: metadata, to: path("t.safetensors"))

        let fresh = makeArena()
        fresh.setParameter(fresh.slots[0], [Float](repeating: 0, count: 15))
        let (loaded, state) = try Checkpoint.load(from: path("t.safetensors"), into: fresh)
        XCTAssertEqual(loaded, metadata)
        XCTAssertEqual(fresh.parameterSnapshot().map(\.bitPattern), arena.parameterSnapshot().map(\.bitPattern))
        XCTAssertEqual(state, adam.state)
        let names = try Checkpoint.read(from: path("t.safetensors")).names
        XCTAssertTrue(names.contains("optimizer.m.0.dense.weight") && names.contains("optimizer.v.1.batchnorm.runningMean"), "\(names)")
    }

    func testResumeFromCheckpointContinuesBitExactly() throws {
        // Four SGD-with-Nesterov steps straight through, against two steps, a checkpoint, a fresh
        // arena and optimizer loaded from it, and two more steps.
        func gradients(_ arena: ParameterArena, _ step: Int) {
            for i in 0 ..< arena.count { arena.gradients[i] = randomValues(1, seed: UInt64(step * 100_000 + i))[0] }
        }
        let straight = makeArena()
        let sgd = try SGD(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3)
        for step in 0 ..< 4 {
            gradients(straight, step)
            sgd.step(arena: straight)
        }

        let first = makeArena()
        let before = try SGD(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3)
        for step in 0 ..< 2 {
            gradients(first, step)
            before.step(arena: first)
        }
        try Checkpoint.save(arena: first, optimizer: before.state, metadata: TrainingMetadata(step: 2), to: path("r.safetensors"))
        let resumed = ParameterArena(tensors: first.slots.map { (name: $0.name, shape: $0.shape, trainable: $0.trainable) })
        let after = try SGD(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3)
        let (metadata, state) = try Checkpoint.load(from: path("r.safetensors"), into: resumed)
        after.state = try XCTUnwrap(state)
        for step in metadata.step ..< 4 {
            gradients(resumed, step)
            after.step(arena: resumed)
        }
        XCTAssertEqual(resumed.parameterSnapshot().map(\.bitPattern), straight.parameterSnapshot().map(\.bitPattern))
        XCTAssertEqual(after.state.step, 4)
    }

    func testParametersOnlyCheckpointHasNoOptimizerState() throws {
        try Checkpoint.save(arena: makeArena(), optimizer: nil, metadata: TrainingMetadata(step: 5), to: path("p.safetensors"))
        let (metadata, state) = try Checkpoint.load(from: path("p.safetensors"), into: makeArena())
        XCTAssertEqual(metadata.step, 5)
        XCTAssertNil(state)
    }

    func testLoadingIntoADifferentModelNamesTheTensor() throws {
        try Checkpoint.save(arena: makeArena(), optimizer: nil, metadata: TrainingMetadata(), to: path("p.safetensors"))
        let wider = ParameterArena(tensors: [(name: "0.dense.weight", shape: [4, 5], trainable: true)])
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.load(from: path("p.safetensors"), into: wider) },
            "tensor 0.dense.weight in \(path("p.safetensors")) has shape [3, 5], the model expects [4, 5]; hint: was it written for a different model?")
        let other = ParameterArena(tensors: [(name: "0.conv2d.weight", shape: [3], trainable: true)])
        let before = other.parameterSnapshot()
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.load(from: path("p.safetensors"), into: other) },
            "checkpoint \(path("p.safetensors")) has no tensor 0.conv2d.weight; hint: was it written for a different model?")
        XCTAssertEqual(other.parameterSnapshot(), before)
    }

    func testBadMetadataIsNamed() throws {
        try Checkpoint.write(
            [.init(name: "w", tensor: Tensor(shape: [1], values: [1]))],
            metadata: ["step": "-3", "epoch": "0", "rng_state": "1"], to: path("m.safetensors"))
        let arena = ParameterArena(tensors: [(name: "w", shape: [1], trainable: true)])
        XCTAssertEqual(
            DataFixtures.message { _ = try Checkpoint.load(from: path("m.safetensors"), into: arena) },
            "bad checkpoint metadata step in \(path("m.safetensors")): \"-3\" is not a non-negative integer")
    }
}
