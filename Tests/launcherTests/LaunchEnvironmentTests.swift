import XCTest

@testable import launcher

/// Whether a process joins MPI or runs as a job of one, from the environment a launcher leaves.
final class LaunchEnvironmentTests: XCTestCase {
    func testABareProcessIsAJobOfOneAndAnyLauncherMeansMPI() {
        XCTAssertFalse(MPIRelaunch.startedByLauncher(environment: [:]))
        XCTAssertFalse(
            MPIRelaunch.startedByLauncher(environment: ["PATH": "/usr/bin", "SLURM_JOB_ID": "7", "OMPI_MCA_btl": "self"]),
            "a job allocation or MCA settings alone start no ranks")
        let launched: [[String: String]] = [
            ["OMPI_COMM_WORLD_SIZE": "1"],  // mpirun -np 1
            ["OMPI_COMM_WORLD_RANK": "0"],
            ["PMIX_RANK": "3"],  // srun --mpi=pmix, prterun
            ["PMI_RANK": "0", "PMI_FD": "5"],  // srun --mpi=pmi2, Hydra
            ["SLURM_STEP_ID": "0", "SLURM_PROCID": "1"]  // any srun step
        ]
        for environment in launched {
            XCTAssertTrue(MPIRelaunch.startedByLauncher(environment: environment), "\(environment)")
        }
        XCTAssertEqual(MPIRelaunch.launcherSize(environment: ["OMPI_COMM_WORLD_SIZE": "4"]), 4)
        XCTAssertNil(MPIRelaunch.launcherSize(environment: ["PMIX_RANK": "3"]))
    }
}
