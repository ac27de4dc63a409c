import CMPI
import Foundation

/// The communicator over MPI's `COMM_WORLD`: the one file that calls MPI.
///
/// Works under `mpirun` (rank and size from the launcher) and as a bare process, where Open MPI
/// starts as a singleton of one rank. MPI is initialized only if nobody did it before, and
/// `finalize()` finalizes only what this object initialized. Errors return instead of aborting
/// (`MPI_ERRORS_RETURN`), and every failing call becomes a `DistError.mpi` with the function's
/// name and `MPI_Error_string`.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    private let comm: MPI_Comm
    private let initializedHere: Bool
    /// The user-defined sum of binary16 values (`HalfPrecision.add`), created at start-up.
    private var halfSumOp: MPI_Op?
    /// The thread support MPI provides (MPI_THREAD_FUNNELED, _SERIALIZED, ...).
    public let threadLevel: Int32
    /// Serializes every MPI call, so a progress thread may make some (MPI_THREAD_SERIALIZED).
    private let mpiLock = NSLock()
    /// Non-blocking reductions not yet seen complete by the progress thread (under `mpiLock`).
    private var inFlight: [MPIPendingReduction] = []
    /// Set under `mpiLock` to end the progress thread, which then signals `progressEnded`.
    private var progressStop = false
    private var progressEnded: DispatchSemaphore?

    /// MPI counts are 32-bit: larger buffers go in chunks of this many elements.
    static let maxChunk = 1 << 30

    /// Joins `COMM_WORLD`, initializing MPI (serialized threads) if needed.
    ///
    /// - Throws: `DistError.mpi` when MPI cannot start or report rank and size.
    public init() throws {
        var flag: Int32 = 0
        try MPICommunicator.check(MPI_Initialized(&flag), "MPI_Initialized")
        if flag == 0 {
            MPICommunicator.chooseNonBlockingAllreduce()
            var provided: Int32 = 0
            // Serialized, not funneled: an optional progress thread makes MPI calls too, one at a
            // time with the main thread's (every call holds `mpiLock`).
            try MPICommunicator.check(MPI_Init_thread(nil, nil, cmpi_thread_serialized(), &provided), "MPI_Init_thread")
        }
        var level: Int32 = 0
        try MPICommunicator.check(MPI_Query_thread(&level), "MPI_Query_thread")
        threadLevel = level
        initializedHere = flag == 0
        comm = cmpi_comm_world()
        try MPICommunicator.check(MPI_Comm_set_errhandler(comm, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try MPICommunicator.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try MPICommunicator.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        var op: MPI_Op? = nil
        // Commutative: a + b rounds like b + a, so MPI may combine ranks in any order.
        try MPICommunicator.check(MPI_Op_create(mpiHalfSum, 1, &op), "MPI_Op_create")
        halfSumOp = op
    }

    /// The environment variable through which Open MPI picks its non-blocking allreduce.
    public static let allreduceAlgorithmVariable = "OMPI_MCA_coll_libnbc_iallreduce_algorithm"

    /// Makes Open MPI's non-blocking allreduce a ring (reduce-scatter, then allgather) unless the
    /// user chose an algorithm (`--mca coll_libnbc_iallreduce_algorithm N` or the variable itself).
    ///
    /// Open MPI 4.1's libnbc picks, for an in-place `MPI_Iallreduce` (the gradient buckets), a
    /// binomial reduce to rank 0 followed by a broadcast: rank 0 receives and sums every rank's
    /// whole bucket while the others wait, then sends the whole result back. The ring splits the
    /// bucket into P pieces, so each rank sends and receives 2(P−1)/P of it and sums (P−1)/P, the
    /// same on every rank. On two ranks that halves the summing and balances it. Read at
    /// `MPI_Init`, so it is set just before; other MPI implementations ignore the variable.
    static func chooseNonBlockingAllreduce() {
        setenv(allreduceAlgorithmVariable, "1", 0)
    }

    /// Finalizes MPI if this object initialized it and nobody finalized it yet.
    ///
    /// - Throws: `DistError.mpi` when MPI_Finalize fails.
    public func finalize() throws {
        stopProgressThread()
        guard initializedHere else { return }
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0, halfSumOp != nil { MPI_Op_free(&halfSumOp) }
        if finalized == 0 { try MPICommunicator.check(MPI_Finalize(), "MPI_Finalize") }
    }

    /// The text MPI gives for an error code.
    static func errorString(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == cmpi_success() else { return "unknown MPI error" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func check(_ code: Int32, _ function: String) throws {
        guard code != cmpi_success() else { return }
        throw DistError.mpi(function: function, code: code, message: errorString(code))
    }

    private static func mpiOp(_ op: ReductionOp) -> MPI_Op {
        switch op {
        case .sum: return cmpi_op_sum()
        case .max: return cmpi_op_max()
        }
    }

    /// Runs `body` on consecutive chunks of at most `maxChunk` elements.
    private func chunked(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int,
                         _ body: (UnsafeMutableRawPointer, Int32) throws -> Void) rethrows {
        guard let base, count > 0 else { return }
        var start = 0
        while start < count {
            let n = min(MPICommunicator.maxChunk, count - start)
            try body(base + start * stride, Int32(n))
            start += n
        }
    }

    private func allreduce(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype, op: ReductionOp) throws {
        try chunked(base, count: count, stride: stride) { p, n in
            try locked { try MPICommunicator.check(MPI_Allreduce(cmpi_in_place(), p, n, type, MPICommunicator.mpiOp(op), comm), "MPI_Allreduce") }
        }
    }

    private func broadcast(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype, root: Int) throws {
        precondition(root >= 0 && root < size, "broadcast root \(root) is outside 0..<\(size).")
        try chunked(base, count: count, stride: stride) { p, n in
            try locked { try MPICommunicator.check(MPI_Bcast(p, n, type, Int32(root), comm), "MPI_Bcast") }
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: cmpi_float(), op: op)
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: cmpi_double(), op: op)
    }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws -> PendingReduction {
        let pending = MPIPendingReduction(lock: mpiLock)
        try chunked(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4) { p, n in
            var request: MPI_Request? = cmpi_request_null()
            try locked {
                try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), p, n, cmpi_float(), MPICommunicator.mpiOp(op), comm, &request),
                                          "MPI_Iallreduce")
            }
            pending.requests.append(request)
        }
        track(pending)
        return pending
    }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws -> PendingReduction {
        let pending = MPIPendingReduction(lock: mpiLock)
        try chunked(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8) { p, n in
            var request: MPI_Request? = cmpi_request_null()
            try locked {
                try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), p, n, cmpi_double(), MPICommunicator.mpiOp(op), comm, &request),
                                          "MPI_Iallreduce")
            }
            pending.requests.append(request)
        }
        track(pending)
        return pending
    }

    public func startHalfSum(_ buffer: UnsafeMutableBufferPointer<UInt16>) throws -> PendingReduction {
        let pending = MPIPendingReduction(lock: mpiLock)
        try chunked(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 2) { p, n in
            var request: MPI_Request? = cmpi_request_null()
            try locked {
                try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), p, n, cmpi_uint16(), halfSumOp, comm, &request),
                                          "MPI_Iallreduce")
            }
            pending.requests.append(request)
        }
        track(pending)
        return pending
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws {
        try broadcast(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: cmpi_float(), root: root)
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) throws {
        try broadcast(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: cmpi_double(), root: root)
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws {
        try broadcast(buffer.baseAddress, count: buffer.count, stride: 1, type: cmpi_byte(), root: root)
    }

    /// Makes a call MPI must refuse (a broadcast from a rank that does not exist) and returns the
    /// error it produced: proof that failures come back as `DistError.mpi` instead of aborting.
    ///
    /// - Returns: the error, or nil when MPI accepted the call (error checking disabled).
    public func provokeError() -> DistError? {
        var byte: UInt8 = 0
        do {
            try locked { try MPICommunicator.check(MPI_Bcast(&byte, 1, cmpi_byte(), Int32(size), comm), "MPI_Bcast") }
            return nil
        } catch {
            return error as? DistError
        }
    }

    public func barrier() throws {
        try locked { try MPICommunicator.check(MPI_Barrier(comm), "MPI_Barrier") }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        mpiLock.lock()
        defer { mpiLock.unlock() }
        return try body()
    }

    // MARK: Progress thread

    /// Whether a progress thread is running.
    public var hasProgressThread: Bool { progressEnded != nil }

    /// Starts a thread that polls the non-blocking reductions in flight (one `MPI_Test` per
    /// request) every `interval` seconds, so they advance while the main thread computes a long
    /// layer: Open MPI 4.1 has no asynchronous progress of its own. Between polls the thread
    /// sleeps, so it takes little CPU from the ranks' compute. Local; call at most once.
    ///
    /// - Parameter interval: seconds between polls (> 0).
    /// - Throws: `DistError.invalidConfiguration` when MPI was initialized (by someone else) with
    ///   less than MPI_THREAD_SERIALIZED.
    public func startProgressThread(interval: Double) throws {
        precondition(interval > 0, "A progress thread needs a positive polling interval, got \(interval).")
        guard progressEnded == nil else { return }
        guard threadLevel >= cmpi_thread_serialized() else {
            throw DistError.invalidConfiguration(option: "progress thread",
                                                 reason: "MPI provides thread level \(threadLevel), below MPI_THREAD_SERIALIZED; hint: poll between layers only")
        }
        let ended = DispatchSemaphore(value: 0)
        progressEnded = ended
        let micros = useconds_t(max(1, (interval * 1e6).rounded()))
        let thread = Thread { [unowned self] in
            while true {
                self.mpiLock.lock()
                if self.progressStop { self.mpiLock.unlock(); break }
                self.inFlight.removeAll { $0.pollHoldingLock() }
                self.mpiLock.unlock()
                usleep(micros)
            }
            ended.signal()
        }
        thread.name = "mpi-progress"
        thread.start()
    }

    /// Ends the progress thread, if one runs, and waits for it.
    public func stopProgressThread() {
        guard let ended = progressEnded else { return }
        locked { progressStop = true }
        ended.wait()
        progressEnded = nil
        locked { inFlight.removeAll() }
    }

    /// Hands a started reduction to the progress thread, when one runs.
    private func track(_ pending: MPIPendingReduction) {
        guard progressEnded != nil else { return }
        locked { inFlight.append(pending) }
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        // MPI_Abort should not return; if it does, end this rank anyway.
        exit(code)
    }
}

