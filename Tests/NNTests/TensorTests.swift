import XCTest

@testable import NN

final class TensorTests: XCTestCase {
    /// Joining samples and cutting them apart again gives back the parts, shapes included.
    func testJoiningAndSplittingRowsRoundTrip() {
        let a = Tensor(shape: [2, 1, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [1, 1, 3], values: [7, 8, 9])
        let joined = Tensor(joiningRows: [a, b])
        XCTAssertEqual(joined.shape, [3, 1, 3])
        XCTAssertEqual(joined.storage, [1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(Tensor.splittingRows(joined, counts: [2, 1]), [a, b])
        XCTAssertEqual(Tensor.splittingRows(joined, counts: [0, 3]).map(\.shape), [[0, 1, 3], [3, 1, 3]])
    }
}
