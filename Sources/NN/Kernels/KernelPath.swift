import CCPUFeatures
import KernelsAVX2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
#if canImport(KernelsAVX512)
    import KernelsAVX512
#endif

/// The instruction set the fast kernels run on, chosen once at start-up.
///
/// One binary holds the kernels of every path its architecture has (on x86-64: AVX-512 and AVX2,
/// each compiled in its own target with its own `-target-cpu`; elsewhere: the portable SIMD
/// types). The first use of `current` picks the widest path the CPU and the OS can run, or the one
/// that the environment variable `DDP_KERNELS` names (`avx512`, `avx2`, `portable`); the launcher
/// validates the variable before anything runs, so a path the CPU cannot run stops with a clear
/// error instead of an illegal instruction.
public enum KernelPath: String, CaseIterable, CustomStringConvertible {
    /// 16-float vectors, 32 registers (AVX-512 F/CD/BW/DQ/VL): 8×32 GEMM tiles.
    case avx512
    /// 8-float vectors, 16 registers (AVX2 + FMA, x86-64-v3): 6×16 GEMM tiles.
    case avx2
    /// The platform's own SIMD types (architectures other than x86-64): 6×16 tiles of SIMD8.
    case portable

    /// The environment variable that forces a path.
    public static let environmentVariable = "DDP_KERNELS"

    /// The name and the vector width, e.g. `avx512 (16 floats a vector)`.
    public var description: String { "\(rawValue) (\(lanes) floats a vector)" }

    /// Floats per vector register of the path's kernels.
    public var lanes: Int {
        switch self {
        case .avx512:
            #if canImport(KernelsAVX512)
                return KernelsAVX512.PackedGEMM.Lanes.scalarCount
            #else
                return 16
            #endif
        case .avx2, .portable: return KernelsAVX2.PackedGEMM.Lanes.scalarCount
        }
    }

    /// Whether this binary holds kernels for the path.
    public var isCompiled: Bool {
        #if arch(x86_64)
            return self != .portable
        #else
            return self == .portable
        #endif
    }

    /// Whether this CPU, and the OS's saved register state, can run the path's instructions.
    public var isSupportedByCPU: Bool {
        let features = CPUFeatures.current
        switch self {
        case .avx512: return features.hasAVX512
        case .avx2: return features.hasAVX2
        case .portable: return true
        }
    }

    /// The paths that are compiled in and that this CPU can run, widest first.
    public static var runnable: [KernelPath] { allCases.filter { $0.isCompiled && $0.isSupportedByCPU } }

    /// The path that `DDP_KERNELS` in `environment` names, or the widest runnable one when it is
    /// unset or empty.
    ///
    /// - Throws: `KernelPathError.unknownPath` for a name that is not a path,
    ///   `KernelPathError.notRunnable` for a path that is not compiled in or that the CPU cannot run.
    public static func select(environment: [String: String]) throws(KernelPathError) -> KernelPath {
        guard let name = environment[environmentVariable], !name.isEmpty else {
            // x86-64-v3 is this build's floor, so on x86-64 avx2 is always there to fall back on.
            return runnable.first ?? (isCompiledForX86 ? .avx2 : .portable)
        }
        guard let path = KernelPath(rawValue: name.lowercased()) else { throw .unknownPath(name) }
        guard path.isCompiled, path.isSupportedByCPU else { throw .notRunnable(path, cpu: CPUFeatures.current.summary) }
        return path
    }

    private static var isCompiledForX86: Bool {
        #if arch(x86_64)
            return true
        #else
            return false
        #endif
    }

    /// The path the kernels use now. Chosen on first read by `select(environment:)` from the
    /// process environment; the launcher sets it at start-up, tests and benchmarks may switch it
    /// (between kernel calls, from one thread).
    public static var current: KernelPath {
        get {
            if let chosen { return chosen }
            var environment: [String: String] = [:]
            if let value = getenv(environmentVariable) { environment[environmentVariable] = String(cString: value) }
            do {
                let path = try select(environment: environment)
                chosen = path
                return path
            } catch {
                preconditionFailure("\(error)")
            }
        }
        set {
            precondition(
                newValue.isCompiled && newValue.isSupportedByCPU,
                "Kernel path \(newValue) cannot run here (CPU: \(CPUFeatures.current.summary)).")
            chosen = newValue
        }
    }

    nonisolated(unsafe) private static var chosen: KernelPath?

    /// Runs `body` with `current` set to `path`, then restores the previous path.
    public static func with<T>(_ path: KernelPath, _ body: () throws -> T) rethrows -> T {
        let previous = current
        current = path
        defer { current = previous }
        return try body()
    }

    /// Floating-point operations of one iteration of `fmaLoop(iterations:x:y:)` on this path.
    public var flopsPerFMALoopIteration: Int {
        switch self {
        case .avx512:
            #if canImport(KernelsAVX512)
                return KernelsAVX512.PackedGEMM.flopsPerFMALoopIteration
            #else
                preconditionFailure("This build has no AVX-512 kernels.")
            #endif
        case .avx2, .portable: return KernelsAVX2.PackedGEMM.flopsPerFMALoopIteration
        }
    }