/// The requests of one `MPI_Iallreduce` (several when the buffer was chunked).
///
/// Every MPI call holds the communicator's lock; the progress thread polls through
/// `pollHoldingLock`, and an error it meets is kept for the owner's next `wait` or `test`.
final class MPIPendingReduction: PendingReduction {
    var requests: [MPI_Request?] = []
    private let lock: NSLock
    private var progressError: Error?
    private var seenComplete: UInt64?

    var completedAt: UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return seenComplete
    }

    init(lock: NSLock) { self.lock = lock }

    func wait() throws {
        lock.lock()
        defer { lock.unlock() }
        if let e = progressError { throw e }
        for i in requests.indices {
            try MPICommunicator.check(MPI_Wait(&requests[i], cmpi_status_ignore()), "MPI_Wait")
        }
    }

    func test() throws -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if let e = progressError { throw e }
        return try testRequests()
    }

    /// The progress thread's poll (the caller holds the lock): whether every request completed
    /// or failed, so the thread can forget this reduction.
    func pollHoldingLock() -> Bool {
        do {
            guard try testRequests() else { return false }
            seenComplete = Timeline.now()
            return true
        } catch {
            progressError = error
            return true
        }
    }

    /// MPI_Test on each request until one is still in flight (completed ones are null and test
    /// as complete at once).
    private func testRequests() throws -> Bool {
        for i in requests.indices {
            var flag: Int32 = 0
            try MPICommunicator.check(MPI_Test(&requests[i], &flag, cmpi_status_ignore()), "MPI_Test")
            if flag == 0 { return false }
        }
        return true
    }
}

/// MPI's callback for the binary16 sum: adds `count` halves of `input` into `accumulator`.
private func mpiHalfSum(_ input: UnsafeMutableRawPointer?, _ accumulator: UnsafeMutableRawPointer?,
                        _ count: UnsafeMutablePointer<Int32>?, _ type: UnsafeMutablePointer<MPI_Datatype?>?) {
    guard let input, let accumulator, let count else { return }
    HalfPrecision.add(accumulator.assumingMemoryBound(to: UInt16.self), input.assumingMemoryBound(to: UInt16.self), Int(count.pointee))
}

#if canImport(Glibc)
import Glibc
#endif
