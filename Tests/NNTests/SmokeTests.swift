import XCTest
@testable import NN

final class SmokeTests: XCTestCase {
    func testDenseModelBuilds() throws {
        let model = try Sequential(inputShape: [4], layers: [Dense(units: 3), ReLU(), Dense(units: 2)])
        XCTAssertEqual(model.outputShape, [2])
    }
}
