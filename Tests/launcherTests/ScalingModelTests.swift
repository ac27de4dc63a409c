import Foundation
import XCTest

/// `scripts/scaling-model.py report` on a folder of outputs made from known link and compute
/// figures: the fit recovers the links, and validation points that follow the model's equations
/// are predicted exactly (the measuring half, `measure`, needs root and minutes; the simulated
/// cluster's own tests cover what it runs).
final class ScalingModelTests: XCTestCase {
    /// The links the outputs are made from: a round's latency for a small and for a big bucket, seconds a byte.
    struct Link { let rate: String, alpha: Double, alphaBig: Double, beta: Double }
    let links = [
        Link(rate: "200mbit", alpha: 22e-6, alphaBig: 7e-3, beta: 41e-9),
        Link(rate: "1gbit", alpha: 20e-6, alphaBig: 0.8e-3, beta: 8.5e-9)
    ]
    let buckets = [11_280, 3_211_264, 52_096]  // fmnist-cnn's, in reduction order
    let batch = 64, oneRankStep = 0.080, gamma = 1.2e-9, eta = 0.3, cores = ProcessInfo.processInfo.activeProcessorCount
    let factorWidth = 4160, formedPerSample = 75e-6

    /// A `bench steps:` line as `ddp bench steps` prints it (the figures the model reads).
    func stepsLine(ranks: Int, step: Double, compute: Double, conversion: Double = 0, formed: Double? = nil) -> String {
        let factors =
            formed.map {
                String(
                    format: " (1 dense weight as factors: %d weight floats, %d floats a sample, formed in %.4f ms)",
                    buckets[1], factorWidth, $0 * 1000)
            } ?? ""
        return String(
            format: "bench steps: run fmnist-cnn, %d rank%@, global batch %d, reduction fast%@, 10 steps: 1.0 samples/s, "
                + "step %.4f ms | per step: compute %.4f ms (in MPI 0.00 ms), comm 0.00 ms, blocked 0.00 ms, hidden 0.00 ms (0%%), "
                + "fp16 conversion %.4f ms, cpu 0.00 ms | %d gradient floats in %d buckets (floats: %@) | median step %.4f ms, "
                + "median compute %.4f ms",
            ranks, ranks == 1 ? "" : "s", ranks * batch, factors, step * 1000, compute * 1000, conversion * 1000,
            buckets.reduce(0, +), buckets.count, buckets.map(String.init).joined(separator: " "), step * 1000, compute * 1000)
    }

    /// A ring round's latency for a piece of `bytes`: alphaBig from 256 KB up, in proportion below.
    func latency(_ bytes: Double, _ link: Link) -> Double {
        link.alpha + (link.alphaBig - link.alpha) * min(1, bytes / Double(256 << 10))
    }

    /// The reducer's ring allreduce as the model states it.
    func allreduce(_ p: Int, _ floats: [Int], _ link: Link, width: Int) -> Double {
        let rounds = floats.reduce(0.0) { $0 + Double(2 * (p - 1)) * latency(Double($1 * width) / Double(p), link) }
        return rounds + Double(2 * (p - 1)) / Double(p) * Double(floats.reduce(0, +) * width) * link.beta
    }

    /// The step the model predicts for `hosts` simulated hosts sharing this machine's cores.
    func step(hosts: Int, link: Link, fp16: Bool, factors: Bool) -> Double {
        let share = Double((hosts + cores - 1) / cores)
        var compute = oneRankStep * share, comm: Double, floats = buckets
        if factors {
            floats.remove(at: 1)
            let part = batch * factorWidth * 4
            comm =
                allreduce(hosts, floats, link, width: fp16 ? 2 : 4)
                + Double(hosts - 1) * (latency(Double(part), link) + Double(part) * link.beta)
            compute += Double(hosts * batch) * formedPerSample * share
        } else {
            comm = allreduce(hosts, floats, link, width: fp16 ? 2 : 4)
        }
        let conversion = fp16 ? gamma * Double(floats.reduce(0, +)) : 0
        return compute + conversion + max(0, comm - eta * oneRankStep * share)
    }

