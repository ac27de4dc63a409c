import Foundation
import XCTest

@testable import Dist
@testable import NN

/// A checkpoint's training record (`options` metadata) comes from a file: counts that would trap
/// later (a negative step, a batch whose product overflows) are refused when it is read.
final class CheckpointRecordTests: XCTestCase {
    func record(_ json: String) throws -> CheckpointRecord {
        try JSONDecoder().decode(CheckpointRecord.self, from: Data(json.utf8))
    }

    let sound =
        #"{"globalBatch": 8, "accumulate": 2, "seed": "1", "trainingSamples": 64, "options": {}, "position": {"epoch": 1, "stepInEpoch": 2, "step": 6, "epochsWithoutImprovement": 0}}"#

    func testSoundRecordHasNoProblem() throws {
        XCTAssertNil(try record(sound).problem)
    }

    func testNegativeStepInEpochIsAProblem() throws {
        let bad = sound.replacingOccurrences(of: #""stepInEpoch": 2"#, with: #""stepInEpoch": -1"#)
        XCTAssertTrue(try record(bad).problem?.contains("stepInEpoch -1") == true)
    }

    func testBatchWhoseProductOverflowsIsAProblem() throws {
        // globalBatch × accumulate is computed for the mismatch message; it must not overflow.
        let bad = sound.replacingOccurrences(
            of: #""globalBatch": 8, "accumulate": 2"#,
            with: #""globalBatch": 9223372036854775807, "accumulate": 9223372036854775807"#)
        XCTAssertTrue(try record(bad).problem?.contains("globalBatch") == true)
    }

    func testStepNearIntMaxIsAProblem() throws {
        let bad = sound.replacingOccurrences(of: #""step": 6"#, with: #""step": 9223372036854775807"#)
        XCTAssertNotNil(try record(bad).problem)
    }
}
