import ArgumentParser
import Benchmarks
import Foundation
import NN

/// `ddp bench …`: benchmarks. Each kind of benchmark is one subcommand; add new ones to
/// `subcommands` below.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure performance (release builds only).",
        discussion: "Each subcommand validates what it times against a reference first, warms up, times several runs and prints medians.",
        subcommands: [Kernels.self, BenchAllreduce.self, BenchSteps.self, Throughput.self]
    )

    /// Stops with a clear message when the binary was built without optimization.
    static func requireReleaseBuild() throws {
        #if DEBUG
            throw ValidationError("benchmarks need a release build (debug code is many times slower); hint: swift build -c release")
        #endif
    }
}

extension Bench {
    /// `ddp bench kernels`: the GEMM and convolution core against the machine's peak and OpenBLAS.
    struct Kernels: ParsableCommand, BenchTable {
        static let configuration = CommandConfiguration(
            commandName: "kernels",
            abstract: "Time the GEMM and Conv2D kernels of the Fashion-MNIST benchmark convnet.",
            discussion: """
                Prints the kernel path in use (avx512 or avx2, chosen from the CPU or forced with \
                DDP_KERNELS) and first measures this core's single-precision peak with that path's \
                register-resident FMA loop (twelve independent vector accumulators). Then, for every GEMM that one training step of the \
                convnet conv5x5x32(same) - maxpool2 - conv5x5x64(same) - maxpool2 - fc 3136→1024 - fc 1024→10 \
                issues at the given batch size (forward, weight-gradient and input-gradient products, with the \
                shapes and transposes the layers pass: per sample for convolutions, per batch for dense layers), \
                it checks the fast GEMM against the reference, warms up, and prints m, n, k, the median time per \
                call, GFLOP/s and percent of the peak. The FMA loop is timed again in turn with each GEMM, and a \
                GEMM's percent is against that sample, so a slow or fast spell of a shared machine affects both \
                alike. If OpenBLAS (libopenblas.so.0) can be loaded, the \
                same GEMMs run through its cblas_sgemm on one thread, sampled alternately with ours so that load from other \
                processes affects both alike, and the table adds its GFLOP/s and our speed relative to it \
                (ours/OB above 1.0x: ours is faster). Finally it times whole Conv2D layers \
                forward and backward over the batch. A last GEMM row, a 1536×1536×1536 product that no layer \
                issues, shows what the kernel reaches on a shape that does not limit it. Single-threaded. Times are the thread's CPU time, which on an idle \
                core equals wall time and on a shared core leaves out other processes' time slices (cache and \
                memory-bandwidth contention still show).
                """
        )

        @Option(name: .long, help: "Samples per batch, as in training (the GEMM shapes depend on it).")
        var batch = 64

