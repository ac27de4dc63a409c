import Dist
import NN

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What `ddp bench steps` times: whole data-parallel training steps of the real trainer (forward,
/// backward with buckets started and polled between layers, reduction, optimizer step), and where
/// each step's time goes.
///
/// A collective: every rank calls `run` with the same arguments.
public enum StepBenchmark {
    /// Per-step figures: rank means of this job's timed steps, and the slowest rank's wall time.
    public struct Figures {
        /// Wall-clock seconds of all timed steps on the slowest rank.
        public var wallSeconds = 0.0
        /// Forward + backward.
        public var computeSeconds = 0.0
        /// The first bucket's start to the last bucket's observed completion (fast mode).
        public var commSeconds = 0.0
        /// Waiting for the reductions after backward (deterministic mode: for the sums).
        public var blockedSeconds = 0.0
        /// Communication overlapped with backward (fast mode).
        public var hiddenSeconds = 0.0
        /// fp16 conversions (fast mode) or the integer accumulation (deterministic mode).
        public var conversionSeconds = 0.0
        /// Inside the MPI calls that start and poll the buckets during backward (fast mode).
        public var mpiCallSeconds = 0.0
        /// The process's CPU time (all of its threads).
        public var cpuSeconds = 0.0
        /// Deterministic mode: timed steps computed twice (scales that did not fit; every rank redoes
        /// the same steps).
        public var redoneSteps = 0
        /// Several ranks: buckets whose dense weight was formed from gathered factors (deterministic
        /// mode, per attempt; fast mode with `--dense-factors`).
        public var factorBuckets = 0
        /// Fast mode with `--dense-factors`: seconds a step spent forming the weights' gradients
        /// from the gathered factors (rank mean).
        public var factorSeconds = 0.0
        /// The median over the timed steps of a step's wall time (each step's slowest rank): less
        /// moved than the mean by a step that other work on a shared machine delayed.
        public var medianStepSeconds = 0.0
        /// The median over the timed steps of forward + backward (each step's rank mean).
        public var medianComputeSeconds = 0.0
    }

    /// Runs `warmup` untimed then `steps` timed steps of `trainer` on `data`, batches drawn by a
    /// sampler of `globalBatch` samples (seed 1).
    ///
    /// - Parameters:
    ///   - trainer: a trainer whose replicas are synchronized.
    ///   - data: the training set (the same on every rank).
    ///   - globalBatch: samples per step over all ranks.
    ///   - warmup: untimed steps first.
    ///   - steps: timed steps (> 0).
    ///   - beforeTimedSteps: runs on every rank after the warm-up, before the clock starts (e.g.
    ///     to attach a timeline).
    /// - Returns: the figures, the same on every rank.
    /// - Throws: `DistError` from the reduction or a collective.
    public static func run(
        trainer: DataParallelTrainer, data: Dataset, globalBatch: Int, warmup: Int, steps: Int,
        beforeTimedSteps: () throws -> Void = {}
    ) throws -> Figures {
        let communicator = trainer.communicator
        let sampler = DistributedSampler(datasetCount: data.count, globalBatchSize: globalBatch, seed: 1)
        // Per timed step: compute, comm, blocked, hidden, conversion, in MPI, process CPU (seconds, this rank).
        var sums = [Double](repeating: 0, count: 8)
        // Per timed step: its wall time and its compute (seconds, this rank).
        var stepWalls = [Double](repeating: 0, count: steps), stepComputes = [Double](repeating: 0, count: steps)
        var wallStart: UInt64 = 0
        var redone = 0, factorBuckets = 0
        for k in 0 ..< warmup + steps {
            if k == warmup {
                try communicator.barrier()
                try beforeTimedSteps()
                wallStart = Timeline.now()
            }
            let epoch = k / sampler.stepsPerEpoch, step = k % sampler.stepsPerEpoch
            let order = sampler.permutation(epoch: epoch)
            let batch = sampler.globalBatch(step: step, order: order)
            let start = Timeline.now(), cpuStart = processCPUSeconds()
            _ = try trainer.computeGradients(globalBatch: batch, epoch: epoch, dataset: data)
            let computed = Timeline.now()
            try trainer.reduceGradients(globalBatchSize: batch.count, scalingInUpdate: true)
            try trainer.applyUpdate()
            guard k >= warmup else { continue }
            stepWalls[k - warmup] = Timeline.seconds(since: start)
            stepComputes[k - warmup] = Timeline.seconds(since: start, until: computed)
            sums[0] += stepComputes[k - warmup]
            if let exact = trainer.ddp.exactReducer?.lastStep {
                sums[2] += exact.blockedSeconds
                sums[4] += exact.accumulateSeconds
                redone += exact.attempts - 1
                factorBuckets = max(factorBuckets, exact.factorBuckets / max(exact.attempts, 1))
            } else {
                let s = trainer.ddp.reducer.lastStep
                sums[1] += s.communicationSeconds
                sums[2] += s.blockedSeconds
                sums[3] += s.hiddenSeconds
                sums[4] += s.conversionSeconds
                sums[5] += s.mpiCallSeconds
                factorBuckets = max(factorBuckets, s.factorBuckets)
                sums[7] += s.factorSeconds
            }
            sums[6] += processCPUSeconds() - cpuStart
        }
        try communicator.barrier()
        // Rank means of the per-step figures; the wall time is the slowest rank's.
        var walls = [Timeline.seconds(since: wallStart)]
        try communicator.allreduce(&walls, op: .max)
        try communicator.allreduce(&sums, op: .sum)
        try communicator.allreduce(&stepWalls, op: .max)
        try communicator.allreduce(&stepComputes, op: .sum)
        let n = Double(steps * communicator.size)
        return Figures(
            wallSeconds: walls[0], computeSeconds: sums[0] / n, commSeconds: sums[1] / n, blockedSeconds: sums[2] / n,
            hiddenSeconds: sums[3] / n, conversionSeconds: sums[4] / n, mpiCallSeconds: sums[5] / n,
            cpuSeconds: sums[6] / n, redoneSteps: redone, factorBuckets: factorBuckets,
            factorSeconds: sums[7] / n, medianStepSeconds: median(stepWalls),
            medianComputeSeconds: median(stepComputes) / Double(communicator.size))
    }

    /// The middle value (the mean of the middle two for an even count).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), n = sorted.count
        guard n > 0 else { return 0 }
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    /// CPU time of the whole process (every thread), in seconds.
    public static func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
