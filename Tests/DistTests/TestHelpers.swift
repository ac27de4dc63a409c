import Foundation
import XCTest
@testable import Dist
@testable import NN

/// Runs `body` once per rank of an in-process group, each on its own thread, and returns the
/// results in rank order. A rank that throws fails its result; the others time out instead of
/// hanging (the group's timeout). `seed` orders the completion of non-blocking reductions.
func runRanks<T>(_ size: Int, timeout: Double = 30, seed: UInt64 = 1,
                 _ body: @escaping (InProcessCommunicator) throws -> T) -> [Result<T, Error>] {
    let communicators = InProcessCommunicator.group(size: size, timeout: timeout, seed: seed)
    let box = ResultBox<T>(size)
    let done = DispatchGroup()
    for c in communicators {
        done.enter()
        let thread = Thread {
            let r = Result { try body(c) }
            box.lock.lock(); box.results[c.rank] = r; box.lock.unlock()
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
