/// How an allreduce combines the ranks' values, element by element.
public enum ReductionOp: String, CustomStringConvertible {
    case sum
    case max

    public var description: String { rawValue }
}

/// A group of ranks that run the same program and exchange buffers with collectives.
///
/// Every collective must be called by every rank of the group, in the same order, with buffers of
/// the same length; a rank that skips one leaves the others blocked. Buffers are reached through
/// the caller's scoped pointers and are not retained past the call (except by a pending
/// non-blocking reduction, until it completes).
///
/// Two implementations: `MPICommunicator` (ranks are processes under a launcher) and
/// `InProcessCommunicator` (one rank, which is what a `ddp` no launcher started runs on, or a
/// group of threads for tests).
public protocol Communicator: AnyObject {
    /// This process's rank, `0 ..< size`.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }

    /// Combines `buffer` across all ranks in place; every rank ends with the same result.
    ///
    /// - Parameters:
    ///   - buffer: the values (read and written), same count on every rank.
    ///   - op: how elements combine.
    /// - Throws: `DistError.mpi` when the collective fails.
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws

    /// Combines a Double buffer across all ranks in place (metrics, exact integer sums).
    ///
    /// - Throws: `DistError.mpi` when the collective fails.
    func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws

    /// Starts combining `buffer` across ranks and returns at once (MPI_Iallreduce).
    ///
    /// The buffer must stay valid and untouched until the returned reduction completes.
    /// - Returns: the pending reduction; call `wait()` before reading the buffer.
    /// - Throws: `DistError.mpi` when the collective cannot start.
    func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws -> PendingReduction

    /// Starts combining a Double buffer across ranks and returns at once (the exact reduction's
    /// integer-valued sums). Same rules as the Float version.
    ///
    /// - Returns: the pending reduction; call `wait()` before reading the buffer.
    /// - Throws: `DistError.mpi` when the collective cannot start.
    func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws -> PendingReduction

    /// Starts summing IEEE binary16 values (as `UInt16` bit patterns) across ranks and returns at
    /// once; each pairwise sum is done in Float32 and rounded to half (`HalfPrecision.add`).
    ///
    /// The buffer must stay valid and untouched until the returned reduction completes.
    /// - Returns: the pending reduction; call `wait()` before reading the buffer.
    /// - Throws: `DistError.mpi` when the collective cannot start.
    func startHalfSum(_ buffer: UnsafeMutableBufferPointer<UInt16>) throws -> PendingReduction

    /// Starts a personalized exchange and returns at once (MPI_Ialltoallv on bytes): rank d
    /// receives `sendCounts[d]` bytes of `send` from `sendOffsets[d]`, and this rank receives
    /// `receiveCounts[s]` bytes from rank s at `receiveOffsets[s]` of `receive` (each count equal
    /// to what rank s sends here). The exact reduction's reduce-scatter: every rank sends each other
    /// rank the part of a bucket that rank owns.
    ///
    /// Both buffers must stay valid, the send side unchanged and the receive side unread, until
    /// the returned exchange completes.
    /// - Throws: `DistError.mpi` when the collective cannot start.
    func startExchange(
        sending send: UnsafeRawPointer, counts sendCounts: [Int], offsets sendOffsets: [Int],
        receiving receive: UnsafeMutableRawPointer, counts receiveCounts: [Int], offsets receiveOffsets: [Int]
    ) throws -> PendingReduction

    /// Starts gathering every rank's part of `buffer` into every rank's `buffer`, in place, and
    /// returns at once (MPI_Iallgatherv): rank r contributes `buffer[parts[r]]`, which must be
    /// ranges of the buffer in rank order, the same on every rank.
    ///
    /// - Throws: `DistError.mpi` when the collective cannot start.
    func startAllgather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws -> PendingReduction

    /// Copies `buffer` from rank `root` to every other rank.
    ///
    /// - Parameters:
    ///   - buffer: read on the root, written elsewhere; same count on every rank.
    ///   - root: the rank whose values win.
    /// - Throws: `DistError.mpi` when the collective fails.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws

    /// Copies a Double buffer from rank `root` to every other rank.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) throws

    /// Copies raw bytes from rank `root` to every other rank.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws

    /// Returns once every rank has called it.
    func barrier() throws

    /// Ends every rank of the group at once with `code` (MPI_Abort). Only the launcher calls this.
    func abort(code: Int32) -> Never
}

/// A non-blocking reduction in flight.
public protocol PendingReduction: AnyObject {
    /// Blocks until the reduction completes; the buffer then holds the result.
    ///
    /// - Throws: `DistError.mpi` when the reduction failed.
    func wait() throws
    /// Returns whether the reduction has completed, without blocking.
    func test() throws -> Bool
    /// When a progress thread saw the reduction complete (`Timeline.now()`), if one did.
    var completedAt: UInt64? { get }
}

extension PendingReduction {
    public var completedAt: UInt64? { nil }
}

/// A reduction that finished when it started (communicators without real asynchrony).
final class CompletedReduction: PendingReduction {
    func wait() throws {}
    func test() throws -> Bool { true }
}

extension Communicator {
    /// Whether this rank is rank 0, the one that prints and holds reference state.
    public var isRoot: Bool { rank == 0 }

    /// Combines an array across ranks in place.
    public func allreduce(_ values: inout [Float], op: ReductionOp) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, op: op) }
    }

    /// Combines a Double array across ranks in place.
    public func allreduce(_ values: inout [Double], op: ReductionOp) throws {
        try values.withUnsafeMutableBufferPointer { try allreduce($0, op: op) }
    }

    /// Copies a Float array from `root` (same count everywhere).
    public func broadcast(_ values: inout [Float], from root: Int) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, from: root) }
    }

    /// Copies a Double array from `root` (same count everywhere).
    public func broadcast(_ values: inout [Double], from root: Int) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, from: root) }
    }

    /// Copies a byte string of any length from `root`: the length goes first, so other ranks may
    /// pass anything.
    ///
    /// - Parameters:
    ///   - bytes: the root's bytes; replaced elsewhere.
    ///   - root: the sending rank.
    public func broadcast(bytes: inout [UInt8], from root: Int) throws {
        var length = [Double(bytes.count)]
        try broadcast(&length, from: root)
        let count = Int(length[0])
        if rank != root { bytes = [UInt8](repeating: 0, count: count) }
        guard count > 0 else { return }
        try bytes.withUnsafeMutableBytes { try broadcast($0, from: root) }
    }

    /// Copies a string from `root` to every rank and returns it.
    public func broadcast(_ text: String, from root: Int) throws -> String {
        var bytes = Array(text.utf8)
        try broadcast(bytes: &bytes, from: root)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Returns every rank's value of `value`, in rank order (an allgather of one Double).
    public func gather(_ value: Double) throws -> [Double] {
        // A max-allreduce over a vector that is -inf except at this rank's slot is an allgather.
        var slots = [Double](repeating: -.infinity, count: size)
        slots[rank] = value
        try allreduce(&slots, op: .max)
        return slots
    }
}
