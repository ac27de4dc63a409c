import XCTest

@testable import NN

final class KernelPathTests: XCTestCase {
    func testUnsetOrEmptyVariablePicksTheWidestRunnablePath() throws {
        XCTAssertEqual(try KernelPath.select(environment: [:]), KernelPath.runnable.first)
        XCTAssertEqual(try KernelPath.select(environment: [KernelPath.environmentVariable: ""]), KernelPath.runnable.first)
    }

    func testVariableForcesEachRunnablePathInAnyCase() throws {
        for path in KernelPath.runnable {
            XCTAssertEqual(try KernelPath.select(environment: [KernelPath.environmentVariable: path.rawValue]), path)
            XCTAssertEqual(try KernelPath.select(environment: [KernelPath.environmentVariable: path.rawValue.uppercased()]), path)
        }
    }

    func testUnknownNameThrowsWithHint() {
        XCTAssertThrowsError(try KernelPath.select(environment: [KernelPath.environmentVariable: "sse2"])) { error in
            XCTAssertEqual(error as? KernelPathError, .unknownPath("sse2"))
            let message = "\(error)"
            XCTAssertTrue(message.contains("DDP_KERNELS=sse2") && message.contains("hint:"), message)
        }
    }

    func testPathThatCannotRunHereThrowsWithHint() throws {
        // On x86-64 the portable path is not compiled in; elsewhere neither x86 path is.
        guard let missing = KernelPath.allCases.first(where: { !$0.isCompiled || !$0.isSupportedByCPU }) else {
            throw XCTSkip("every path is compiled and runnable here")
        }
        XCTAssertThrowsError(try KernelPath.select(environment: [KernelPath.environmentVariable: missing.rawValue])) { error in
            guard case .notRunnable(let path, _)? = error as? KernelPathError else {
                return XCTFail("expected notRunnable, got \(error)")
            }
            XCTAssertEqual(path, missing)
            XCTAssertTrue("\(error)".contains("hint:"), "\(error)")
        }
    }

    func testWithRestoresThePreviousPath() {
        let before = KernelPath.current
        for path in KernelPath.runnable {
            KernelPath.with(path) { XCTAssertEqual(KernelPath.current, path) }
            XCTAssertEqual(KernelPath.current, before)
        }
    }

    func testFMALoopOfEachPathComputesTheChains() {
        // acc = acc·1 + 0.5 twice from the starting values 0.1 … 1.2: every lane of chain i ends at
        // start_i + 1, so the sum is lanes · (7.8 + 12).
        for path in KernelPath.runnable {
            let sum = path.fmaLoop(iterations: 2, x: 1, y: 0.5)
            XCTAssertEqual(sum, Float(path.lanes) * 19.8, accuracy: 1e-3, path.rawValue)
            XCTAssertEqual(path.flopsPerFMALoopIteration, 24 * path.lanes, path.rawValue)
        }
    }
}
