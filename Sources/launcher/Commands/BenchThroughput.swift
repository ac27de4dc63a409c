import ArgumentParser
import Benchmarks
import Foundation
import NN

extension Bench {
    /// `ddp bench throughput`: training samples per second of one rank on one thread.
    struct Throughput: ParsableCommand, BenchTable {
        static let configuration = CommandConfiguration(
            commandName: "throughput",
            abstract: "Time whole training steps of a built-in model on one thread (one rank).",
            discussion: """
                Trains the model on one fixed synthetic batch of 1x28x28 images with random labels (data \
                loading is left out): each step runs forward, softmax cross-entropy, zeroes the gradients, \
                runs backward and takes an Adam step that scales the summed gradients by 1/batch as it reads them (as in training). \
                For each batch size it first runs the warm-up steps and checks that the loss is finite and falls below the first step's \
                on the fixed batch, then times each step with the thread's CPU time and reports the median: \
                samples/s, step time, the model's FLOP per training sample (2 x multiply-accumulates of every \
                convolution and dense layer, for forward, the weight gradient and the input gradient, less the \
                first convolution's input gradient, which is skipped), GFLOP/s and percent of this core's peak \
                (the FMA loop of the kernel path in use, as in `ddp bench kernels`, measured in the same run). Batch sizes run in \
                ascending order and the process's peak resident set (getrusage ru_maxrss) is printed after each, \
                so the figure on a batch's row is the peak of a process that ran that batch size and the smaller \
                ones (run `--batches 64` for batch 64 alone). scripts/bench-compare.sh runs PyTorch and Keras \
                beside it in the same sitting.
                """
        )

        @Option(name: .long, help: "The built-in model to train (\(ModelSpec.builtinNames.joined(separator: ", "))).")
        var model = "fmnist-cnn"

        @Option(name: .long, help: ArgumentHelp("Per-rank batch sizes, comma-separated.", valueName: "list"))
        var batches = "16,64,256"

        @Option(name: .long, help: "Untimed steps per batch size before timing (at least 2; the loss must fall below the first step's).")
        var warmup = 5

        @Option(name: .long, help: "Timed steps per batch size; the median is reported.")
        var steps = 10

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Also write the results as CSV to this file (one row per batch size).",
                valueName: "file"))
        var csv: String?

        func parsedBatches() throws -> [Int] {
            let parts = batches.split(separator: ",", omittingEmptySubsequences: false)
            let values = parts.map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw ValidationError("--batches must be a comma-separated list of positive integers, got '\(batches)'")
            }
            return Array(Set(values.map { $0! })).sorted()
        }

        func validate() throws {
            _ = try parsedBatches()
            guard warmup >= 2 else { throw ValidationError("--warmup must be at least 2, got \(warmup)") }
            guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
            guard ModelSpec.builtinNames.contains(model) else {
                throw ValidationError("unknown model '\(model)'; hint: known models are \(ModelSpec.builtinNames.joined(separator: ", "))")
            }
        }

        func run() throws {
            try Bench.requireReleaseBuild()
            let sizes = try parsedBatches()
            let spec = try ModelSpec.builtin(model, inputShape: [1, 28, 28], classes: 10)
            let startRSS = TrainingBenchmark.peakResidentBytes()
            let peak = KernelBenchmark.measurePeak()
            var built = try spec.build()
            let f = TrainingBenchmark.flops(of: built)
            print("model \(model) (\(built.arena.parameterCount) parameters), synthetic 1x28x28 input, 10 classes, Adam, 1 thread")
            print("kernels: \(KernelPath.current) (set \(KernelPath.environmentVariable) to choose)")
            print(String(format: "peak (the FMA loop of that path, 1 core): %.1f GFLOP/s", peak))
            print(
                String(
                    format: "FLOP per training sample: forward %.2f M + weight gradients %.2f M + input gradients %.2f M = %.2f MFLOP",
                    f.forward / 1e6, f.weightGradient / 1e6, f.inputGradient / 1e6, f.total / 1e6)
                    + (f.skippedInputGradient > 0
                        ? String(format: " (first conv's input gradient, %.2f MFLOP, skipped)", f.skippedInputGradient / 1e6) : ""))
            print(String(format: "peak RSS before the model was built: %.1f MB", Double(startRSS) / 1e6))
            print("")
            let header =
                pad("batch", 6, right: true) + pad("samples/s", 11, right: true) + pad("step", 11, right: true)
                + pad("wall step", 11, right: true) + pad("GFLOP/s", 9, right: true) + pad("%peak", 7, right: true)
                + pad("peak RSS", 10, right: true)
            print(header)
            var rows = ["model,batch,samples_per_second,step_seconds,wall_step_seconds,mflop_per_sample,gflops,percent_of_peak,peak_rss_mb"]
            for batch in sizes {
                // A fresh model per batch size, so every size starts from the same parameters.
                built = try spec.build()
                let r = try TrainingBenchmark.run(model: &built, classes: 10, batch: batch, warmup: warmup, steps: steps)
                let gflops = f.total * r.samplesPerSecond / 1e9
                let rssMB = Double(r.peakResidentBytes) / 1e6
                let line =
                    pad("\(batch)", 6, right: true) + pad(String(format: "%.1f", r.samplesPerSecond), 11, right: true)
                    + pad(formatTime(r.stepSeconds), 11, right: true) + pad(formatTime(r.wallStepSeconds), 11, right: true)
                    + pad(String(format: "%.1f", gflops), 9, right: true)
                    + pad(String(format: "%.1f%%", 100 * gflops / peak), 7, right: true)
                    + pad(String(format: "%.0f MB", rssMB), 10, right: true)
                print(line)
                rows.append(
                    [
                        model, "\(batch)", "\(r.samplesPerSecond)", "\(r.stepSeconds)", "\(r.wallStepSeconds)",
                        "\(f.total / 1e6)", "\(gflops)", "\(100 * gflops / peak)", "\(rssMB)"
                    ]
                    .joined(separator: ","))
            }
            print("peak RSS on a row: the process's peak after that batch size (sizes run in ascending order)")
            if let csv {
                try BenchOutput.writeCSV(rows, to: csv)
                print("wrote \(csv)")
            }
        }
    }
}