        @Option(name: [.customShort("r"), .long], help: "Timed runs per measurement; the median is reported.")
        var repeats = 7

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Also write the results as CSV to this file (one row per GEMM and per layer pass).",
                valueName: "file"))
        var csv: String?

        @Flag(name: .customLong("no-openblas"), help: "Skip the OpenBLAS comparison even when the library is available.")
        var noOpenBLAS = false

        func validate() throws {
            guard batch > 0 else { throw ValidationError("--batch must be positive, got \(batch)") }
            guard repeats > 0 else { throw ValidationError("--repeats must be positive, got \(repeats)") }
        }

        func run() throws {
            try Bench.requireReleaseBuild()
            let peak = KernelBenchmark.measurePeak()
            print(
                "kernels: \(KernelPath.current) (set \(KernelPath.environmentVariable) to choose; runnable here: \(KernelPath.runnable.map(\.rawValue).joined(separator: ", ")))"
            )
            print(
                String(
                    format:
                        "peak (the FMA loop of that path, 1 core): %.1f GFLOP/s at the start; %%peak of a GEMM is against the same loop timed in turn with it",
                    peak))
            let blas = noOpenBLAS ? nil : OpenBLAS.load()
            print(blas.map { "OpenBLAS: \($0.path), 1 thread" } ?? "OpenBLAS: not loaded (comparison skipped)")
            print("")
            var rows: [String] = [
                "kind,name,m,n,k,trans,calls_per_batch,seconds,gflops,percent_of_peak,openblas_seconds,openblas_gflops,speedup_vs_openblas,peak_gflops"
            ]
            var peaks: [Double] = []
            let header =
                pad("GEMM", 18) + pad("m", 6, right: true) + pad("n", 7, right: true) + pad("k", 7, right: true)
                + pad("op", 4, right: true) + pad("calls", 7, right: true) + pad("median", 11, right: true)
                + pad("GFLOP/s", 9, right: true) + pad("%peak", 7, right: true)
                + (blas == nil ? "" : pad("OpenBLAS", 10, right: true) + pad("ours/OB", 9, right: true))
            print(header)
            for gemm in KernelBenchmark.fashionMNISTCases(batch: batch) + [KernelBenchmark.squareReference] {
                let r = try KernelBenchmark.run(gemm, repeats: repeats, openBLAS: blas)
                peaks.append(r.peakGFlops)
                var line =
                    pad(gemm.name, 18) + pad("\(gemm.m)", 6, right: true) + pad("\(gemm.n)", 7, right: true)
                    + pad("\(gemm.k)", 7, right: true) + pad(gemm.transposes, 4, right: true)
                    + pad(gemm.callsPerBatch > 0 ? "\(gemm.callsPerBatch)" : "-", 7, right: true)
                    + pad(formatTime(r.seconds), 11, right: true)
                    + pad(String(format: "%.1f", r.gflops), 9, right: true)
                    + pad(String(format: "%.0f%%", 100 * r.fractionOfPeak), 7, right: true)
                if let theirs = r.openBLASGFlops, let ratio = r.speedupOverOpenBLAS {
                    line += pad(String(format: "%.1f", theirs), 10, right: true) + pad(String(format: "%.2fx", ratio), 9, right: true)
                }
                print(line)
                rows.append(
                    [
                        "gemm", gemm.name, "\(gemm.m)", "\(gemm.n)", "\(gemm.k)", gemm.transposes, "\(gemm.callsPerBatch)",
                        "\(r.seconds)", "\(r.gflops)", "\(100 * r.fractionOfPeak)",
                        r.openBLASSeconds.map { "\($0)" } ?? "", r.openBLASGFlops.map { "\($0)" } ?? "",
                        r.speedupOverOpenBLAS.map { "\($0)" } ?? "", "\(r.peakGFlops)"
                    ].joined(separator: ","))
            }
            // The layers below are compared with the median of the peaks sampled beside the GEMMs.
            let samePeak = peaks.isEmpty ? peak : peaks.sorted()[peaks.count / 2]
            print(
                String(
                    format: "peak timed in turn with the GEMMs: median %.1f GFLOP/s (%.1f–%.1f)", samePeak,
                    peaks.min() ?? peak, peaks.max() ?? peak))
            print("")
            print(
                pad("Conv2D layer", 14) + pad("", 34) + pad("forward", 11, right: true) + pad("GFLOP/s", 9, right: true)
                    + pad("backward", 11, right: true) + pad("GFLOP/s", 9, right: true))
            for layer in try KernelBenchmark.runConvolutions(batch: batch, repeats: repeats) {
                let f = layer.forwardFlops / layer.forwardSeconds / 1e9, b = layer.backwardFlops / layer.backwardSeconds / 1e9
                print(
                    pad(layer.name, 14) + pad("\(layer.summary) batch \(batch)", 34)
                        + pad(formatTime(layer.forwardSeconds), 11, right: true) + pad(String(format: "%.1f", f), 9, right: true)
                        + pad(formatTime(layer.backwardSeconds), 11, right: true) + pad(String(format: "%.1f", b), 9, right: true))
                rows.append(
                    [
                        "conv2d-forward", layer.name, "", "", "", "", "\(batch)", "\(layer.forwardSeconds)", "\(f)",
                        "\(100 * f / samePeak)", "", "", ""
                    ].joined(separator: ","))
                rows.append(
                    [
                        "conv2d-backward", layer.name, "", "", "", "", "\(batch)", "\(layer.backwardSeconds)", "\(b)",
                        "\(100 * b / samePeak)", "", "", ""
                    ].joined(separator: ","))
            }
            // The deterministic mode's dense-layer kernel (chunks of 16, its default) beside the
            // fast mode's single product of the same layer.
            print("")
            print(
                pad("Dense weight gradient", 24) + pad("batch", 6, right: true) + pad("one product", 13, right: true)
                    + pad("per chunk", 11, right: true) + pad("exact mean", 12, right: true) + pad("exact/one", 11, right: true))
            for r in try KernelBenchmark.runExactDense(batch: batch, chunkSize: 16, repeats: repeats) {
                print(
                    pad(r.name, 24) + pad("\(r.batch)", 6, right: true) + pad(formatTime(r.productSeconds), 13, right: true)
                        + pad(formatTime(r.chunkProductSeconds), 11, right: true) + pad(formatTime(r.exactSeconds), 12, right: true)
                        + pad(String(format: "%.2fx", r.exactSeconds / r.productSeconds), 11, right: true))
                for (kind, seconds) in [
                    ("dense-product", r.productSeconds), ("dense-chunk-products", r.chunkProductSeconds),
                    ("dense-exact-mean", r.exactSeconds)
                ] {
                    rows.append(
                        [
                            kind, r.name, "\(r.units)", "\(r.features)", "\(r.batch)", "T,N", "1", "\(seconds)",
                            "\(r.flops / seconds / 1e9)", "\(100 * r.flops / seconds / 1e9 / samePeak)", "", "", ""
                        ].joined(separator: ","))
                }
            }
            if let csv {
                try BenchOutput.writeCSV(rows, to: csv)
                print("\nwrote \(csv)")
            }
        }
    }
}
