import Foundation
import XCTest

@testable import Dist
@testable import NN

/// Runs `body` once per rank of an in-process group, each on its own thread, and returns the
/// results in rank order. A rank that throws fails its result; the others time out instead of
/// hanging (the group's timeout). `seed` orders the completion of non-blocking reductions.
func runRanks<T>(
    _ size: Int, timeout: Double = 30, seed: UInt64 = 1,
    _ body: @escaping (InProcessCommunicator) throws -> T
) -> [Result<T, Error>] {
    let communicators = InProcessCommunicator.group(size: size, timeout: timeout, seed: seed)
    let box = ResultBox<T>(size)
    let done = DispatchGroup()
    for c in communicators {
        done.enter()
        let thread = Thread {
            let r = Result { try body(c) }
            box.lock.lock()
            box.results[c.rank] = r
            box.lock.unlock()
            done.leave()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    done.wait()
    return box.results.map { $0! }
}

/// The values of every rank, failing the test on the first rank that threw.
func values<T>(_ results: [Result<T, Error>], file: StaticString = #filePath, line: UInt = #line) -> [T]? {
    var out: [T] = []
    for (rank, r) in results.enumerated() {
        switch r {
        case let .success(v): out.append(v)
        case let .failure(e):
            XCTFail("rank \(rank) threw \(e)", file: file, line: line)
            return nil
        }
    }
    return out
}

/// Largest |a − b| / max(1, |b|) over two arrays of the same count.
func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for i in a.indices { worst = max(worst, abs(a[i] - b[i]) / max(1, abs(b[i]))) }
    return worst
}

/// The ranks' results, written by their threads under a lock.
final class ResultBox<T>: @unchecked Sendable {
    let lock = NSLock()
    var results: [Result<T, Error>?]
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
}

/// Training events and callback hooks in the order they happened, as short lines.
final class RunLog {
    var lines: [String] = []
    /// The events themselves.
    var events: [TrainingEvent] = []

    func record(_ event: TrainingEvent) {
        events.append(event)
        switch event {
        case .ready: lines.append("ready")
        case let .resumed(p): lines.append("resumed \(p.step)")
        case let .progress(p): lines.append("progress \(p.epoch):\(p.step)")
        case let .epoch(m): lines.append("epoch \(m.epoch)")
        case let .checkpoint(path): lines.append("checkpoint \((path as NSString).lastPathComponent)")
        case let .stoppedEarly(epoch, best): lines.append("stoppedEarly \(epoch) \(best)")
        case let .finished(m): lines.append("finished \(m.step)")
        }
    }
}

/// A callback that writes each hook it sees, with the loop's global step, into a `RunLog`.
final class HookRecorder: TrainingCallback {
    let log: RunLog
    init(_ log: RunLog) { self.log = log }
    func trainBegin(_ loop: TrainingLoop) throws { log.lines.append("trainBegin \(loop.position.step)") }
    func epochBegin(_ loop: TrainingLoop) throws { log.lines.append("epochBegin \(loop.position.step)") }
    func stepEnd(_ loop: TrainingLoop) throws { log.lines.append("stepEnd \(loop.position.step)") }
    func modelWillBeRead(_ loop: TrainingLoop) throws { log.lines.append("modelWillBeRead \(loop.position.step)") }
    func epochEnd(_ loop: TrainingLoop, metrics: EpochMetrics) throws { log.lines.append("epochEnd \(metrics.epoch)") }
    func trainEnd(_ loop: TrainingLoop) throws { log.lines.append("trainEnd \(loop.position.step)") }
}

/// A loop over a small MLP (3 classes of 1×8×8 samples) that a test drives hook by hook: nothing
/// runs until `run()`, so `callbacks` are only the ones given, and the test sets the loop's state.
func makeLoop(
    spec: ModelSpec? = nil, communicator: Communicator = InProcessCommunicator(), callbacks: [TrainingCallback] = [],
    log: RunLog = RunLog(), configure: (inout TrainingConfiguration) -> Void = { _ in }
) throws -> TrainingLoop {
    let data = SyntheticPatterns.make(count: 24, shape: [1, 8, 8], classes: 3, seed: 5)
    var config = TrainingConfiguration()
    config.globalBatchSize = 8
    configure(&config)
    let trainer = try DataParallelTrainer(
        spec: spec ?? ModelSpec.builtin("mlp", inputShape: data.sampleShape, classes: data.classCount),
        optimizer: SGD(learningRate: 0.1), loss: SoftmaxCrossEntropy(), communicator: communicator,
        configuration: config)
    return TrainingLoop(
        trainer: trainer, training: data, validation: nil, test: nil, from: TrainingPosition(), callbacks: callbacks,
        onEvent: log.record)
}
