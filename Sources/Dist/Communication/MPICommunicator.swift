import CMPI
import Foundation

/// The communicator over MPI's `COMM_WORLD`: the one file that calls MPI.
///
/// Works under `mpirun` (rank and size from the launcher) and as a bare process, where Open MPI
/// starts as a singleton of one rank (`ddp` runs a job of one on the in-process communicator
/// instead, except in the commands that check MPI itself). MPI is initialized only if nobody did it before, and
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

    /// Seconds a rank may wait in one collective before the stall inspector asks the other ranks
    /// where they are; nil waits forever (the plain blocking MPI calls). See `StallReport`.
    public var stallTimeout: Double?
    /// What the ranks are doing, for stall messages (`epoch 1 step 4`); the trainer sets it at
    /// each step.
    public var phase = "" {
        didSet { runTestHooks() }
    }
    /// The stall inspector's side channel: a duplicate of the world communicator on which queries
    /// and answers travel as point-to-point messages, apart from the collectives.
    private var sideComm: MPI_Comm?
    /// The receive posted for the next query (under `mpiLock`), and its one-byte buffer.
    private var queryRequest: MPI_Request?
    private let queryBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    /// Answers being sent, with their buffers (freed once sent).
    private var answersInFlight: [(request: MPI_Request?, buffer: UnsafeMutableRawPointer)] = []
    /// Collectives this rank has started (the same count on every rank), and the one it waits in.
    private var collectivesStarted = 0
    private var waitingIn: (number: Int, label: String)?

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
        if size > 1 {
            var side: MPI_Comm? = cmpi_comm_null()
            try MPICommunicator.check(MPI_Comm_dup(comm, &side), "MPI_Comm_dup")
            try MPICommunicator.check(MPI_Comm_set_errhandler(side, cmpi_errors_return()), "MPI_Comm_set_errhandler")
            sideComm = side
            try postQueryReceive()
        }
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
        closeSideChannel()
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
    private func chunked(
        _ base: UnsafeMutableRawPointer?, count: Int, stride: Int,
        _ body: (UnsafeMutableRawPointer, Int32) throws -> Void
    ) rethrows {
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
            try collective(
                "allreduce", function: "MPI_Allreduce",
                blocking: { MPI_Allreduce(cmpi_in_place(), p, n, type, MPICommunicator.mpiOp(op), comm) },
                nonBlocking: { MPI_Iallreduce(cmpi_in_place(), p, n, type, MPICommunicator.mpiOp(op), comm, $0) })
        }
    }

    private func broadcast(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype, root: Int) throws {
        precondition(root >= 0 && root < size, "broadcast root \(root) is outside 0..<\(size).")
        try chunked(base, count: count, stride: stride) { p, n in
            try collective(
                "broadcast", function: "MPI_Bcast", blocking: { MPI_Bcast(p, n, type, Int32(root), comm) },
                nonBlocking: { MPI_Ibcast(p, n, type, Int32(root), comm, $0) })
        }
    }

    /// Runs one blocking collective: the plain MPI call when there is no stall timeout, else its
    /// non-blocking twin, waited on by the stall inspector.
    private func collective(
        _ kind: String, function: String, blocking: () -> Int32,
        nonBlocking: (UnsafeMutablePointer<MPI_Request?>) -> Int32
    ) throws {
        let (number, label) = locked { startCollective(kind) }
        guard stallTimeout != nil, sideComm != nil else {
            try locked { try MPICommunicator.check(blocking(), function) }
            return
        }
        var request: MPI_Request? = cmpi_request_null()
        try locked { try MPICommunicator.check(nonBlocking(&request), "MPI_I" + function.dropFirst(4).lowercased()) }
        try awaitCollective(number: number, label: label) {
            var flag: Int32 = 0
            try MPICommunicator.check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test")
            return flag != 0
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: cmpi_float(), op: op)
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: cmpi_double(), op: op)
    }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws -> PendingReduction {
        try startAllreduce(
            UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: cmpi_float(), op: MPICommunicator.mpiOp(op))
    }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws -> PendingReduction {
        try startAllreduce(
            UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: cmpi_double(), op: MPICommunicator.mpiOp(op))
    }

    public func startHalfSum(_ buffer: UnsafeMutableBufferPointer<UInt16>) throws -> PendingReduction {
        try startAllreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 2, type: cmpi_uint16(), op: halfSumOp)
    }

    /// Starts one in-place `MPI_Iallreduce` per chunk of `count` elements of `stride` bytes at
    /// `base`, all of them one pending gradient reduction.
    private func startAllreduce(
        _ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype, op: MPI_Op?
    ) throws -> PendingReduction {
        let pending = MPIPendingReduction(lock: mpiLock, owner: self, position: locked { startCollective("gradient reduction") })
        try chunked(base, count: count, stride: stride) { p, n in
            var request: MPI_Request? = cmpi_request_null()
            try locked {
                try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), p, n, type, op, comm, &request), "MPI_Iallreduce")
            }
            pending.requests.append(request)
        }
        track(pending)
        return pending
    }

    public func startExchange(
        sending send: UnsafeRawPointer, counts sendCounts: [Int], offsets sendOffsets: [Int],
        receiving receive: UnsafeMutableRawPointer, counts receiveCounts: [Int],
        offsets receiveOffsets: [Int]
    ) throws -> PendingReduction {
        let pending = MPIPendingReduction(lock: mpiLock, owner: self, position: locked { startCollective("gradient exchange") })
        // The count and offset arrays belong to the collective until it completes.
        let arrays = [sendCounts, sendOffsets, receiveCounts, receiveOffsets].map { pending.retain(MPICommunicator.int32s($0, "exchange")) }
        var request: MPI_Request? = cmpi_request_null()
        try locked {
            try MPICommunicator.check(
                MPI_Ialltoallv(
                    send, arrays[0], arrays[1], cmpi_byte(), receive, arrays[2], arrays[3], cmpi_byte(),
                    comm, &request), "MPI_Ialltoallv")
        }
        pending.requests.append(request)
        track(pending)
        return pending
    }

    public func startAllgather(_ buffer: UnsafeMutableBufferPointer<Float>, parts: [Range<Int>]) throws -> PendingReduction {
        precondition(parts.count == size, "An allgather needs one part per rank (\(size)), got \(parts.count).")
        let pending = MPIPendingReduction(lock: mpiLock, owner: self, position: locked { startCollective("gradient gather") })
        let counts = pending.retain(MPICommunicator.int32s(parts.map(\.count), "allgather"))
        let offsets = pending.retain(MPICommunicator.int32s(parts.map(\.lowerBound), "allgather"))
        var request: MPI_Request? = cmpi_request_null()
        try locked {
            try MPICommunicator.check(
                MPI_Iallgatherv(
                    cmpi_in_place(), 0, cmpi_float(), buffer.baseAddress, counts, offsets, cmpi_float(),
                    comm, &request), "MPI_Iallgatherv")
        }
        pending.requests.append(request)
        track(pending)
        return pending
    }

    /// MPI's Int32 counts and offsets (a collective of 2 GiB or more in one piece is refused).
    private static func int32s(_ values: [Int], _ what: String) -> [Int32] {
        values.map {
            precondition($0 >= 0 && $0 <= Int(Int32.max), "An \(what) count or offset of \($0) does not fit MPI's 32-bit counts.")
            return Int32($0)
        }
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

    /// Whether MPI hands errors back (`MPI_ERRORS_RETURN`) on every communicator this object calls
    /// (the world and the stall inspector's side channel), so that a failing call becomes a
    /// `DistError.mpi` instead of aborting the job. `ddp selftest errors` checks it on every rank.
    ///
    /// - Returns: false when any of them has another error handler.
    /// - Throws: `DistError.mpi` when a handler cannot be read.
    public func returnsErrors() throws -> Bool {
        try locked {
            for c in [comm] + (sideComm.map { [$0] } ?? []) {
                var handler: MPI_Errhandler? = nil
                try MPICommunicator.check(MPI_Comm_get_errhandler(c, &handler), "MPI_Comm_get_errhandler")
                // The query hands out a reference to the handler, which is released at once.
                let returns = handler == cmpi_errors_return()
                try MPICommunicator.check(MPI_Errhandler_free(&handler), "MPI_Errhandler_free")
                if !returns { return false }
            }
            return true
        }
    }

    public func barrier() throws {
        try collective(
            "barrier", function: "MPI_Barrier", blocking: { MPI_Barrier(comm) },
            nonBlocking: { MPI_Ibarrier(comm, $0) })
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        mpiLock.lock()
        defer { mpiLock.unlock() }
        return try body()
    }

    // MARK: Stall inspector

    /// Tags of the side channel's messages.
    private static let queryTag: Int32 = 0x57A1, answerTag: Int32 = 0x57A2
    /// An answer: the newest collective started and the one waited in (-1: none), as Int64, then
    /// the label's UTF-8 bytes, zero-padded.
    private static let answerSize = 256

    /// Numbers the next collective (under `mpiLock`) and names it after the current phase.
    private func startCollective(_ kind: String) -> (number: Int, label: String) {
        collectivesStarted += 1
        return (collectivesStarted, phase.isEmpty ? kind : "\(kind) of \(phase)")
    }

    /// Seconds on a monotonic clock.
    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Waits until `testHoldingLock` (called under `mpiLock`) reports the collective complete,
    /// answering other ranks' queries meanwhile. After `stallTimeout` seconds it asks every other
    /// rank where it is; if any has not joined, it throws `DistError.stall` naming them, else it
    /// waits another `stallTimeout`.
    func awaitCollective(number: Int, label: String, testHoldingLock: () throws -> Bool) throws {
        guard let timeout = stallTimeout else { return }
        let start = MPICommunicator.now()
        var deadline = start + timeout
        locked { waitingIn = (number, label) }
        defer { locked { waitingIn = nil } }
        while true {
            let done: Bool = try locked {
                try serveQueriesHoldingLock()
                return try testHoldingLock()
            }
            if done { return }
            // Poll without pause as MPI_Wait would (a non-blocking collective advances only inside
            // MPI calls); after 50 ms the wait is for a slower rank, not for the network, so poll
            // gently and leave the cores to it.
            let now = MPICommunicator.now()
            if now - start > 0.05 { usleep(200) }
            if now >= deadline {
                let report = try inspect(number: number, label: label, waited: now - start, timeout: timeout)
                if !report.missing.isEmpty { throw DistError.stall(report, timeout: timeout) }
                deadline = now + timeout
            }
        }
    }

    /// Posts the receive of the next query (under `mpiLock`, or in `init`).
    private func postQueryReceive() throws {
        var request: MPI_Request? = cmpi_request_null()
        try MPICommunicator.check(
            MPI_Irecv(queryBuffer, 1, cmpi_byte(), cmpi_any_source(), MPICommunicator.queryTag, sideComm, &request),
            "MPI_Irecv")
        queryRequest = request
    }

    /// Answers every query that has arrived with this rank's position, and releases answers
    /// already sent. Called under `mpiLock` while this rank waits in a collective.
    private func serveQueriesHoldingLock() throws {
        guard sideComm != nil else { return }
        while true {
            var flag: Int32 = 0
            var status = MPI_Status()
            try MPICommunicator.check(MPI_Test(&queryRequest, &flag, &status), "MPI_Test")
            guard flag != 0 else { break }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: MPICommunicator.answerSize, alignment: 8)
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: MPICommunicator.answerSize)
            buffer.storeBytes(of: Int64(collectivesStarted), toByteOffset: 0, as: Int64.self)
            buffer.storeBytes(of: Int64(waitingIn?.number ?? -1), toByteOffset: 8, as: Int64.self)
            let label = Array((waitingIn?.label ?? phase).utf8.prefix(MPICommunicator.answerSize - 16))
            label.withUnsafeBytes { (buffer + 16).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            var request: MPI_Request? = cmpi_request_null()
            try MPICommunicator.check(
                MPI_Isend(
                    buffer, Int32(MPICommunicator.answerSize), cmpi_byte(), status.MPI_SOURCE,
                    MPICommunicator.answerTag, sideComm, &request), "MPI_Isend")
            answersInFlight.append((request, buffer))
            try postQueryReceive()
        }
        try answersInFlight.removeAll { entry in
            var flag: Int32 = 0
            var request = entry.request
            try MPICommunicator.check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test")
            if flag != 0 { entry.buffer.deallocate() }
            return flag != 0
        }
    }

    /// Asks every other rank where it is and collects the answers for up to a few seconds
    /// (serving their queries meanwhile); ranks that do not answer are reported as such.
    private func inspect(number: Int, label: String, waited: Double, timeout: Double) throws -> StallReport {
        let others = (0 ..< size).filter { $0 != rank }
        var one: UInt8 = 1
        var answers: [Int: StallReport.Position?] = [:]
        let buffers = others.map { _ in UnsafeMutableRawPointer.allocate(byteCount: MPICommunicator.answerSize, alignment: 8) }
        defer { buffers.forEach { $0.deallocate() } }
        var receives: [MPI_Request?] = []
        try locked {
            for (i, r) in others.enumerated() {
                var receive: MPI_Request? = cmpi_request_null()
                try MPICommunicator.check(
                    MPI_Irecv(
                        buffers[i], Int32(MPICommunicator.answerSize), cmpi_byte(), Int32(r),
                        MPICommunicator.answerTag, sideComm, &receive), "MPI_Irecv")
                receives.append(receive)
                var send: MPI_Request? = cmpi_request_null()
                try MPICommunicator.check(MPI_Isend(&one, 1, cmpi_byte(), Int32(r), MPICommunicator.queryTag, sideComm, &send), "MPI_Isend")
                // One byte goes out eagerly; nobody needs to know when.
                MPI_Request_free(&send)
            }
        }
        let patience = min(max(timeout, 1), 5)
        let giveUp = MPICommunicator.now() + patience
        while answers.count < others.count && MPICommunicator.now() < giveUp {
            try locked {
                try serveQueriesHoldingLock()
                for (i, r) in others.enumerated() where answers[r] == nil {
                    var flag: Int32 = 0
                    try MPICommunicator.check(MPI_Test(&receives[i], &flag, cmpi_status_ignore()), "MPI_Test")
                    guard flag != 0 else { continue }
                    let started = Int(buffers[i].load(fromByteOffset: 0, as: Int64.self))
                    let waiting = Int(buffers[i].load(fromByteOffset: 8, as: Int64.self))
                    let text = UnsafeRawBufferPointer(start: buffers[i] + 16, count: MPICommunicator.answerSize - 16)
                    let label = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
                    answers[r] = .some(StallReport.Position(started: started, waiting: waiting >= 0 ? waiting : nil, label: label))
                }
            }
            usleep(1000)
        }
        locked {
            for (i, r) in others.enumerated() where answers[r] == nil {
                answers[r] = .some(nil)
                MPI_Cancel(&receives[i])
                MPI_Request_free(&receives[i])
            }
        }
        return StallReport(rank: rank, size: size, collective: number, label: label, waited: waited, answers: answers)
    }

    /// Cancels the posted query receive and frees the side channel (at `finalize`).
    private func closeSideChannel() {
        guard sideComm != nil else { return }
        locked {
            if queryRequest != cmpi_request_null() {
                MPI_Cancel(&queryRequest)
                MPI_Wait(&queryRequest, cmpi_status_ignore())
            }
            for var entry in answersInFlight {
                MPI_Wait(&entry.request, cmpi_status_ignore())
                entry.buffer.deallocate()
            }
            answersInFlight.removeAll()
            MPI_Comm_free(&sideComm)
            sideComm = nil
        }
    }

    #if DDP_TEST_HOOKS
        // Fault injection for the test suite, compiled only into its build (scripts/test.sh passes
        // -DDDP_TEST_HOOKS): the `ddp` that `swift build` makes has none of it.

        /// The environment variable through which tests make one rank hang: `RANK:PHASE`, e.g.
        /// `1:epoch 1 step 3`. No option sets it.
        public static let testStallVariable = "DDP_TEST_STALL"
        /// The environment variable through which tests kill one rank (SIGKILL) once:
        /// `RANK:PHASE:MARKER`; the rank creates the file MARKER first and is not killed again while
        /// it exists (a restarted job passes the same phase again).
        public static let testKillVariable = "DDP_TEST_KILL"
        /// The environment variable through which tests send one rank SIGTERM: `RANK:PHASE`.
        public static let testSignalVariable = "DDP_TEST_SIGNAL"

        /// Hangs or kills this rank when a test's environment variable names it and the phase just set.
        private func runTestHooks() {
            let environment = ProcessInfo.processInfo.environment
            if let fields = environment[MPICommunicator.testStallVariable]?.split(separator: ":", maxSplits: 1).map(String.init),
                fields.count == 2, Int(fields[0]) == rank, fields[1] == phase
            {
                while true { sleep(3600) }
            }
            if let fields = environment[MPICommunicator.testSignalVariable]?.split(separator: ":", maxSplits: 1).map(String.init),
                fields.count == 2, Int(fields[0]) == rank, fields[1] == phase
            {
                kill(getpid(), SIGTERM)
            }
            if let fields = environment[MPICommunicator.testKillVariable]?.split(separator: ":", maxSplits: 2).map(String.init),
                fields.count == 3, Int(fields[0]) == rank, fields[1] == phase, !FileManager.default.fileExists(atPath: fields[2])
            {
                _ = FileManager.default.createFile(atPath: fields[2], contents: Data("killed".utf8))
                kill(getpid(), SIGKILL)
            }
        }
    #else
        private func runTestHooks() {}
    #endif

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
            throw DistError.invalidConfiguration(
                option: "progress thread",
                reason: "MPI provides thread level \(threadLevel), below MPI_THREAD_SERIALIZED; hint: poll between layers only")
        }
        let ended = DispatchSemaphore(value: 0)
        progressEnded = ended
        let micros = useconds_t(max(1, (interval * 1e6).rounded()))
        let thread = Thread { [unowned self] in
            while true {
                self.mpiLock.lock()
                if self.progressStop {
                    self.mpiLock.unlock()
                    break
                }
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
    /// Arguments MPI reads until the requests complete (the vector collectives' counts and offsets).
    private var retained: [UnsafeMutablePointer<Int32>] = []
    private let lock: NSLock
    private var progressError: Error?
    private var seenComplete: UInt64?
    /// The communicator whose stall inspector waits for this reduction.
    private weak var owner: MPICommunicator?
    /// The reduction's collective number and label, for stall messages.
    private let position: (number: Int, label: String)

    var completedAt: UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return seenComplete
    }

    init(lock: NSLock, owner: MPICommunicator, position: (number: Int, label: String)) {
        self.lock = lock
        self.owner = owner
        self.position = position
    }

    deinit {
        for p in retained { p.deallocate() }
    }

    /// A copy of `values` that lives as long as this reduction.
    func retain(_ values: [Int32]) -> UnsafeMutablePointer<Int32> {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: Swift.max(values.count, 1))
        p.initialize(from: values, count: values.count)
        retained.append(p)
        return p
    }

    func wait() throws {
        if let owner, owner.stallTimeout != nil {
            // Polled under the lock one test at a time, so the progress thread and the inspector's
            // answers to other ranks go on between tests.
            try owner.awaitCollective(number: position.number, label: position.label) {
                if let e = progressError { throw e }
                return try testRequests()
            }
            return
        }
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
private func mpiHalfSum(
    _ input: UnsafeMutableRawPointer?, _ accumulator: UnsafeMutableRawPointer?,
    _ count: UnsafeMutablePointer<Int32>?, _ type: UnsafeMutablePointer<MPI_Datatype?>?
) {
    guard let input, let accumulator, let count else { return }
    HalfPrecision.add(accumulator.assumingMemoryBound(to: UInt16.self), input.assumingMemoryBound(to: UInt16.self), Int(count.pointee))
}

#if canImport(Glibc)
    import Glibc
#endif
