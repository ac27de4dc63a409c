import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps apart the tests that start processes when test cases run in several worker processes at
/// once (`scripts/test.sh`'s workers, `swift test --parallel`): a reader-writer lock on a file
/// (`flock`), taken in a test class's `setUp` and given back when the test ends.
///
/// Most classes take it shared and may overlap one another. A class takes it exclusive when it
/// must run alone: it makes the simulated cluster's namespaces and fixed addresses and pins ranks
/// to cores, starts a throwaway Slurm on fixed ports, kills ranks at chosen moments, or asserts how
/// long a hang or an abort takes. A second file is a turnstile that a test waiting to run alone
/// holds, so that shared takers queue behind it instead of keeping it out for good. In a serial
/// run every lock is free at once.
enum ProcessTestLock {
    /// Why the lock could not be taken (the test fails with it).
    struct LockError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The lock file and the turnstile, shared by every worker of this machine's test runs.
    static let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("swiftddp-process-tests.lock")
    static let turnstilePath = path + ".turnstile"

    /// Holds the lock for the rest of `test`, shared or (with `exclusive`) alone.
    static func hold(for test: XCTestCase, exclusive: Bool = false) throws {
        let turnstile = try open(turnstilePath)
        defer { close(turnstile) }
        try lock(turnstile, LOCK_EX, turnstilePath)
        let fd = try open(path)
        do {
            try lock(fd, exclusive ? LOCK_EX : LOCK_SH, path)
        } catch {
            close(fd)
            throw error
        }
        test.addTeardownBlock {
            flock(fd, LOCK_UN)
            close(fd)
        }
    }

    private static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw LockError(message: "cannot open the test lock \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    private static func lock(_ fd: Int32, _ operation: Int32, _ path: String) throws {
        while flock(fd, operation) != 0 {
            guard errno == EINTR else { throw LockError(message: "cannot lock \(path): \(String(cString: strerror(errno)))") }
        }
    }
}
