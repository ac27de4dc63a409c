import Foundation
import XCTest

/// One end-to-end run of every `ddp bench` subcommand on its smallest setting, so a broken
/// benchmark cannot land. They check the exit status and the shape of the output (its header and
/// table lines), never a figure: benchmarks report figures, tests do not judge them.
final class BenchSmokeTests: XCTestCase {
    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        try ProcessTestLock.hold(for: self)
    }

    /// The subcommands with a smoke test (allreduce's is `CommunicationEndToEndTests
    /// .testBenchAllreducePrintsATableAndWritesCSV`); a benchmark added to `ddp bench` without one
    /// fails `testEveryBenchSubcommandHasASmokeTest`.
    static let covered: Set<String> = ["kernels", "allreduce", "steps", "throughput"]

    func testEveryBenchSubcommandHasASmokeTest() throws {
        let r = try DDPProcess.bare(["bench", "--help"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        // The SUBCOMMANDS section lists one subcommand per line, indented, before its abstract.
        let section = r.stdout.components(separatedBy: "SUBCOMMANDS:").last ?? ""
        let listed = section.split(separator: "\n").compactMap { line -> String? in
            // A name starts in the third column; its abstract's continuation lines are indented further.
            guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first else { return nil }
            return String(name)
        }.filter { $0 != "See" }
        XCTAssertEqual(Set(listed), BenchSmokeTests.covered, r.stdout)
    }

    func testBenchKernelsPrintsItsGEMMAndConvolutionTables() throws {
        let r = try DDPProcess.bare(["bench", "kernels", "--batch", "2", "--repeats", "1", "--no-openblas"], timeout: 180)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("kernels: ") }, r.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("GEMM") && $0.contains("GFLOP/s") && $0.contains("%peak") }, r.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("Conv2D layer") && $0.contains("forward") && $0.contains("backward") }, r.stdout)
        // Rows after each header: at least one GEMM row ending in a percentage, one row per convolution.
        XCTAssertTrue(lines.contains { $0.hasSuffix("%") && !$0.hasPrefix("GEMM") }, r.stdout)
        XCTAssertGreaterThanOrEqual(lines.filter { $0.contains("batch 2") }.count, 2, "one row per Conv2D layer: \(r.stdout)")
    }

    func testBenchThroughputPrintsOneRowPerBatchSize() throws {
        let r = try DDPProcess.bare(
            ["bench", "throughput", "--model", "tiny", "--batches", "2,4", "--warmup", "2", "--steps", "1"],
            timeout: 120)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("model tiny (") }, r.stdout)
        XCTAssertTrue(lines.contains { $0.contains("batch") && $0.contains("samples/s") && $0.contains("peak RSS") }, r.stdout)
        let rows = lines.map { $0.split(separator: " ") }.filter { ["2", "4"].contains($0.first ?? "") && $0.count >= 6 }
        XCTAssertEqual(rows.map { String($0[0]) }, ["2", "4"], "one row per batch size, ascending: \(r.stdout)")
        XCTAssertTrue(rows.allSatisfy { Double($0[1]) != nil }, "samples/s is a number: \(r.stdout)")
    }

    func testBenchStepsOnTwoRanksPrintsItsSummaryAndCSV() throws {
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-steps-\(UUID().uuidString).csv").path
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let r = try DDPProcess.mpirun(
            2,
            [
                "bench", "steps", "--model", "tiny", "--per-rank-batch", "4", "--steps", "2", "--warmup", "1",
                "--sample-shape", "1,12,12", "--bucket-floats", "64", "--csv", csv
            ], timeout: 120)
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let summaries = r.stdout.split(separator: "\n").filter { $0.hasPrefix("bench steps: run tiny, 2 ranks") }
        XCTAssertEqual(summaries.count, 1, "rank 0 alone prints one summary: \(r.stdout)")
        for part in ["global batch 8", "reduction fast", "2 steps:", "samples/s", "compute", "blocked", "hidden", "gradient floats in"] {
            XCTAssertTrue(summaries.first?.contains(part) ?? false, "\(part) missing: \(r.stdout)")
        }
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2, "a header and one row: \(lines)")
        XCTAssertTrue(lines.first?.hasPrefix("label,model,ranks,cores") ?? false, "\(lines)")
        XCTAssertTrue(lines.last?.hasPrefix("run,tiny,2,") ?? false, "\(lines)")
    }
}
