import Foundation

// libFuzzer's entry points. One binary holds every target; `DDP_FUZZ_TARGET` picks one (see
// `scripts/fuzz.sh`). A target gets the bytes libFuzzer made and must never trap, leak or allocate
// without bound: every input ends in a value or a typed error.

/// The target chosen for this process, looked up once.
let fuzzTarget: ((_ bytes: [UInt8]) -> Void)? = {
    let name = ProcessInfo.processInfo.environment["DDP_FUZZ_TARGET"] ?? ""
    return FuzzTargets.all[name]
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if fuzzTarget == nil {
        let known = FuzzTargets.all.keys.sorted().joined(separator: ", ")
        FileHandle.standardError.write(Data("ddp-fuzz: set DDP_FUZZ_TARGET to one of: \(known)\n".utf8))
        exit(2)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    fuzzTarget?(bytes)
    return 0
}

/// libFuzzer's driver (`-sanitize=fuzzer` links it). SwiftPM renames an executable's `main`, so
/// libFuzzer's own `main` is not used: this file's top-level code starts the driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var driverArgc = CommandLine.argc
var driverArgv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&driverArgc, &driverArgv) { data, size in fuzzTestOneInput(data, size) })
