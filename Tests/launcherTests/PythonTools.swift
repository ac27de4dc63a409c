import Foundation
import XCTest

/// The Python checks of exported files: a virtual environment made on demand by
/// `scripts/python-venv.sh` (packages from PyPI), and the scripts under `scripts/` run in it.
enum PythonTools {
    /// The venv's python with `packages` installed, or an `XCTSkip` carrying the reason (no Python,
    /// no venv module, or the package index out of reach).
    static func python(venv: String, packages: [String]) throws -> String {
        let script = DDPProcess.packageRoot.appendingPathComponent("scripts/python-venv.sh").path
        let r = try DDPProcess.run([script, venv] + packages, timeout: 900)
        guard r.status == 0, !r.timedOut, let path = r.stdout.split(separator: "\n").last.map(String.init) else {
            throw XCTSkip("no Python environment with \(packages.joined(separator: " ")): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return path
    }

    /// Runs `scripts/<name>` with `python` and returns its JSON lines.
    static func run(
        _ python: String, script name: String, _ arguments: [String], file: StaticString = #filePath,
        line: UInt = #line
    ) throws -> [[String: Any]] {
        let script = DDPProcess.packageRoot.appendingPathComponent("scripts/\(name)").path
        let r = try DDPProcess.run([python, script] + arguments, timeout: 300)
        XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)", file: file, line: line)
        return InferenceFixtures.jsonObjects(r.stdout)
    }
}
