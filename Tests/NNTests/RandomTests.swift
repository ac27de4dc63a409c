import XCTest

@testable import NN

final class RandomTests: XCTestCase {
    /// `mixing` appends a key: the chain gives the stream of the key list, so code that builds no
    /// key array (dropout, augmentation, sample keys) draws what it always drew.
    func testMixingAKeyEqualsAppendingItToTheKeys() {
        for seed: UInt64 in [0, 7, 0xDEAD_BEEF_0123_4567] {
            XCTAssertEqual(SplitMix64(seed: seed).mixing(0xD50F_0000).state, SplitMix64(seed: seed, keys: [0xD50F_0000]).state)
            let chained = SplitMix64(seed: seed).mixing(0x5A3B_1E7E).mixing(3).mixing(41_999)
            XCTAssertEqual(chained.state, SplitMix64(seed: seed, keys: [0x5A3B_1E7E, 3, 41_999]).state)
            XCTAssertNotEqual(chained.state, SplitMix64(seed: seed, keys: [0x5A3B_1E7E, 41_999, 3]).state, "key order matters")
        }
    }
}
