import Foundation
import NN

/// Checkpoints of a run: what they record, where rank 0 writes them, and resuming from one.
///
/// A checkpoint is NN's training safetensors file (`Checkpoint.save`): every arena slot, the
/// optimizer's buffers, and metadata with the step, the epoch, the seed (`rng_state`: every random
/// stream of a run derives from it and the epoch), the model spec as JSON, the optimizer summary,
/// and `options`: a `CheckpointRecord` JSON with the position within the epoch, the early-stopping
/// state, the global batch and the launcher's options.
extension DataParallelTrainer {
    /// Writes a checkpoint of `position` to `path` on rank 0; every rank first checks that the
    /// parameters are finite (they are identical on every rank, so all ranks throw together). A
    /// collective in deterministic mode on several ranks (the optimizer's moments are gathered).
    ///
    /// - Returns: whether this rank wrote the file (rank 0 does).
    /// - Throws: `DistError.nonFiniteParameters` on every rank; `CheckpointError` on rank 0.
    func saveCheckpoint(position: TrainingPosition, to path: String) throws -> Bool {
        let arena = model.arena
        for slot in arena.slots where !UnsafeBufferPointer(start: arena.parameters + slot.offset, count: slot.count).allSatisfy(\.isFinite) {
            throw DistError.nonFiniteParameters(step: position.step, parameter: slot.name)
        }
        try ddp.exactReducer?.shareOptimizerState(optimizer)
        guard communicator.isRoot else { return false }
        let record = CheckpointRecord(
            globalBatch: configuration.globalBatchSize, accumulate: configuration.accumulationSteps,
            seed: "\(configuration.seed)", trainingSamples: trainingSamples, position: position,
            options: configuration.recordedOptions, chunkSize: ddp.exactReducer.map { _ in configuration.chunkSize },
            exactExponents: ddp.exactReducer?.exponentsByName)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let metadata = TrainingMetadata(
            step: position.step, epoch: position.epoch, rngState: configuration.seed,
            modelSpec: String(decoding: try encoder.encode(spec), as: UTF8.self),
            options: String(decoding: try encoder.encode(record), as: UTF8.self),
            optimizer: optimizer.summary)
        try Checkpoint.save(arena: model.arena, optimizer: optimizer.state, metadata: metadata, to: path)
        return true
    }

    /// Loads a checkpoint's parameters and optimizer state into this replica (before `fit`).
    ///
    /// Everything is checked before anything is loaded: the model, the optimizer, the seed, the
    /// global batch of a step and the training set size must be those of the run that wrote it;
    /// the number of ranks may differ.
    /// - Parameters:
    ///   - path: a checkpoint file, or a folder (its newest `step-*.safetensors`).
    ///   - trainingSamples: the size of this run's training set.
    /// - Returns: the position to pass to `fit(…from:…)` and the file actually read.
    /// - Throws: `DistError.checkpointMismatch` naming what differs; `CheckpointError` for a bad file.
    public func restore(from path: String, trainingSamples: Int) throws -> (position: TrainingPosition, path: String) {
        let file = try TrainingCheckpoints.resolve(path)
        let checkpoint = try Checkpoint.read(from: file)
        func mismatch(_ reason: String) -> DistError { .checkpointMismatch(path: file, reason: reason) }
        guard checkpoint.metadata["format"] == Checkpoint.trainingFormat,
            let specJSON = checkpoint.metadata["model_spec"], let optionsJSON = checkpoint.metadata["options"]
        else {
            throw mismatch("it is not a training checkpoint (no model spec or options in its metadata)")
        }
        let saved: ModelSpec
        do { saved = try JSONDecoder().decode(ModelSpec.self, from: Data(specJSON.utf8)) } catch {
            throw mismatch("its model spec cannot be read: \(error)")
        }
        if let difference = ModelDifference.first(between: saved, and: spec) { throw mismatch("the model differs: \(difference)") }
        let savedOptimizer = checkpoint.metadata["optimizer"] ?? ""
        guard savedOptimizer == optimizer.summary else {
            throw mismatch(
                "the optimizer differs: the checkpoint has \(savedOptimizer), this run has \(optimizer.summary); hint: pass the checkpoint's --optimizer and its hyperparameters"
            )
        }
        let record: CheckpointRecord
        do { record = try JSONDecoder().decode(CheckpointRecord.self, from: Data(optionsJSON.utf8)) } catch {
            throw mismatch("its training record cannot be read: \(error)")
        }
        if let problem = record.problem { throw mismatch("its training record is invalid: \(problem)") }
        guard record.seed == "\(configuration.seed)" else {
            throw mismatch("--seed differs: the checkpoint has \(record.seed), this run has \(configuration.seed) (the sample order depends on it)")
        }
        let savedStep = record.globalBatch * record.accumulate, step = configuration.globalBatchSize * configuration.accumulationSteps
        guard record.globalBatch == configuration.globalBatchSize, record.accumulate == configuration.accumulationSteps else {
            throw mismatch(
                "the global batch differs: the checkpoint has --batch-size \(record.globalBatch) --accumulate \(record.accumulate) (\(savedStep) samples a step), this run has --batch-size \(configuration.globalBatchSize) --accumulate \(configuration.accumulationSteps) (\(step)); hint: any number of ranks works with the same global batch"
            )
        }
        guard record.trainingSamples == trainingSamples else {
            throw mismatch(
                "the training set differs: the checkpoint has \(record.trainingSamples) samples, this run has \(trainingSamples); hint: pass the same --data and --validation-split"
            )
        }
        if ddp.exactReducer != nil, let saved = record.chunkSize, saved != configuration.chunkSize {
            throw mismatch(
                "--chunk-size differs: the checkpoint has \(saved), this run has \(configuration.chunkSize) (deterministic results depend on it); hint: pass --chunk-size \(saved)"
            )
        }
        let (_, state) = try Checkpoint.load(from: file, into: model.arena)
        // The exact sums' scales continue those of the run that wrote it (so does the rounding).
        if let exactReducer = ddp.exactReducer { exactReducer.restoreExponents(record.exactExponents ?? [:]) }
        if let state { optimizer.state = state }
        return (record.position, file)
    }
}

