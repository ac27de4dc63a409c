import Foundation
import NN
import XCTest

/// Files the eval, predict and bad-input tests write into fresh temporary folders: IDX datasets,
/// PGM/PPM images, class folders, model files and checkpoints written with NN's `Checkpoint` API.
enum InferenceFixtures {
    /// A new empty folder under the system's temporary directory.
    static func makeDirectory(_ name: String = #function) -> String {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("ddp-infer-\(clean)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Writes bytes, creating the folders on the way; returns the path.
    @discardableResult
    static func write(_ bytes: [UInt8], to path: String) -> String {
        try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// Writes text; returns the path.
    @discardableResult
    static func write(_ text: String, to path: String) -> String { write(Array(text.utf8), to: path) }

    /// An IDX file: magic 00 00 08 D, big-endian extents, data.
    static func idx(dims: [Int], data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
        return out + data
    }

    /// A binary PGM (P5) or PPM (P6) file of `width × height`, pixels interleaved.
    static func pnm(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> [UInt8] {
        precondition(pixels.count == width * height * channels)
        return Array("P\(channels == 1 ? 5 : 6)\n\(width) \(height)\n255\n".utf8) + pixels
    }

    /// A gray image whose quadrant `quadrant` (0 top-left, 1 top-right, 2 bottom-left,
    /// 3 bottom-right) is bright and the rest dim, with a little per-pixel variation from `seed`.
    static func quadrantImage(side: Int, quadrant: Int, seed: Int) -> [UInt8] {
        (0 ..< side * side).map { i in
            let y = i / side, x = i % side, half = side / 2
            let q = (y < half ? 0 : 2) + (x < half ? 0 : 1)
            let noise = (i * 37 + seed * 101) % 23
            return UInt8(q == quadrant ? 200 + noise : 20 + noise)
        }
    }

    /// Pixels and labels of `count` quadrant images with labels `i mod classes`.
    static func quadrantSamples(count: Int, side: Int, classes: Int) -> (pixels: [UInt8], labels: [UInt8]) {
        var pixels: [UInt8] = [], labels: [UInt8] = []
        for i in 0 ..< count {
            let label = i % classes
            pixels += quadrantImage(side: side, quadrant: label % 4, seed: i)
            labels.append(UInt8(label))
        }
        return (pixels, labels)
    }

    /// A folder holding `t10k-*` (test) and `train-*` IDX files of quadrant images.
    static func idxDataset(in directory: String, count: Int = 37, side: Int = 8, classes: Int = 7) -> String {
        let (pixels, labels) = quadrantSamples(count: count, side: side, classes: classes)
        for prefix in ["train", "t10k"] {
            write(idx(dims: [count, side, side], data: pixels), to: "\(directory)/\(prefix)-images-idx3-ubyte")
            write(idx(dims: [count], data: labels), to: "\(directory)/\(prefix)-labels-idx1-ubyte")
        }
        return directory
    }

    /// A spec for `[1, side, side]` samples: a built-in model, or `quadrant` (flatten, dense 4).
    static func spec(_ name: String, side: Int = 8, classes: Int = 7) -> ModelSpec {
        if name == "quadrant" {
            return ModelSpec(name: "quadrant", inputShape: [1, side, side], layers: [.flatten, .dense(units: 4, bias: true)])
        }
        return try! ModelSpec.builtin(name, inputShape: [1, side, side], classes: classes)
    }

    /// The model's description as the trainer stores it (JSON).
    static func specJSON(_ spec: ModelSpec) -> String {
        String(decoding: try! JSONEncoder().encode(spec), as: UTF8.self)
    }

    /// Builds `spec`, initializes it from `seed`, lets `adjust` change parameters, and saves it
    /// with `Checkpoint.save` (no optimizer state) and the given options JSON.
    @discardableResult
    static func checkpoint(
        _ spec: ModelSpec, at path: String, seed: UInt64 = 3, options: String = "{}",
        adjust: (Sequential) -> Void = { _ in }
    ) -> Sequential {
        let model = try! spec.build()
        model.initializeParameters(seed: seed)
        adjust(model)
        let metadata = TrainingMetadata(step: 12, epoch: 1, rngState: 0, modelSpec: specJSON(spec), options: options)
        try! Checkpoint.save(arena: model.arena, optimizer: nil, metadata: metadata, to: path)
        return model
    }

    /// The quadrant model: logit k is the sum of quadrant k's pixels, so the brightest quadrant
    /// wins.
    static func quadrantCheckpoint(at path: String, side: Int = 8, options: String = "{}") -> Sequential {
        checkpoint(spec("quadrant", side: side), at: path, options: options) { model in
            let weight = model.arena.slot(named: "1.dense.weight")!, bias = model.arena.slot(named: "1.dense.bias")!
            var w = [Float](repeating: 0, count: 4 * side * side)
            for k in 0 ..< 4 {
                for j in 0 ..< side * side {
                    let y = j / side, x = j % side, half = side / 2
                    if (y < half ? 0 : 2) + (x < half ? 0 : 1) == k { w[k * side * side + j] = 0.1 }
                }
            }
            model.arena.setParameter(weight, w)
            model.arena.setParameter(bias, [Float](repeating: 0, count: 4))
        }
    }

    /// The file's bytes (to check that nothing rewrote it).
    static func bytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

    /// The lines of `text` that carry an error message (ArgumentParser's `Error:`, a rank's
    /// `[rank r/P] error:`, or `error:` of an error every rank agreed on), ignoring Open MPI's own reports.
    static func errorLines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter {
            $0.hasPrefix("Error: ") || $0.hasPrefix("error: ") || ($0.hasPrefix("[rank ") && $0.contains("] error: "))
        }
    }

    /// One JSON object per line, decoded.
    static func jsonObjects(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}
