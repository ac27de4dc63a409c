import XCTest

@testable import Dist

final class CommunicatorTests: XCTestCase {
    func testSingleRankCollectivesLeaveValuesAlone() throws {
        let c = InProcessCommunicator()
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.size, 1)
        var x: [Float] = [1, 2, 3]
        try c.allreduce(&x, op: .sum)
        try c.broadcast(&x, from: 0)
        XCTAssertEqual(x, [1, 2, 3])
        XCTAssertEqual(try c.broadcast("hello", from: 0), "hello")
        XCTAssertEqual(try c.gather(4), [4])
    }

    func testGroupAllreduceSumAndMax() throws {
        let results = runRanks(4) { c -> ([Float], [Double]) in
            var x = [Float](repeating: Float(c.rank + 1), count: 5)
            try c.allreduce(&x, op: .sum)
            var m = [Double(c.rank), -Double(c.rank)]
            try c.allreduce(&m, op: .max)
            return (x, m)
        }
        for (x, m) in values(results) ?? [] {
            XCTAssertEqual(x, [Float](repeating: 10, count: 5))
            XCTAssertEqual(m, [3, 0])
        }
    }

    func testGroupBroadcastAndGather() throws {
        let results = runRanks(3) { c -> (String, [UInt8], [Double]) in
            let text = try c.broadcast("from \(c.rank)", from: 2)
            var bytes = c.rank == 1 ? [UInt8](repeating: 7, count: 300) : []
            try c.broadcast(bytes: &bytes, from: 1)
            return (text, bytes, try c.gather(Double(c.rank * 10)))
        }
        for (text, bytes, gathered) in values(results) ?? [] {
            XCTAssertEqual(text, "from 2")
            XCTAssertEqual(bytes, [UInt8](repeating: 7, count: 300))
            XCTAssertEqual(gathered, [0, 10, 20])
        }
    }

    func testGroupRankWaitingForAMissingRankTimesOut() {
        let results = runRanks(2, timeout: 0.5) { c -> Void in
            if c.rank == 0 { try c.barrier() }
        }
        guard case let .failure(error) = results[0] else { return XCTFail("rank 0 should time out") }
        XCTAssertEqual(error as? DistError, .timeout(operation: "barrier", seconds: 0.5))
    }

    func testMPIErrorNamesTheFunctionAndMessage() {
        let e = DistError.mpi(function: "MPI_Allreduce", code: 5, message: "MPI_ERR_COUNT: invalid count argument")
        XCTAssertEqual(e.description, "MPI_Allreduce failed with MPI error 5: MPI_ERR_COUNT: invalid count argument")
    }
}