/// What a checkpoint's `options` JSON holds.
struct CheckpointRecord: Codable {
    var globalBatch: Int
    var accumulate: Int
    /// The seed as text (UInt64 does not survive every JSON reader).
    var seed: String
    var trainingSamples: Int
    var position: TrainingPosition
    /// The launcher's options, for people reading the file.
    var options: [String: String]
    /// Deterministic mode: the chunk size (nil in fast mode).
    var chunkSize: Int?
    /// Deterministic mode: each tensor's agreed exponent of its largest chunk gradient
    /// (`ExactGradientReducer.exponents`), so a resumed run rounds like an uninterrupted one.
    var exactExponents: [String: Int]?

    /// What makes a decoded record unusable (a count out of range that would trap or overflow
    /// later), or nil when it is sound.
    var problem: String? {
        let limit = 1 << 48
        guard (1 ... limit).contains(globalBatch), (1 ... limit).contains(accumulate) else {
            return "globalBatch \(globalBatch) and accumulate \(accumulate) must be in 1...\(limit)"
        }
        guard (0 ... limit).contains(trainingSamples) else { return "trainingSamples \(trainingSamples) is not in 0...\(limit)" }
        let p = position
        guard [p.epoch, p.stepInEpoch, p.step, p.epochsWithoutImprovement].allSatisfy({ (0 ... limit).contains($0) }) else {
            return
                "epoch \(p.epoch), stepInEpoch \(p.stepInEpoch), step \(p.step) and epochsWithoutImprovement \(p.epochsWithoutImprovement) must be in 0...\(limit)"
        }
        guard p.stepInEpoch <= p.step else { return "stepInEpoch \(p.stepInEpoch) exceeds step \(p.step)" }
        return nil
    }
}

/// The first difference between two model specs, in words.
enum ModelDifference {
    static func first(between saved: ModelSpec, and current: ModelSpec) -> String? {
        if saved.inputShape != current.inputShape {
            return "input shape: the checkpoint has \(saved.inputShape), this run has \(current.inputShape)"
        }
        for i in 0 ..< max(saved.layers.count, current.layers.count) {
            let a = i < saved.layers.count ? "\(saved.layers[i])" : "nothing"
            let b = i < current.layers.count ? "\(current.layers[i])" : "nothing"
            if a != b { return "layer \(i): the checkpoint has \(a), this run has \(b)" }
        }
        if saved.loss != current.loss { return "loss: the checkpoint has \(saved.loss.rawValue), this run has \(current.loss.rawValue)" }
        return nil
    }
}

/// Rank 0's checkpoint folder: `step-<n>.safetensors` files (the newest `keepLast` kept) and
/// `best.safetensors`.
final class TrainingCheckpoints {
    static let bestName = "best.safetensors"
    let policy: CheckpointPolicy

    /// Creates the folder on rank 0.
    init(policy: CheckpointPolicy, isRoot: Bool) throws {
        self.policy = policy
        guard isRoot else { return }
        do {
            try FileManager.default.createDirectory(atPath: policy.directory, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError.writeFailed(path: policy.directory, operation: "mkdir", reason: "\(error.localizedDescription)")
        }
        // A writer killed mid-write leaves `<name>.tmp`; only renamed files are checkpoints.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: policy.directory)) ?? [] where name.hasSuffix(".safetensors.tmp") {
            try? FileManager.default.removeItem(atPath: path(name))
        }
    }

    static func stepName(_ step: Int) -> String { String(format: "step-%08d.safetensors", step) }

    func path(_ name: String) -> String { (policy.directory as NSString).appendingPathComponent(name) }

    /// The steps of the `step-*.safetensors` files in a folder, ascending, with their names.
    static func stepFiles(in directory: String) -> [(step: Int, name: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"),
                let step = Int(name.dropFirst(5).dropLast(12))
            else { return nil }
            return (step, name)
        }.sorted { $0.0 < $1.0 }
    }

    /// Deletes all but the newest `keepLast` step files.
    func prune() {
        guard policy.keepLast > 0 else { return }
        let files = TrainingCheckpoints.stepFiles(in: policy.directory)
        for file in files.dropLast(policy.keepLast) { try? FileManager.default.removeItem(atPath: path(file.name)) }
    }

    /// A checkpoint file, or a folder's newest step file.
    static func resolve(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw CheckpointError.missingFile(path: path) }
        guard isDirectory.boolValue else { return path }
        guard let newest = stepFiles(in: path).last else {
            throw DistError.checkpointMismatch(
                path: path,
                reason:
                    "the folder has no step-*.safetensors checkpoint; hint: pass a checkpoint file such as \((path as NSString).appendingPathComponent(bestName))"
            )
        }
        return (path as NSString).appendingPathComponent(newest.name)
    }
}
