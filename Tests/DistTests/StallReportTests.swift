import XCTest

@testable import Dist

/// The stall inspector's verdict from the other ranks' answers: who is missing, and the message.
final class StallReportTests: XCTestCase {
    typealias Position = StallReport.Position

    func report(_ answers: [Int: Position?]) -> StallReport {
        StallReport(rank: 0, size: 4, collective: 12, label: "allreduce of epoch 1 step 3", waited: 2.04, answers: answers)
    }

    func testRanksWaitingInTheSameCollectiveAreNotMissing() {
        let same: Position? = Position(started: 12, waiting: 12, label: "allreduce of epoch 1 step 3")
        XCTAssertEqual(report([1: same, 2: same, 3: same]).missing, [])
    }

    func testSilentRankIsMissing() {
        let same: Position? = Position(started: 12, waiting: 12, label: "allreduce of epoch 1 step 3")
        let r = report([1: Position?.none, 2: same, 3: same])
        XCTAssertEqual(r.missing, [1])
        XCTAssertTrue(
            r.description.hasPrefix(
                "stall: rank 0 waited 2.0 s in the allreduce of epoch 1 step 3 (collective #12); rank 1 of 4 missing: rank 1 did not answer"), r.description)
    }

    func testRankBehindIsMissingWithWhereItIs() {
        let same: Position? = Position(started: 12, waiting: 12, label: "allreduce of epoch 1 step 3")
        let behind: Position? = Position(started: 11, waiting: nil, label: "epoch 1 step 2")
        let r = report([1: same, 2: behind, 3: same])
        XCTAssertEqual(r.missing, [2])
        XCTAssertTrue(r.description.contains("rank 2 last started collective #11 (epoch 1 step 2) and is computing"), r.description)
    }

    func testRankInAnotherCollectiveOfTheSameNumberIsMissing() {
        // Ranks that took different paths: same count, different collective.
        let other: Position? = Position(started: 12, waiting: 12, label: "broadcast of epoch 1 step 3")
        let same: Position? = Position(started: 12, waiting: 12, label: "allreduce of epoch 1 step 3")
        let r = report([1: other, 2: same, 3: Position?.none])
        XCTAssertEqual(r.missing, [1, 3])
        XCTAssertTrue(r.description.contains("ranks 1, 3 of 4 missing"), r.description)
        XCTAssertTrue(r.description.contains("rank 1 waits in collective #12 as broadcast of epoch 1 step 3 instead"), r.description)
    }
}
