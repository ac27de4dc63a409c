import XCTest

@testable import launcher

/// The argument lists the launcher re-executes itself with: without the options it used itself
/// (`--np`, `--mpirun-arg`), or with `--resume` replaced by the supervisor.
final class LaunchArgumentsTests: XCTestCase {
    func testRemovingOptionsDropsBothSpellingsWithTheirValues() {
        let arguments = ["train", "--np", "2", "--model", "lenet5", "--mpirun-arg=--oversubscribe", "--np=4", "--mpirun-arg", "-x", "--npx", "1"]
        XCTAssertEqual(
            MPIRelaunch.removing(options: ["--np", "--mpirun-arg"], from: arguments), ["train", "--model", "lenet5", "--npx", "1"])
        XCTAssertEqual(MPIRelaunch.strippingRanks(arguments), ["train", "--model", "lenet5", "--npx", "1"])
        XCTAssertEqual(MPIRelaunch.removing(options: ["--np"], from: ["train", "--np"]), ["train"], "a trailing option without its value")
    }

    func testReplacingResumeAppendsTheNewCheckpointOnce() {
        let arguments = ["train", "--resume", "a.safetensors", "--epochs", "3", "--resume=b.safetensors"]
        XCTAssertEqual(
            JobSupervisor.replacingResume(in: arguments, with: "c.safetensors"), ["train", "--epochs", "3", "--resume", "c.safetensors"])
        XCTAssertEqual(JobSupervisor.replacingResume(in: arguments, with: nil), ["train", "--epochs", "3"])
    }

    func testSampleShapeIsThreePositiveIntegers() {
        XCTAssertEqual(SampleShapeOption.parse("1,28,28"), [1, 28, 28])
        XCTAssertEqual(SampleShapeOption.parse(" 3, 32 ,32"), [3, 32, 32])
        for bad in ["1,28", "1,28,28,1", "0,28,28", "1,-2,28", "1,x,28", ""] {
            XCTAssertNil(SampleShapeOption.parse(bad), bad)
            XCTAssertThrowsError(try SampleShapeOption.validate(bad), bad)
        }
    }
}
