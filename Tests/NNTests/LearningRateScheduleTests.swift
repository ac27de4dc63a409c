import XCTest

@testable import NN

/// Schedules at their key steps; expected values from a direct Python transcription of the
/// documented formulas (math.cos in float64), printed with %.9g. Tolerance 1e-6: one float32 rounding.
final class LearningRateScheduleTests: XCTestCase {
    func testConstantWithWarmup() throws {
        let s = try LearningRateSchedule(base: 0.1, warmupSteps: 4)
        assertClose([0, 1, 2, 3, 4, 1000].map { s.learningRate(at: $0) }, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1], tolerance: 1e-6)
        XCTAssertEqual(try LearningRateSchedule(base: 0.3).learningRate(at: 0), 0.3)
    }

    func testStepDecayAfterWarmup() throws {
        // base 0.1, W=5, every 10, gamma 0.5: steps 0,4,5,14,15,16,40
        let s = try LearningRateSchedule(base: 0.1, decay: .step(every: 10, gamma: 0.5), warmupSteps: 5)
        assertClose(
            [0, 4, 5, 14, 15, 16, 40].map { s.learningRate(at: $0) },
            [0.02, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0125], tolerance: 1e-6)
    }

    func testCosineToFloor() throws {
        // base 0.1, W=10, T=110, floor 0.001: steps 0,1,9,10,35,60,100,110 (and past the end)
        let s = try LearningRateSchedule(base: 0.1, decay: .cosine(totalSteps: 110, floor: 0.001), warmupSteps: 10)
        assertClose(
            [0, 1, 9, 10, 35, 60, 100, 110, 500].map { s.learningRate(at: $0) },
            [0.01, 0.02, 0.1, 0.1, 0.0855017857, 0.0505, 0.00342270244, 0.001, 0.001], tolerance: 1e-6)
    }

    func testInvalidSchedulesThrow() {
        func reason(_ make: @autoclosure () throws -> LearningRateSchedule) -> String {
            do {
                _ = try make()
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(
            reason(try LearningRateSchedule(base: -1)),
            "invalid learning rate -1.0: The learning rate must be a finite number greater than or equal to 0.")
        XCTAssertTrue(reason(try LearningRateSchedule(base: 0.1, warmupSteps: -2)).contains("-2"))
        XCTAssertTrue(reason(try LearningRateSchedule(base: 0.1, decay: .step(every: 0, gamma: 0.5))).contains("decay interval 0"))
        XCTAssertTrue(reason(try LearningRateSchedule(base: 0.1, decay: .step(every: 5, gamma: 1.5))).contains("gamma 1.5"))
        XCTAssertTrue(
            reason(try LearningRateSchedule(base: 0.1, decay: .cosine(totalSteps: 10, floor: 0), warmupSteps: 10))
                .contains("cosine total steps 10"))
        XCTAssertTrue(reason(try LearningRateSchedule(base: 0.1, decay: .cosine(totalSteps: 100, floor: 0.2))).contains("floor 0.2"))
    }
}
