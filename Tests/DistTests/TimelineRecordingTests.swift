import XCTest

@testable import Dist
@testable import NN

/// The timeline callback alone: it records the steps of a run and writes the rank's trace at its end.
final class TimelineRecordingTests: XCTestCase {
    func testRecordsEveryStepAndWritesTheRanksTraceAtTheEnd() throws {
        let folder = NSTemporaryDirectory() + "timeline-recording-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let recording = TimelineRecording(template: folder + "/trace.json")
        let loop = try makeLoop(callbacks: [recording]) { $0.epochs = 1 }
        XCTAssertNil(loop.trainer.timeline, "nothing is recorded before the run starts")
        _ = try loop.run()
        XCTAssertEqual(recording.writtenPath, folder + "/trace.rank0.json")
        let text = try String(contentsOfFile: folder + "/trace.rank0.json", encoding: .utf8)
        let trace = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let names = (trace["traceEvents"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        // 24 samples, global batch 8: three steps, each with its forward and its optimizer step.
        XCTAssertEqual(names.filter { $0 == "optimizer step" }.count, 3, "\(names)")
        XCTAssertEqual(names.filter { $0 == "forward" }.count, 3, "\(names)")
    }
}
