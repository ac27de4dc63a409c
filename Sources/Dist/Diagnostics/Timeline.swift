import Foundation

/// A per-rank record of what each step spent its time on, written as a Chrome trace.
///
/// Events are complete spans (`"ph":"X"`, `ts` and `dur` in microseconds) in the `traceEvents`
/// format that chrome://tracing and Perfetto open: `pid` is the rank, `tid` the lane (0 compute:
/// forward, backward per layer, waiting for reductions, optimizer step; 1 comm: each bucket's
/// reduction from its start to the moment a poll or wait saw it complete). Each rank writes its
/// own file (`Timeline.path(for:rank:)`: `trace.json` → `trace.rank0.json`), so no rank waits on
/// another to save; load several files together to see the ranks side by side. Times count from an
/// origin taken right after a barrier (`synchronizeOrigin(_:)`), so ranks line up to within the
/// barrier's exit skew.
///
/// Recording appends to an array and never allocates per event beyond it; a step of a dozen layers
/// adds a few dozen events.
public final class Timeline {
    /// Where a span is drawn.
    public enum Lane: Int {
        case compute = 0
        case comm = 1

        var name: String { self == .compute ? "compute" : "comm" }
    }

    struct Event {
        var name: String
        var lane: Lane
        var start: UInt64
        var end: UInt64
        var detail: String?
    }

    /// The rank, drawn as the trace's process.
    public let rank: Int
    private var origin: UInt64
    private var events: [Event] = []

    /// - Parameter rank: this process's rank.
    public init(rank: Int) {
        self.rank = rank
        origin = Timeline.now()
        events.reserveCapacity(4096)
    }

    /// Monotonic nanoseconds.
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Seconds from `start` (a `now()` reading) to `end` (now, unless given).
    public static func seconds(since start: UInt64, until end: UInt64 = now()) -> Double {
        Double(end - start) / 1e9
    }

    /// A timeline of `communicator`'s rank whose clock starts right after a barrier (a collective),
    /// so every rank's zero is the same moment.
    ///
    /// - Throws: `DistError.mpi` when the barrier fails.
    public static func synchronized(across communicator: Communicator) throws -> Timeline {
        let timeline = Timeline(rank: communicator.rank)
        try timeline.synchronizeOrigin(communicator)
        return timeline
    }

    /// Restarts the clock right after a barrier, so every rank's zero is the same moment.
    ///
    /// - Throws: `DistError.mpi` when the barrier fails.
    public func synchronizeOrigin(_ communicator: Communicator) throws {
        try communicator.barrier()
        origin = Timeline.now()
    }

    /// Records a span that ran from `start` to `end` (`Timeline.now()` values).
    ///
    /// - Parameters:
    ///   - name: the event name, e.g. `backward 3.conv2d`.
    ///   - lane: compute or comm.
    ///   - start: when it began.
    ///   - end: when it ended (≥ start).
    ///   - detail: an optional note shown in the event's args.
    public func record(_ name: String, lane: Lane, from start: UInt64, to end: UInt64, detail: String? = nil) {
        events.append(Event(name: name, lane: lane, start: start, end: max(start, end), detail: detail))
    }

    /// Runs `body` and records it as a span.
    @discardableResult
    public func measure<T>(_ name: String, lane: Lane = .compute, _ body: () throws -> T) rethrows -> T {
        let start = Timeline.now()
        defer { record(name, lane: lane, from: start, to: Timeline.now()) }
        return try body()
    }

    /// The number of recorded spans.
    public var count: Int { events.count }

    /// The trace as JSON text: lane names as metadata events, then every span.
    public func json() -> String {
        func micro(_ t: UInt64) -> String {
            let d = t >= origin ? Double(t - origin) / 1000 : -Double(origin - t) / 1000
            return String(format: "%.3f", d)
        }
        var lines: [String] = []
        lines.append(#"{"name":"process_name","ph":"M","pid":\#(rank),"tid":0,"args":{"name":"rank \#(rank)"}}"#)
        for lane in [Lane.compute, .comm] {
            lines.append(#"{"name":"thread_name","ph":"M","pid":\#(rank),"tid":\#(lane.rawValue),"args":{"name":"\#(lane.name)"}}"#)
        }
        for e in events {
            var line =
                #"{"name":"\#(Timeline.escape(e.name))","cat":"\#(e.lane.name)","ph":"X","pid":\#(rank),"tid":\#(e.lane.rawValue),"ts":\#(micro(e.start)),"dur":\#(String(format: "%.3f", Double(e.end - e.start) / 1000))"#
            if let d = e.detail { line += #","args":{"detail":"\#(Timeline.escape(d))"}"# }
            lines.append(line + "}")
        }
        return "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" + lines.joined(separator: ",\n") + "\n]}\n"
    }

    /// Writes the trace to `path` (replacing it).
    ///
    /// - Throws: `DistError.invalidConfiguration` naming the path when it cannot be written.
    public func write(to path: String) throws {
        do {
            try json().write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw DistError.invalidConfiguration(option: "timeline", reason: "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// Writes the trace to this rank's file for `template` (`path(for:rank:)`).
    ///
    /// - Returns: the path written.
    /// - Throws: `DistError.invalidConfiguration` naming the path when it cannot be written.
    @discardableResult
    public func write(rankFileFor template: String) throws -> String {
        let path = Timeline.path(for: template, rank: rank)
        try write(to: path)
        return path
    }

    /// `FILE` with `.rank<r>` inserted before its extension: `trace.json` → `trace.rank0.json`,
    /// `out/trace` → `out/trace.rank0`.
    public static func path(for template: String, rank: Int) -> String {
        let url = URL(fileURLWithPath: template)
        let ext = url.pathExtension
        let slash = template.lastIndex(of: "/").map { template.index(after: $0) } ?? template.startIndex
        let fileName = template[slash...]
        guard !ext.isEmpty, fileName.count > ext.count + 1 else { return template + ".rank\(rank)" }
        return String(template.dropLast(ext.count + 1)) + ".rank\(rank)." + ext
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}
