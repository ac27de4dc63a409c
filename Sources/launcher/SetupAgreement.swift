import Dist
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How the ranks agree on the outcome of their preparation (options, data, model file), so that
/// an error every rank finds alike ends the job cleanly: printed once by rank 0, every rank
/// finalizing MPI and exiting with the same non-zero code, no `MPI_Abort`.
///
/// Each rank contributes to one max-allreduce whether it failed and a 64-bit hash of its message
/// (rank-independent: `DistError.data` is hashed without its rank). The ranks then know whether
/// none failed (go on), all failed with the same message (clean stop), or some failed otherwise
/// (the failing ranks print their own lines and abort the job, as for any error of one rank).
/// The exchange is a collective: a command that asks for it must make no other collective call
/// before it.
enum SetupAgreement {
    /// What the ranks found.
    enum Verdict: Equatable {
        /// No rank failed.
        case proceed
        /// Every rank failed with the same message.
        case failedAlike
        /// Some ranks failed, or all failed with different messages.
        case failedApart
    }

    /// Thrown on a rank whose preparation succeeded while another's failed; that rank aborts the job.
    struct StoppedByOtherRank: Error, CustomStringConvertible {
        var description: String { "another rank failed before training" }
    }

    /// The message of `error` as every rank would write it (no rank number in it).
    static func agreedText(_ error: Error) -> String {
        if case let .data(_, reason)? = error as? DistError { return "could not load the data: \(reason)" }
        return RankSession.describe(error)
    }

    /// A 64-bit FNV-1a hash of the message's UTF-8 bytes.
    static func hash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// Exchanges this rank's outcome with every other rank (a collective).
    ///
    /// - Parameters:
    ///   - communicator: the ranks.
    ///   - failure: this rank's message, or nil when its preparation succeeded.
    /// - Returns: the verdict, the same on every rank.
    /// - Throws: `DistError.mpi` when the allreduce fails.
    static func exchange(_ communicator: Communicator, failure: String?) throws -> Verdict {
        // Max over [failed, -failed, hi, lo, -hi, -lo]: any failed, all failed, and the largest and
        // smallest hash halves over the failing ranks (halves are exact in a Double).
        var values = [Double](repeating: -.infinity, count: 6)
        let failed = failure != nil ? 1.0 : 0.0
        values[0] = failed
        values[1] = -failed
        if let failure {
            let h = hash(failure)
            let (hi, lo) = (Double(h >> 32), Double(h & 0xFFFF_FFFF))
            values[2] = hi
            values[3] = lo
            values[4] = -hi
            values[5] = -lo
        }
        try communicator.allreduce(&values, op: .max)
        guard values[0] == 1 else { return .proceed }
        let allFailed = values[1] == -1
        let alike = values[2] == -values[4] && values[3] == -values[5]
        return allFailed && alike ? .failedAlike : .failedApart
    }
}
