import Foundation
import NN
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// The example Slurm job (`examples/slurm/train.sbatch`) on a throwaway one-node Slurm
/// (`scripts/slurm/local-slurm.sh`: munged, slurmctld and slurmd in a temporary folder, stopped
/// afterwards), submitted with `sbatch --wait` as 2 tasks. Installs Debian's Slurm packages through
/// `scripts/setup.sh --slurm` when they are missing; skipped, with the reason printed, where that
/// or starting Slurm fails.
final class SlurmTests: XCTestCase {
    static let root = DDPProcess.packageRoot.path

    func skip(_ reason: String) throws -> Never {
        print("skipped: \(reason)")
        throw XCTSkip(reason)
    }

    override func setUpWithError() throws {
        try DDPProcess.requireBinary()
        guard getuid() == 0 else { try skip("the throwaway Slurm needs root (slurmd starts jobs as their users)") }
        let setup = try DDPProcess.run(["/usr/bin/env", "bash", SlurmTests.root + "/scripts/setup.sh", "--slurm"], timeout: 600)
        guard setup.status == 0 else {
            try skip("Slurm could not be installed (scripts/setup.sh --slurm): \(setup.stderr.split(separator: "\n").last ?? "")")
        }
        try ProcessTestLock.hold(for: self, exclusive: true)
    }

    func testJobScriptTrainsOnTwoTasksAndTheRequeuedJobResumesFromTheNewestCheckpoint() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ddp-slurm-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = SlurmTests.root + "/examples/slurm/train.sbatch"
        let train = "--synthetic-samples 512 --model tiny --batch-size 32 --epochs 2 --log-interval 0"
        // The first submission stops after 6 of its 32 steps, as a preempted job would (with a
        // checkpoint); the second, with the same run folder, must continue from it to the end.
        let both = """
            set -e
            export DDP='\(DDPProcess.binary)' RUN='\(dir)/run' CHECKPOINT_EVERY=4
            TRAIN_ARGS='\(train) --stop-after 6' sbatch --wait --nodes 1 --ntasks 2 --ntasks-per-node 2 --output '\(dir)/first.out' '\(job)'
            TRAIN_ARGS='\(train)' sbatch --wait --nodes 1 --ntasks 2 --ntasks-per-node 2 --output '\(dir)/second.out' '\(job)'
            """
        let r = try DDPProcess.run(
            ["/usr/bin/env", "bash", SlurmTests.root + "/scripts/slurm/local-slurm.sh", "bash", "-c", both],
            timeout: 240)
        let first = (try? String(contentsOfFile: dir + "/first.out", encoding: .utf8)) ?? ""
        let second = (try? String(contentsOfFile: dir + "/second.out", encoding: .utf8)) ?? ""
        if r.status == 3 && first.isEmpty { try skip("Slurm did not start here: \(r.stderr.split(separator: "\n").first ?? "")") }
        XCTAssertEqual(r.status, 0, "\(r.stdout)\n\(r.stderr)\n--- first job:\n\(first)\n--- second job:\n\(second)")
        XCTAssertTrue(first.contains("train.sbatch: 2 ranks on 1 node(s)"), first)
        XCTAssertTrue(first.contains("starts a new run"), first)
        XCTAssertTrue(second.contains("resumes from \(dir)/run/checkpoints/step-00000006.safetensors"), second)
        // 512 samples / 32 = 16 steps an epoch, 2 epochs: the resumed run ends at step 32.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/run/checkpoints").filter { $0.hasPrefix("step-") }.sorted()
        XCTAssertEqual(files.last, "step-00000032.safetensors", "\(files)")
        XCTAssertEqual(try Checkpoint.read(from: dir + "/run/checkpoints/step-00000032.safetensors").names.isEmpty, false)
    }
}
