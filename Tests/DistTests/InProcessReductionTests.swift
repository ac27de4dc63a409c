import XCTest

@testable import Dist

/// The in-process group's non-blocking reductions: in flight until tested or waited, completed
/// in a seeded order, with the blocking reduction's result.
final class InProcessReductionTests: XCTestCase {
    func testStartedAllreduceLeavesTheBufferAloneUntilWaited() throws {
        let results = runRanks(2) { c -> [Float] in
            var buffer: [Float] = [Float(c.rank) + 1, 10]
            try buffer.withUnsafeMutableBufferPointer { b in
                let request = try c.startAllreduce(b, op: .sum)
                XCTAssertEqual(Array(b), [Float(c.rank) + 1, 10], "no result before completion")
                XCTAssertEqual(c.reductionsInFlight, 1)
                try request.wait()
                XCTAssertEqual(c.reductionsInFlight, 0)
                XCTAssertTrue(try request.test(), "a completed request tests complete")
            }
            return buffer
        }
        guard let all = values(results) else { return }
        XCTAssertEqual(all, [[3, 20], [3, 20]])
    }

    func testTheFirstTestNeverCompletesAReduction() throws {
        let results = runRanks(3) { c -> [Bool] in
            var buffers = [[Float]](repeating: [1, 2, 3], count: 6)
            var requests: [PendingReduction] = []
            for k in buffers.indices {
                requests.append(try buffers[k].withUnsafeMutableBufferPointer { try c.startAllreduce($0, op: .sum) })
            }
            try c.barrier()  // every rank has started all six
            let first = try requests.map { try $0.test() }
            for r in requests { try r.wait() }
            return first
        }
        guard let all = values(results) else { return }
        XCTAssertEqual(all, [[Bool]](repeating: [Bool](repeating: false, count: 6), count: 3))
    }

    /// The order in which polling sees reductions complete: fixed by the seed, not the start order.
    func testPollingCompletesReductionsInASeededOrderWithTheBlockingResult() throws {
        func run(seed: UInt64) -> [(order: [Int], sums: [[Double]])]? {
            let results = runRanks(2, seed: seed) { c -> (order: [Int], sums: [[Double]]) in
                var buffers = (0 ..< 8).map { k in (0 ..< 5).map { i in Double(k * 10 + i) / 3 + Double(c.rank) / 7 } }
                var requests: [PendingReduction] = []
                for k in buffers.indices {
                    requests.append(try buffers[k].withUnsafeMutableBufferPointer { try c.startAllreduce($0, op: .sum) })
                }
                try c.barrier()
                var order: [Int] = []
                while order.count < requests.count {
                    for k in requests.indices where !order.contains(k) {
                        if try requests[k].test() { order.append(k) }
                    }
                }
                // The blocking allreduce of the same values.
                var expected = (0 ..< 8).map { k in (0 ..< 5).map { i in Double(k * 10 + i) / 3 + Double(c.rank) / 7 } }
                for k in expected.indices { try c.allreduce(&expected[k], op: .sum) }
                XCTAssertEqual(buffers, expected, "bit for bit the blocking result")
                return (order, buffers)
            }
            return values(results)
        }
        guard let a = run(seed: 1), let b = run(seed: 1), let c = run(seed: 2) else { return }
        XCTAssertEqual(a.map(\.order), b.map(\.order), "the same seed, the same order")
        let orders = (a + c).map(\.order)
        XCTAssertTrue(orders.contains { $0 != Array(0 ..< 8) }, "some rank completes out of start order: \(orders)")
        XCTAssertNotEqual(a.map(\.order), c.map(\.order), "another seed, another order")
        XCTAssertEqual(a[0].sums, c[1].sums)
    }
}
