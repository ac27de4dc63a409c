import Foundation

/// A non-blocking reduction of an in-process group: in flight until a `test()` or `wait()` on
/// this rank completes it, as an MPI request is.
///
/// `start` copies this rank's contribution (the send side of an in-place `MPI_Iallreduce`); the
/// caller's buffer keeps its own values until completion, then holds the result, combined in
/// rank order, so the result does not depend on when or in which order reductions complete.
/// `test()` completes it only once every rank has started it, and then only on the 2nd to 4th
/// such call (drawn at start from the rank's seeded stream), so a reduction is always seen in
/// flight by the first poll, and reductions started together complete in an order that varies
/// between ranks and seeds, as MPI's progress does.
final class InProcessReduction: PendingReduction {
    private let table: PendingTable
    private let sequence: Int
    private let rank: Int
    private let operation: String
    private let finish: ([Any]) -> Void
    /// `test()` calls, made after every rank started it, that it takes to complete.
    private var testsLeft: Int
    private var done = false

    /// Starts a reduction: deposits `contribution` as this rank's part of the `sequence`-th
    /// non-blocking collective of the group.
    ///
    /// - Parameters:
    ///   - finish: writes the result into the caller's buffer from every rank's contribution
    ///     (in rank order); called once, on completion.
    ///   - random: this rank's stream, which draws how many tests completion takes.
    init(
        table: PendingTable, sequence: Int, rank: Int, contribution: Any, operation: String,
        random: SeededStream, finish: @escaping ([Any]) -> Void
    ) {
        self.table = table
        self.sequence = sequence
        self.rank = rank
        self.operation = operation
        testsLeft = 2 + random.next(below: 3)
        self.finish = finish
        table.deposit(sequence: sequence, rank: rank, contribution)
    }

    func test() throws -> Bool {
        if done { return true }
        // Only calls made once every rank has started it count towards completion.
        guard let all = table.contributions(sequence: sequence, rank: rank, waitingUpTo: nil) else { return false }
        testsLeft -= 1
        guard testsLeft == 0 else { return false }
        complete(all)
        return true
    }

    func wait() throws {
        if done { return }
        guard let all = table.contributions(sequence: sequence, rank: rank, waitingUpTo: table.timeout) else {
            throw DistError.timeout(operation: operation, seconds: table.timeout)
        }
        complete(all)
    }

    private func complete(_ all: [Any]) {
        finish(all)
        done = true
        table.release(sequence: sequence)
    }

    /// Whether the reduction has completed (a `test()` or `wait()` returned it).
    var isComplete: Bool { done }
}

/// The contributions of the group's non-blocking collectives, by sequence number: the n-th
/// non-blocking collective every rank starts is the same one, as in MPI.
final class PendingTable {
    let size: Int
    let timeout: Double
    private let condition = NSCondition()
    private var slots: [Int: Slot] = [:]

    private final class Slot {
        var contributions: [Any?]
        var arrived = 0
        var released = 0
        init(size: Int) { contributions = Array(repeating: nil, count: size) }
    }

    init(size: Int, timeout: Double) {
        self.size = size
        self.timeout = timeout
    }

    func deposit(sequence: Int, rank: Int, _ value: Any) {
        condition.lock()
        defer { condition.unlock() }
        let slot = slots[sequence] ?? Slot(size: size)
        slots[sequence] = slot
        precondition(slot.contributions[rank] == nil, "rank \(rank) started non-blocking collective \(sequence) twice.")
        slot.contributions[rank] = value
        slot.arrived += 1
        if slot.arrived == size { condition.broadcast() }
    }

    /// Every rank's contribution in rank order once all have arrived; nil when some rank has not
    /// started the collective yet (at once without `waitingUpTo`, else after that many seconds).
    func contributions(sequence: Int, rank: Int, waitingUpTo seconds: Double?) -> [Any]? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds ?? 0)
        while true {
            if let slot = slots[sequence], slot.arrived == size { return slot.contributions.map { $0! } }
            guard seconds != nil, condition.wait(until: deadline) else {
                if let slot = slots[sequence], slot.arrived == size { return slot.contributions.map { $0! } }
                return nil
            }
        }
    }

    /// One rank is done with the collective; the last one frees it.
    func release(sequence: Int) {
        condition.lock()
        defer { condition.unlock() }
        guard let slot = slots[sequence] else { return }
        slot.released += 1
        if slot.released == size { slots[sequence] = nil }
    }
}

/// A seeded stream per rank (SplitMix64), for the order in which in-flight reductions complete.
final class SeededStream {
    private var state: UInt64

    init(seed: UInt64, rank: Int) {
        state = seed ^ (0x9E37_79B9_7F4A_7C15 &* UInt64(rank + 1))
    }

    /// The next draw in `0 ..< n`, in a sequence fixed by the seed and rank.
    func next(below n: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(n))
    }
}
