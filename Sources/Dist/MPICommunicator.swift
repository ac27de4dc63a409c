import CMPI

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

    /// MPI counts are 32-bit: larger buffers go in chunks of this many elements.
    static let maxChunk = 1 << 30

    /// Joins `COMM_WORLD`, initializing MPI (funneled threads) if needed.
    ///
    /// - Throws: `DistError.mpi` when MPI cannot start or report rank and size.
    public init() throws {
        var flag: Int32 = 0
        try MPICommunicator.check(MPI_Initialized(&flag), "MPI_Initialized")
        if flag == 0 {
            var provided: Int32 = 0
            try MPICommunicator.check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        }
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

    /// Finalizes MPI if this object initialized it and nobody finalized it yet.
    ///
    /// - Throws: `DistError.mpi` when MPI_Finalize fails.
    public func finalize() throws {
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
            try MPICommunicator.check(MPI_Allreduce(cmpi_in_place(), p, n, type, MPICommunicator.mpiOp(op), comm), "MPI_Allreduce")
        }
    }

    private func broadcast(_ base: UnsafeMutableRawPointer?, count: Int, stride: Int, type: MPI_Datatype, root: Int) throws {
        precondition(root >= 0 && root < size, "broadcast root \(root) is outside 0..<\(size).")
        try chunked(base, count: count, stride: stride) { p, n in
            try MPICommunicator.check(MPI_Bcast(p, n, type, Int32(root), comm), "MPI_Bcast")
        }
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4, type: cmpi_float(), op: op)
    }

    public func allreduce(_ buffer: UnsafeMutableBufferPointer<Double>, op: ReductionOp) throws {
        try allreduce(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 8, type: cmpi_double(), op: op)
    }

    public func startAllreduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReductionOp) throws -> PendingReduction {
        let pending = MPIPendingReduction()
        try chunked(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 4) { p, n in
            var request: MPI_Request? = cmpi_request_null()
            try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), p, n, cmpi_float(), MPICommunicator.mpiOp(op), comm, &request),
                                      "MPI_Iallreduce")
            pending.requests.append(request)
        }
        return pending
    }

    public func startHalfSum(_ buffer: UnsafeMutableBufferPointer<UInt16>) throws -> PendingReduction {
        let pending = MPIPendingReduction()
        try chunked(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count, stride: 2) { p, n in
            var request: MPI_Request? = cmpi_request_null()
            try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), p, n, cmpi_uint16(), halfSumOp, comm, &request),
                                      "MPI_Iallreduce")
            pending.requests.append(request)
        }
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
            try MPICommunicator.check(MPI_Bcast(&byte, 1, cmpi_byte(), Int32(size), comm), "MPI_Bcast")
            return nil
        } catch {
            return error as? DistError
        }
    }

    public func barrier() throws {
        try MPICommunicator.check(MPI_Barrier(comm), "MPI_Barrier")
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        // MPI_Abort should not return; if it does, end this rank anyway.
        exit(code)
    }
}

/// The requests of one `MPI_Iallreduce` (several when the buffer was chunked).
final class MPIPendingReduction: PendingReduction {
    var requests: [MPI_Request?] = []

    func wait() throws {
        for i in requests.indices {
            try MPICommunicator.check(MPI_Wait(&requests[i], cmpi_status_ignore()), "MPI_Wait")
        }
    }

    func test() throws -> Bool {
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
