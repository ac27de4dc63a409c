import ArgumentParser
import Dist

/// `ddp selftest`: maintenance checks of the MPI layer (hidden; used by the end-to-end tests).
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the MPI layer.", shouldDisplay: false, subcommands: [Allreduce.self, Errors.self])

    struct Allreduce: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Allreduce known buffers on every rank and check the results (prints ok or failed).")

        @OptionGroup(title: "Launch") var launch: LaunchOptions

        @Option(help: "Floats per buffer.")
        var count = 100_000

        func validate() throws {
            guard count > 0 else { throw ValidationError("--count must be positive, got \(count)") }
        }

        func run() throws {
            try launch.relaunchIfRequested()
            RankSession.runUnderMPI { communicator in
                let failures = try SelftestChecks.allreduce(communicator, count: count)
                // Every rank learns whether any rank saw a failure, so all exit alike.
                var any = [Double(failures.count)]
                try communicator.allreduce(&any, op: .sum)
                for f in failures { printError("[rank \(communicator.rank)/\(communicator.size)] selftest: \(f)") }
                if communicator.isRoot {
                    printLine("selftest allreduce: \(any[0] == 0 ? "ok" : "failed") (\(communicator.size) ranks, \(count) floats)")
                }
                if any[0] != 0 { throw DistError.selftestFailed("allreduce: \(Int(any[0])) check(s) failed across ranks") }
            }
        }
    }
}

extension Selftest {
    struct Errors: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that every rank's MPI calls return their errors instead of aborting (prints ok or failed).")

        @OptionGroup(title: "Launch") var launch: LaunchOptions

        func run() throws {
            try launch.relaunchIfRequested()
            RankSession.runUnderMPI { communicator in
                var failed = [try communicator.returnsErrors() ? 0.0 : 1.0]
                try communicator.allreduce(&failed, op: .sum)
                if communicator.isRoot {
                    printLine(
                        "selftest errors: \(failed[0] == 0 ? "ok" : "failed") (\(communicator.size) ranks; \(Int(failed[0])) with an error handler other than MPI_ERRORS_RETURN)"
                    )
                }
                if failed[0] != 0 { throw DistError.selftestFailed("errors: \(Int(failed[0])) rank(s) would abort on a failing MPI call") }
            }
        }
    }
}

/// The checks behind `ddp selftest`.
enum SelftestChecks {
    /// Every rank fills x[i] = i mod 1000 + 1 and checks that the sum is x·P; then rank-dependent
    /// sums and maxima, Double, non-blocking and broadcast variants.
    ///
    /// - Returns: a description of each failed check (empty when all pass).
    static func allreduce(_ c: Communicator, count: Int) throws -> [String] {
        let (rank, p) = (c.rank, c.size)
        var failures: [String] = []
        func expect(_ ok: Bool, _ what: String) { if !ok { failures.append(what) } }

        var x = (0 ..< count).map { Float($0 % 1000 + 1) }
        try c.allreduce(&x, op: .sum)
        expect(x.enumerated().allSatisfy { $0.element == Float($0.offset % 1000 + 1) * Float(p) }, "float sum of x is not x·P")

        var r = [Float](repeating: Float(rank + 1), count: count)
        try c.allreduce(&r, op: .sum)
        expect(r.allSatisfy { $0 == Float(p * (p + 1) / 2) }, "float sum of rank+1 is not P(P+1)/2")

        var m = [Float](repeating: Float(rank), count: 17)
        try c.allreduce(&m, op: .max)
        expect(m.allSatisfy { $0 == Float(p - 1) }, "float max of rank is not P-1")

        var d = (0 ..< count).map { Double($0) + 0.5 }
        try c.allreduce(&d, op: .sum)
        expect(d.enumerated().allSatisfy { $0.element == (Double($0.offset) + 0.5) * Double(p) }, "double sum of x is not x·P")

        var y = (0 ..< count).map { Float($0 % 1000 + 1) }
        let pending = try y.withUnsafeMutableBufferPointer { try c.startAllreduce($0, op: .sum) }
        try pending.wait()
        expect(y.enumerated().allSatisfy { $0.element == Float($0.offset % 1000 + 1) * Float(p) }, "non-blocking float sum of x is not x·P")

        var b = [Float](repeating: Float(rank), count: 33)
        try c.broadcast(&b, from: p - 1)
        expect(b.allSatisfy { $0 == Float(p - 1) }, "broadcast from the last rank did not arrive")

        try c.barrier()
        return failures
    }
}
