// swift-tools-version:5.10
import PackageDescription

// Release builds must let the compiler emit AVX2/FMA for the SIMD kernels: without a target CPU,
// Swift's SIMD8<Float> code falls back to SSE2 (or scalar) and runs many times slower.
// `haswell` is the x86-64-v3 level (AVX2 + FMA + BMI2: Haswell, Zen and later); Swift does not
// accept the name x86-64-v3. Other architectures use their default.
#if arch(x86_64)
// Preconditions stay on (-O, not -Ounchecked): bad input must stop with a sentence, not corrupt memory.
let simdFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"]),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
// The AVX-512 kernels live in a target of their own, compiled for `skylake-avx512` (F, CD, BW, DQ,
// VL: what every AVX-512 CPU since 2017 has); nothing else may be, since the binary must run on any
// x86-64-v3 CPU. `KernelPath` picks the target at start-up from the CPU's feature bits.
let avx512Flags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "skylake-avx512"]),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
let kernelTargets: [Target] = [
    .target(name: "KernelsAVX2", dependencies: ["CPrefetch"], swiftSettings: simdFlags),
    .target(name: "KernelsAVX512", dependencies: ["CPrefetch"], swiftSettings: avx512Flags),
]
let kernelDependencies: [Target.Dependency] = ["KernelsAVX2", "KernelsAVX512"]
#else
let simdFlags: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]
// Other architectures: the portable path only (KernelsAVX2's code on the platform's own vectors).
let kernelTargets: [Target] = [
    .target(name: "KernelsAVX2", dependencies: ["CPrefetch"], swiftSettings: simdFlags),
]
let kernelDependencies: [Target.Dependency] = ["KernelsAVX2"]
#endif

let package = Package(
    name: "SwiftDDP",
    products: [
        .executable(name: "ddp", targets: ["launcher"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Dist", targets: ["Dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CCodecs", providers: [.apt(["zlib1g-dev", "libpng-dev"])]),
        // One static inline function (a software prefetch), no library to link.
        .systemLibrary(name: "CPrefetch"),
        // CPUID and XGETBV as static inline functions, for choosing the kernels' instruction set.
        .systemLibrary(name: "CCPUFeatures"),
        .target(name: "NN", dependencies: ["CCodecs", "CPrefetch", "CCPUFeatures",
                                           .product(name: "Yams", package: "Yams")] + kernelDependencies,
                exclude: ["README.md"], swiftSettings: simdFlags),
        .target(name: "Dist", dependencies: ["NN", "CMPI"], exclude: ["README.md"], swiftSettings: simdFlags),
        .executableTarget(name: "launcher",
                          dependencies: ["NN", "Dist",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          exclude: ["README.md"], swiftSettings: simdFlags),
        .testTarget(name: "NNTests", dependencies: ["NN"], swiftSettings: simdFlags),
        .testTarget(name: "DistTests", dependencies: ["Dist", "NN"], swiftSettings: simdFlags),
        .testTarget(name: "launcherTests", dependencies: ["NN"], swiftSettings: simdFlags),
    ] + kernelTargets
)

// Fuzz targets (libFuzzer, one binary, `DDP_FUZZ_TARGET` picks the reader): declared only when
// scripts/fuzz.sh builds them with -sanitize=fuzzer, so other builds never link libFuzzer's main.
if Context.environment["SWIFTDDP_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "ddp-fuzz", dependencies: ["NN", "Dist"], path: "Fuzz/Sources",
                                             swiftSettings: simdFlags))
}
