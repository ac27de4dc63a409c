import NN
import XCTest

/// `DDP_KERNELS` end to end: the launcher validates it before any command, and every path the
/// machine can run trains to the same printed losses (the paths give the same bits).
final class KernelPathLaunchTests: XCTestCase {
    private func environment(_ path: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env[KernelPath.environmentVariable] = path
        return env
    }

    func testUnknownKernelPathStopsWithHintBeforeAnyCommand() throws {
        let r = try DDPProcess.bare(["train", "--synthetic-samples", "64"], environment: environment("sse2"), timeout: 30)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("DDP_KERNELS=sse2 is not a kernel path") && r.stderr.contains("hint:"), r.stderr)
        XCTAssertFalse(r.stdout.contains("train:"), "no command may start: \(r.stdout)")
    }

    func testEveryRunnablePathTrainsToTheSameLosses() throws {
        let paths = KernelPath.runnable
        guard paths.count > 1 else { throw XCTSkip("one kernel path on this machine") }
        let arguments = [
            "train", "--model", "fmnist-cnn", "--synthetic-samples", "128", "--batch-size", "32",
            "--log-interval", "1"
        ]
        let outputs = try paths.map { path -> [String] in
            let r = try DDPProcess.bare(arguments, environment: environment(path.rawValue), timeout: 120)
            XCTAssertEqual(r.status, 0, "\(path.rawValue): \(r.stderr)")
            // "loss 1.3816 acc 0.406" of each step and epoch line (their speeds and times differ).
            return r.stdout.split(separator: "\n").compactMap { line -> String? in
                guard let loss = line.range(of: "loss ") else { return nil }
                return line[loss.lowerBound...].split(separator: " ").prefix(4).joined(separator: " ")
            }
        }
        XCTAssertFalse(outputs[0].isEmpty, "no loss lines printed")
        for i in 1 ..< paths.count {
            XCTAssertEqual(outputs[i], outputs[0], "\(paths[i].rawValue) vs \(paths[0].rawValue)")
        }
    }
}
