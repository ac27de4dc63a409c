import Foundation

/// A communicator without MPI: one rank on its own, or a group of ranks that are threads of one
/// process (for tests of multi-rank logic).
///
/// Reductions combine contributions in rank order, so results are deterministic. A group rank
/// that waits longer than `timeout` for the others throws `DistError.timeout` instead of hanging,
/// so a failing test rank cannot block the rest forever.
///
/// In a group, the non-blocking reductions (`startAllreduce`, `startHalfSum`) stay in flight
/// until this rank's `test()` or `wait()` completes them (see `InProcessReduction`): a `test()`
/// completes one only after every rank has started it, and then on the 2nd to 4th such call (seeded), so tests
/// see buckets in flight and completing in varying orders, with results that do not depend on it.
public final class InProcessCommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let rendezvous: Rendezvous
    private let pendingTable: PendingTable
    private let stream: SeededStream
    /// Non-blocking collectives this rank has started (their sequence numbers match across ranks).
    private var started = 0
    private var inFlight: [InProcessReduction] = []

    /// A single rank (rank 0 of 1).
    public convenience init() {
        self.init(rank: 0, rendezvous: Rendezvous(size: 1, timeout: 60), pendingTable: PendingTable(size: 1, timeout: 60), seed: 0)
    }

    private init(rank: Int, rendezvous: Rendezvous, pendingTable: PendingTable, seed: UInt64) {
        self.rank = rank
        self.size = rendezvous.size
        self.rendezvous = rendezvous
        self.pendingTable = pendingTable
        stream = SeededStream(seed: seed, rank: rank)
    }

    /// Creates `size` communicators that talk to each other; run each on its own thread.
    ///
    /// - Parameters:
    ///   - size: the number of ranks (> 0).
    ///   - timeout: seconds a rank waits in a collective before throwing.
    ///   - seed: seeds the order in which each rank's `test()` calls complete its non-blocking
    ///     reductions (results do not depend on it).
    /// - Returns: the communicators of ranks `0 ..< size`.
    public static func group(size: Int, timeout: Double = 60, seed: UInt64 = 1) -> [InProcessCommunicator] {
        precondition(size > 0, "An in-process group needs at least one rank, got \(size).")
        let r = Rendezvous(size: size, timeout: timeout)
        let table = PendingTable(size: size, timeout: timeout)
        return (0 ..< size).map { InProcessCommunicator(rank: $0, rendezvous: r, pendingTable: table, seed: seed) }
    }

    /// Non-blocking reductions this rank has started and not yet completed by `test()` or `wait()`.
    public var reductionsInFlight: Int { inFlight.filter { !$0.isComplete }.count }

    /// Every rank's values combined element by element in rank order into `buffer`.
    private static func combine<T: FloatingPoint>(_ all: [[T]], into buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp, rank: Int) {
        precondition(all.allSatisfy { $0.count == buffer.count }, "allreduce of \(buffer.count) elements on rank \(rank), \(all.map(\.count)) across ranks.")
        for i in buffer.indices {
            // Rank order: the same result on every rank and in every run.
            var acc = all[0][i]
            for r in 1 ..< all.count {
                switch op {
                case .sum: acc += all[r][i]
                case .max: acc = Swift.max(acc, all[r][i])
                }
            }
            buffer[i] = acc
        }
    }

    /// Starts the next non-blocking collective of this rank with `contribution`; `finish` writes
    /// the result from every rank's contribution when this rank completes it.
    private func startPending(_ contribution: Any, finish: @escaping ([Any]) -> Void) -> PendingReduction {
        inFlight.removeAll { $0.isComplete }
        let reduction = InProcessReduction(
            table: pendingTable, sequence: started, rank: rank, contribution: contribution,
            operation: "non-blocking allreduce", random: stream, finish: finish)
        started += 1
        inFlight.append(reduction)
        return reduction
    }

    private func startReduce<T: FloatingPoint>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) -> PendingReduction {
        guard size > 1 else { return CompletedReduction() }
        let rank = self.rank
        return startPending(Array(buffer)) { all in
            InProcessCommunicator.combine(all.map { $0 as! [T] }, into: buffer, op: op, rank: rank)
        }
    }

    private func reduce<T: FloatingPoint>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReductionOp) throws {
        guard size > 1 else { return }
        let all = try rendezvous.exchange(rank: rank, Array(buffer), operation: "allreduce").map { $0 as! [T] }
        InProcessCommunicator.combine(all, into: buffer, op: op, rank: rank)
    }

    private func bcast<T>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        precondition(root >= 0 && root < size, "broadcast root \(root) is outside 0..<\(size).")
        guard size > 1 else { return }
        let all = try rendezvous.exchange(rank: rank, rank == root ? Array(buffer) : [T](), operation: "broadcast")
        let values = all[root] as! [T]
        precondition(values.count == buffer.count, "broadcast of \(buffer.count) elements on rank \(rank), \(values.count) on the root.")
        for i in buffer.indices { buffer[i] = values[i] }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws { try reduce(buffer, op: op) }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws { try reduce(buffer, op: op) }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws -> PendingReduction {
        startReduce(buffer, op: op)
    }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws -> PendingReduction {
        startReduce(buffer, op: op)
    }

    public func startHalfSum(_ buffer: UnsafeMutableBufferPointer<UInt16>) throws -> PendingReduction {
        guard size > 1 else { return CompletedReduction() }
        let rank = self.rank
        return startPending(Array(buffer)) { contributions in
            let all = contributions.map { $0 as! [UInt16] }
            precondition(all.allSatisfy { $0.count == buffer.count }, "allreduce of \(buffer.count) halves on rank \(rank), \(all.map(\.count)) across ranks.")
            // Rank order, like MPI's reduction tree for a commutative operator on few ranks.
            var acc = all[0]
            for r in 1 ..< all.count { HalfPrecision.add(&acc, all[r], acc.count) }
            for i in buffer.indices { buffer[i] = acc[i] }
        }
    }

    public func startExchange(
        sending send: UnsafeRawPointer, counts sendCounts: [Int], offsets sendOffsets: [Int],
        receiving receive: UnsafeMutableRawPointer, counts receiveCounts: [Int],
        offsets receiveOffsets: [Int]
    ) throws -> PendingReduction {
        precondition(
            [sendCounts.count, sendOffsets.count, receiveCounts.count, receiveOffsets.count].allSatisfy { $0 == size },
            "An exchange needs a count and an offset per rank (\(size)).")
        let parts = (0 ..< size).map { Array(UnsafeRawBufferPointer(start: send + sendOffsets[$0], count: sendCounts[$0])) }
        let rank = self.rank
        let deliver: ([Any]) -> Void = { all in
            for s in all.indices {
                let bytes = (all[s] as! [[UInt8]])[rank]
                precondition(bytes.count == receiveCounts[s], "Rank \(s) sends \(bytes.count) bytes to rank \(rank), which expects \(receiveCounts[s]).")
                bytes.withUnsafeBytes { (receive + receiveOffsets[s]).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            }
        }
        guard size > 1 else {
            deliver([parts])
            return CompletedReduction()
        }
        return startPending(parts, finish: deliver)
    }

    public func startAllgather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws -> PendingReduction {
        precondition(parts.count == size, "An allgather needs one part per rank (\(size)), got \(parts.count).")
        guard size > 1 else { return CompletedReduction() }
        let rank = self.rank
        return startPending(Array(buffer[parts[rank]])) { all in
            for (s, part) in parts.enumerated() {
                let values = all[s] as! [Float]
                precondition(values.count == part.count, "Rank \(s) gathers \(values.count) values into a part of \(part.count) on rank \(rank).")
                for (k, i) in part.enumerated() { buffer[i] = values[k] }
            }
        }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws { try bcast(buffer, root: root) }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) throws { try bcast(buffer, root: root) }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws {
        try bcast(buffer.bindMemory(to: UInt8.self), root: root)
    }

    public func barrier() throws {
        guard size > 1 else { return }
        _ = try rendezvous.exchange(rank: rank, [UInt8](), operation: "barrier")
    }

    public func abort(code: Int32) -> Never {
        fatalError("in-process rank \(rank) of \(size) aborted with code \(code)")
    }
}

/// Where the threads of an in-process group meet: each collective is an allgather of one value
/// per rank, completed when the last rank arrives.
final class Rendezvous {
    let size: Int
    let timeout: Double
    private let condition = NSCondition()
    private var contributions: [Any]
    private var arrived = 0
    private var generation = 0
    private var completed: [Any] = []

    init(size: Int, timeout: Double) {
        self.size = size
        self.timeout = timeout
        contributions = Array(repeating: (), count: size)
    }

    /// Deposits this rank's value and returns every rank's value, in rank order.
    func exchange(rank: Int, _ value: Any, operation: String) throws -> [Any] {
        condition.lock()
        defer { condition.unlock() }
        contributions[rank] = value
        arrived += 1
        if arrived == size {
            // Copy out before anyone can deposit for the next collective.
            completed = contributions
            arrived = 0
            generation += 1
            condition.broadcast()
            return completed
        }
        let mine = generation
        let deadline = Date(timeIntervalSinceNow: timeout)
        while generation == mine {
            if !condition.wait(until: deadline) && generation == mine {
                throw DistError.timeout(operation: operation, seconds: timeout)
            }
        }
        return completed
    }
}