    func testReportRecoversTheLinksAndPredictsPointsMadeByItsOwnEquations() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw XCTSkip("no /usr/bin/python3") }
        let dir = InferenceFixtures.makeDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ text: String) throws { try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
        try write("compute-fmnist-cnn.txt", stepsLine(ranks: 1, step: oneRankStep, compute: 0.076) + "\n")
        try write("conversion-fmnist-cnn.txt", stepsLine(ranks: 2, step: 0.1, compute: 0.076, conversion: gamma * 3_274_640) + "\n")
        try write("factors-fmnist-cnn.txt", stepsLine(ranks: 2, step: 0.1, compute: 0.076, formed: 2 * Double(batch) * formedPerSample) + "\n")
        for link in links {
            for hosts in 2 ... 4 {
                // bench allreduce: 4 KB in one bucket (latency only), 1 and 4 MB in one, 16 MB in four.
                var csv = "ranks,bytes,buckets,plain_ms,reducer_ms,fp16_ms\n"
                for (bytes, k) in [(4096, 1), (1 << 20, 1), (4 << 20, 1), (16 << 20, 4)] {
                    let t =
                        bytes == 4096
                        ? Double(2 * (hosts - 1)) * link.alpha
                        : Double(k * 2 * (hosts - 1)) * link.alphaBig + Double(2 * (hosts - 1)) / Double(hosts) * Double(bytes) * link.beta
                    csv += "\(hosts),\(bytes),\(k),0,\(t * 1000),0\n"
                }
                try write("allreduce-\(link.rate)\(hosts == 2 ? "" : "-\(hosts)hosts").csv", csv)
                for (comp, fp16, factors) in [("none", false, false), ("fp16", true, false), ("none-factors", false, true), ("fp16-factors", true, true)] {
                    let tag = "\(link.rate)-\(hosts)-\(comp)"
                    try write("before-\(tag).txt", stepsLine(ranks: 1, step: oneRankStep, compute: 0.076) + "\n")
                    let t = step(hosts: hosts, link: link, fp16: fp16, factors: factors)
                    try write("validate-\(tag).txt", stepsLine(ranks: hosts, step: t, compute: 0.076) + "\n")
                }
            }
        }
        let script = DDPProcess.packageRoot.appendingPathComponent("scripts/scaling-model.py").path
        let r = try DDPProcess.run(["/usr/bin/python3", script, "report", dir], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(
            r.stdout.contains("link 1gbit: alpha 20.0 us a round (4 KB), 0.80 ms a round of a piece of 256 KB or more; beta 8.500 ns/byte"),
            r.stdout)
        XCTAssertTrue(
            r.stdout.contains("link 200mbit: alpha 22.0 us a round (4 KB), 7.00 ms a round of a piece of 256 KB or more; beta 41.000 ns/byte"),
            r.stdout)
        XCTAssertTrue(r.stdout.contains("backward hides up to 0.30 x the step's compute"), r.stdout)
        XCTAssertTrue(r.stdout.contains("worst error over the 23 validation points 0.0%, 23 of 23 within 15%"), r.stdout)
        let validation = try String(contentsOfFile: "\(dir)/validation.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(validation.count, 25, "a header and 24 points")
        // The cluster predictions: one core per rank, every rank count and rate, both models' variants.
        let predictions = try String(contentsOfFile: "\(dir)/predictions.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(predictions.count, 1 + 5 * 9 * 4, "fp32 with and without overlap, fp16, and both with dense factors")
        // 2 ranks on 10 Gbit/s links at the efficiency TCP reached at the lowest rate, round latencies of the fastest.
        let row = try XCTUnwrap(predictions.first { $0.hasPrefix("fmnist-cnn,\"fp32, overlap\",2,10,") }, "\(predictions)")
        let ten = Link(rate: "10gbit", alpha: links[1].alpha, alphaBig: links[1].alphaBig, beta: 8 / 10e9 / ((8 / 200e6) / links[0].beta))
        let expected = oneRankStep / (oneRankStep + max(0, allreduce(2, buckets, ten, width: 4) - eta * oneRankStep))
        XCTAssertEqual(Double(row.split(separator: ",").last.map(String.init) ?? "") ?? 0, expected, accuracy: 1e-4, String(row))
    }
}
