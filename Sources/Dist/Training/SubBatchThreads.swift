import Foundation
import NN

/// One sub-batch's share of a rank's step when the rank computes with several threads
/// (`TrainingConfiguration.threads`): its own copy of the layers (own activations and caches), a
/// gradient buffer of its own over the replica's parameters, and its own batch buffers.
final class SubBatchWorker {
    /// The replica's layers over the shared parameters, with gradients of the worker's own.
    var model: Sequential
    var batch = Tensor.empty, labels: [Int32] = [], keys: [UInt64] = [], scratch: [Float] = []
    var gradLogits = Tensor.empty
    var totals = BatchTotals()

    init(model: Sequential) {
        self.model = Sequential(sharingParametersOf: model)
    }
}

extension DataParallelTrainer {
    /// Fast mode on several threads: this rank's slice cut into `threads` contiguous sub-batches,
    /// each run forward and backward on its own thread (`SubBatchWorker`), then their gradients
    /// added into the arena in sub-batch order (the same bits for a given T, whatever the thread
    /// schedule). The buckets start once the sum is complete; no MPI call is made from a worker.
    ///
    /// - Throws: `DistError.mpi` when the buckets' reductions cannot start.
    func computeGradientsOnThreads(_ indices: [Int], epoch: Int, dataset: Dataset, accumulating: Bool, final: Bool) throws -> BatchTotals {
        let parts = min(configuration.threads, indices.count)
        while subBatchWorkers.count < parts { subBatchWorkers.append(SubBatchWorker(model: model)) }
        let workers = Array(subBatchWorkers.prefix(parts))
        let start = Timeline.now()
        DispatchQueue.concurrentPerform(iterations: parts) { t in
            let mine = DistributedSampler.slice(count: indices.count, rank: t, size: parts)
            run(workers[t], indices: indices[mine], epoch: epoch, dataset: dataset)
        }
        // arena (+)= Σ_t worker t, in t order, each thread summing its own stretch of the arena.
        let arena = model.arena, count = arena.count
        DispatchQueue.concurrentPerform(iterations: parts) { t in
            let stretch = DistributedSampler.blockSlice(of: 0 ..< count, rank: t, size: parts)
            let lower = stretch.lowerBound, upper = stretch.upperBound
            guard lower < upper else { return }
            let total = arena.gradients + lower
            if !accumulating { total.update(from: workers[0].model.arena.gradients + lower, count: upper - lower) }
            for w in workers.indices where accumulating || w > 0 {
                let g = workers[w].model.arena.gradients + lower
                for i in 0 ..< upper - lower { total[i] += g[i] }
            }
        }
        timeline?.record("forward and backward on \(parts) threads", lane: .compute, from: start, to: Timeline.now())
        if final {
            try ddp.reducer.gradientsFinal(from: 0)
        }
        var totals = BatchTotals()
        for w in workers { totals += w.totals }
        return totals
    }

    /// One sub-batch, forward, loss and backward, on the calling thread (into the worker's buffers).
    private func run(_ worker: SubBatchWorker, indices: ArraySlice<Int>, epoch: Int, dataset: Dataset) {
        worker.model.arena.zeroGradients()
        worker.totals = BatchTotals()
        guard !indices.isEmpty else { return }
        // The first layer still holds the last batch: let go of it, so the batch is refilled in place.
        worker.model.releaseInputs()
        fillTrainingBatch(
            Array(indices), epoch: epoch, dataset: dataset, into: &worker.batch, labels: &worker.labels,
            keys: &worker.keys, scratch: &worker.scratch)
        let context = ForwardContext(training: true, sampleKeys: worker.keys)
        let x = worker.model.forward(worker.batch, context: context)
        let lossSum = loss.evaluate(logits: x, labels: worker.labels, gradient: &worker.gradLogits)
        worker.model.backward(worker.gradLogits)
        worker.totals = BatchTotals(lossSum: lossSum, correct: Metrics.correctPredictions(logits: x, labels: worker.labels), count: indices.count)
    }
}
