import Dist
import NN

/// What `ddp bench allreduce` times: for one gradient size, a plain in-place allreduce of the
/// whole buffer, and the trainer's `GradientReducer` (buckets, then the mean) in float32 and in
/// fp16, each validated on every rank before it is timed.
///
/// A collective: every rank calls `run` with the same arguments. Times are the slowest rank's, the
/// median over the timed runs.
public enum AllreduceBenchmark {
    /// The figures of one size.
    public struct Result {
        /// Ranks in the job.
        public var ranks: Int
        /// Bytes reduced (float32).
        public var bytes: Int
        /// Buckets the reducer split the gradients into.
        public var buckets: Int
        /// Median seconds of the plain allreduce, the float32 reducer and the fp16 reducer.
        public var plain: Double, reducer: Double, fp16: Double
    }

    /// Validates, warms up and times the three reductions of `bytes` bytes of gradients, split
    /// into `tensors` tensors (the arena of a model with that many parameter tensors).
    ///
    /// - Parameters:
    ///   - communicator: the ranks.
    ///   - bytes: the gradients' size in bytes (at least 4).
    ///   - tensors: parameter tensors the gradients are split into.
    ///   - bucketCapacity: the reducer's bucket size in floats.
    ///   - warmup: untimed runs first.
    ///   - repeats: timed runs; the median counts.
    /// - Returns: the figures, the same on every rank.
    /// - Throws: `DistError.selftestFailed` when a reduction gives a wrong sum; `DistError.mpi`.
    public static func run(
        _ communicator: Communicator, bytes: Int, tensors: Int, bucketCapacity: Int,
        warmup: Int, repeats: Int
    ) throws -> Result {
        let p = communicator.size
        let floats = max(1, bytes / 4)
        let per = max(1, floats / tensors)
        let shapes = (0 ..< tensors).map { i in [i == tensors - 1 ? floats - per * (tensors - 1) : per] }.filter { $0[0] > 0 }
        let arena = ParameterArena(tensors: shapes.enumerated().map { ("\($0.offset).bench.weight", $0.element, true) })
        let fill = { for i in 0 ..< arena.count { arena.gradients[i] = Float(communicator.rank + 1) } }
        let expected = Float(p + 1) / 2  // mean over B = P of rank + 1

        var plain = [Float](repeating: Float(communicator.rank + 1), count: floats)
        try communicator.allreduce(&plain, op: .sum)
        guard plain.allSatisfy({ $0 == Float(p * (p + 1) / 2) }) else {
            throw DistError.selftestFailed("bench allreduce: plain sum of \(floats) floats is wrong")
        }
        let plainTime = try time(communicator, warmup: warmup, repeats: repeats) {
        } body: {
            try plain.withUnsafeMutableBufferPointer { try communicator.allreduce($0, op: .sum) }
        }

        var reducerTimes: [Double] = [], buckets = 0
        for compression in GradientCompression.allCases {
            let reducer = GradientReducer(arena: arena, communicator: communicator, bucketCapacity: bucketCapacity, compression: compression)
            fill()
            try reducer.reduce(globalBatchSize: p)
            if let i = (0 ..< arena.count).first(where: { abs(arena.gradients[$0] - expected) > 1e-6 * expected }) {
                throw DistError.selftestFailed("bench allreduce: reducer (\(compression)) gave \(arena.gradients[i]) at \(i), expected \(expected)")
            }
            reducerTimes.append(try time(communicator, warmup: warmup, repeats: repeats, setUp: fill) { try reducer.reduce(globalBatchSize: p) })
            buckets = reducer.buckets.count
        }
        return Result(ranks: p, bytes: floats * 4, buckets: buckets, plain: plainTime, reducer: reducerTimes[0], fp16: reducerTimes[1])
    }

    /// The median over `repeats` runs of the slowest rank's time of `body`, after `warmup` runs;
    /// `setUp` runs untimed before each.
    static func time(
        _ communicator: Communicator, warmup: Int, repeats: Int, setUp: () -> Void,
        body: () throws -> Void
    ) throws -> Double {
        for _ in 0 ..< warmup {
            setUp()
            try body()
        }
        var times: [Double] = []
        for _ in 0 ..< repeats {
            setUp()
            try communicator.barrier()
            let start = Timeline.now()
            try body()
            times.append(Timeline.seconds(since: start))
        }
        try communicator.allreduce(&times, op: .max)
        return times.sorted()[times.count / 2]
    }
}
