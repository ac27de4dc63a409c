import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Keeps apart the tests that start processes when `swift test --parallel` runs test cases in
/// several worker processes at once: a reader-writer lock on one file (`flock`), taken in a test
/// class's `setUp` and given back when the test ends.
///
/// Most classes take it shared and may overlap one another. A class takes it exclusive when it
/// must run alone: it makes the simulated cluster's namespaces and fixed addresses, a throwaway
/// Slurm on fixed ports, kills ranks at chosen moments, or asserts how long a hang or an abort
/// takes (another job on the two cores would stretch it). In a serial run every lock is free.
enum ProcessTestLock {
    /// Why the lock could not be taken (the test fails with it).
    struct LockError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The lock file, shared by every worker of this machine's test runs.
    static let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("swiftddp-process-tests.lock")

    /// Holds the lock for the rest of `test`, shared or (with `exclusive`) alone.
    static func hold(for test: XCTestCase, exclusive: Bool = false) throws {
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw LockError(message: "cannot open the test lock \(path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            guard errno == EINTR else {
                close(fd)
                throw LockError(message: "cannot lock \(path): \(String(cString: strerror(errno)))")
            }
        }
        test.addTeardownBlock {
            flock(fd, LOCK_UN)
            close(fd)
        }
    }
}
