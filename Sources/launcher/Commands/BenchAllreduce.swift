import ArgumentParser
import Benchmarks
import Dist
import Foundation
import NN

/// `ddp bench allreduce`: the trainer's gradient reducer (float32 and fp16 buckets) against a
/// plain blocking allreduce of the same float32 bytes, across message sizes.
struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the gradient reducer (float32 and fp16) against a plain MPI_Allreduce of the same bytes.",
        discussion: """
            For each size S (bytes of float32 gradients), every rank builds an arena of --tensors equal \
            tensors totalling S, then times: plain, one MPI_Allreduce of S bytes; reducer, \
            GradientReducer.reduce (buckets of --bucket-mb started non-blocking, waited, scaled by 1/B); \
            fp16, the same with --compression fp16 (S/2 bytes on the wire, conversions included). \
            Each result is checked first, then timed --repeats times after --warmup runs, with a \
            barrier before each; a run's time is the slowest rank's. Prints the median and the \
            algorithm bandwidth S / time (GB/s, 1e9 bytes). A benchmark, not a test.
            """)

    @OptionGroup(title: "Launch") var launch: LaunchOptions

    @Option(help: ArgumentHelp("Comma-separated message sizes in bytes of float32 (suffixes K, M = 2^10, 2^20).", valueName: "list"))
    var sizes = "4K,64K,1M,4M,16M,64M"

    @Option(help: "Equal tensors the gradient arena is cut into (the reducer fuses them into buckets).")
    var tensors = 8

    @Option(name: .customLong("bucket-mb"), help: "Megabytes of float32 gradients per reducer bucket.")
    var bucketMegabytes = CommOptions.defaultBucketMegabytes

    @Option(help: "Timed runs per size and method (the median is reported).")
    var repeats = 10

    @Option(help: "Untimed runs before timing.")
    var warmup = 2

    @Option(help: ArgumentHelp("Also write the table as CSV to this file (rank 0).", valueName: "file"))
    var csv: String?

    /// `--sizes` in bytes.
    var parsedSizes: [Int]? {
        let items = sizes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
        let values = items.map { item -> Int? in
            var digits = Substring(item), unit = 1
            if item.hasSuffix("K") {
                unit = 1 << 10
                digits = digits.dropLast()
            }
            if item.hasSuffix("M") {
                unit = 1 << 20
                digits = digits.dropLast()
            }
            return Int(digits).map { $0 * unit }
        }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 4 }) else { return nil }
        return values.map { $0! }
    }

    func validate() throws {
        guard parsedSizes != nil else { throw ValidationError("--sizes must list byte counts of at least 4 (e.g. 4K,1M), got '\(sizes)'") }
        guard tensors > 0 else { throw ValidationError("--tensors must be positive, got \(tensors)") }
        guard bucketMegabytes > 0 else { throw ValidationError("--bucket-mb must be positive, got \(bucketMegabytes)") }
        guard repeats > 0 else { throw ValidationError("--repeats must be positive, got \(repeats)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be non-negative, got \(warmup)") }
    }

    func run() throws {
        try launch.relaunchIfRequested()
        RankSession.runUnderMPI { communicator in
            let p = communicator.size
            let bucketCapacity = max(1, Int(bucketMegabytes * 1_048_576 / 4))
            var rows: [AllreduceBenchRow] = []
            if communicator.isRoot {
                printLine(
                    "bench allreduce: \(p) rank\(p == 1 ? "" : "s") on \(ProcessInfo.processInfo.activeProcessorCount) cores\(p > ProcessInfo.processInfo.activeProcessorCount ? " (oversubscribed)" : ""), \(tensors) tensors, buckets of \(bucketMegabytes) MB, median of \(repeats) after \(warmup) warm-up; GB/s = float32 bytes / time"
                )
                printLine(AllreduceBenchRow.header)
            }
            for bytes in parsedSizes! {
                let r = try AllreduceBenchmark.run(
                    communicator, bytes: bytes, tensors: tensors, bucketCapacity: bucketCapacity,
                    warmup: warmup, repeats: repeats)
                let row = AllreduceBenchRow(
                    ranks: r.ranks, bytes: r.bytes, buckets: r.buckets, plain: r.plain,
                    reducer: r.reducer, fp16: r.fp16)
                rows.append(row)
                if communicator.isRoot { printLine(row.line) }
            }
            if communicator.isRoot, let csv {
                let text = ([AllreduceBenchRow.csvHeader] + rows.map(\.csv)).joined(separator: "\n") + "\n"
                do { try text.write(toFile: csv, atomically: true, encoding: .utf8) } catch {
                    throw DistError.invalidConfiguration(option: "csv", reason: "cannot write \(csv): \(error.localizedDescription)")
                }
                printLine("csv: \(csv)")
            }
        }
    }
}

/// One size's figures.
struct AllreduceBenchRow {
    var ranks: Int
    var bytes: Int
    var buckets: Int
    var plain: Double
    var reducer: Double
    var fp16: Double

    static func gbps(_ bytes: Int, _ seconds: Double) -> Double { seconds > 0 ? Double(bytes) / seconds / 1e9 : 0 }

    static func size(_ bytes: Int) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MB" : bytes >= 1 << 10 && bytes % (1 << 10) == 0 ? "\(bytes >> 10) KB" : "\(bytes) B"
    }

    static let header = "size      buckets  plain ms   GB/s    reducer ms GB/s    fp16 ms    GB/s"

    var line: String {
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
        func ms(_ t: Double) -> String { String(format: "%.3f", t * 1000) }
        func bw(_ t: Double) -> String { String(format: "%.2f", AllreduceBenchRow.gbps(bytes, t)) }
        return pad(AllreduceBenchRow.size(bytes), 10) + pad("\(buckets)", 9) + pad(ms(plain), 11) + pad(bw(plain), 8)
            + pad(ms(reducer), 11) + pad(bw(reducer), 8) + pad(ms(fp16), 11) + bw(fp16)
    }

    static let csvHeader = "ranks,bytes,buckets,plain_ms,plain_gbps,reducer_ms,reducer_gbps,fp16_ms,fp16_gbps"

    var csv: String {
        [
            "\(ranks)", "\(bytes)", "\(buckets)",
            String(format: "%.4f", plain * 1000), String(format: "%.3f", AllreduceBenchRow.gbps(bytes, plain)),
            String(format: "%.4f", reducer * 1000), String(format: "%.3f", AllreduceBenchRow.gbps(bytes, reducer)),
            String(format: "%.4f", fp16 * 1000), String(format: "%.3f", AllreduceBenchRow.gbps(bytes, fp16))
        ].joined(separator: ",")
    }
}