    /// The register-resident FMA loop of this path (twelve independent vector chains, no memory
    /// traffic): the peak that its kernels are measured against.
    ///
    /// - Returns: a value to keep alive, so the loop is not dropped.
    public func fmaLoop(iterations: Int, x: Float, y: Float) -> Float {
        switch self {
        case .avx512:
            #if canImport(KernelsAVX512)
                return KernelsAVX512.PackedGEMM.fmaLoop(iterations: iterations, x: x, y: y)
            #else
                preconditionFailure("This build has no AVX-512 kernels.")
            #endif
        case .avx2, .portable: return KernelsAVX2.PackedGEMM.fmaLoop(iterations: iterations, x: x, y: y)
        }
    }
}

/// Why `KernelPath.select(environment:)` refused the path that `DDP_KERNELS` names.
public enum KernelPathError: Error, CustomStringConvertible, Equatable {
    /// The variable holds something that is not a path's name.
    case unknownPath(String)
    /// The path exists, but this binary or this CPU cannot run it.
    case notRunnable(KernelPath, cpu: String)

    public var description: String {
        let runnable = KernelPath.runnable.map(\.rawValue).joined(separator: ", ")
        switch self {
        case let .unknownPath(name):
            return "\(KernelPath.environmentVariable)=\(name) is not a kernel path; hint: use one of \(runnable), or unset it to pick the widest"
        case let .notRunnable(path, cpu):
            let reason = path.isCompiled ? "this CPU cannot run it (\(cpu))" : "this build has no \(path.rawValue) kernels"
            return "\(KernelPath.environmentVariable)=\(path.rawValue): \(reason); hint: use one of \(runnable), or unset it to pick the widest"
        }
    }
}

/// The x86 feature bits that decide which kernel paths can run: CPUID leaves 1 and 7, and XCR0
/// for the register state the OS saves on a context switch (a CPU with AVX-512 under an OS that
/// does not save the zmm registers must not use them).
struct CPUFeatures {
    var avx = false, fma = false, f16c = false, avx2 = false
    var avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false
    var osSavesYMM = false, osSavesZMM = false

    /// AVX2 + FMA + F16C with the ymm state saved by the OS (x86-64-v3 as far as the kernels go).
    var hasAVX2: Bool { avx && fma && f16c && avx2 && osSavesYMM }
    /// What `-target-cpu skylake-avx512` may emit (F, CD, BW, DQ, VL) with the zmm and opmask
    /// state saved by the OS.
    var hasAVX512: Bool { hasAVX2 && avx512f && avx512cd && avx512bw && avx512dq && avx512vl && osSavesZMM }

    /// e.g. `avx2 fma f16c avx512f avx512cd avx512bw avx512dq avx512vl, OS saves zmm`.
    var summary: String {
        let names = [
            ("avx2", avx2), ("fma", fma), ("f16c", f16c), ("avx512f", avx512f), ("avx512cd", avx512cd),
            ("avx512bw", avx512bw), ("avx512dq", avx512dq), ("avx512vl", avx512vl)
        ]
        let present = names.filter(\.1).map(\.0)
        let state = osSavesZMM ? "OS saves zmm" : osSavesYMM ? "OS saves ymm, not zmm" : "OS saves no ymm"
        return (present.isEmpty ? "no AVX2 or AVX-512" : present.joined(separator: " ")) + ", " + state
    }

    /// This CPU's features, read once.
    static let current = CPUFeatures.read()

    static func read() -> CPUFeatures {
        var f = CPUFeatures()
        func cpuid(_ leaf: UInt32, _ subleaf: UInt32) -> (eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
            var r = [UInt32](repeating: 0, count: 4)
            ddp_cpuid(leaf, subleaf, &r)
            return (r[0], r[1], r[2], r[3])
        }
        func bit(_ value: UInt32, _ index: UInt32) -> Bool { value & (1 << index) != 0 }
        let maxLeaf = cpuid(0, 0).eax
        guard maxLeaf >= 1 else { return f }
        let leaf1 = cpuid(1, 0)
        f.fma = bit(leaf1.ecx, 12)
        f.avx = bit(leaf1.ecx, 28)
        f.f16c = bit(leaf1.ecx, 29)
        if bit(leaf1.ecx, 27) {  // OSXSAVE: XGETBV is allowed
            let xcr0 = ddp_xgetbv(0)
            f.osSavesYMM = xcr0 & 0x6 == 0x6  // SSE and AVX state
            f.osSavesZMM = xcr0 & 0xE6 == 0xE6  // and opmask, ZMM_Hi256, Hi16_ZMM
        }
        if maxLeaf >= 7 {
            let leaf7 = cpuid(7, 0)
            f.avx2 = bit(leaf7.ebx, 5)
            f.avx512f = bit(leaf7.ebx, 16)
            f.avx512dq = bit(leaf7.ebx, 17)
            f.avx512cd = bit(leaf7.ebx, 28)
            f.avx512bw = bit(leaf7.ebx, 30)
            f.avx512vl = bit(leaf7.ebx, 31)
        }
        return f
    }
}
