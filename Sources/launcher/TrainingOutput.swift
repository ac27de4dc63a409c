import Dist
import Foundation
import NN

#if canImport(Glibc)
    import Glibc
#endif

/// What `ddp train` prints and logs on rank 0: a description of the run, a progress bar on a
/// terminal (plain lines otherwise) and one table line per epoch (the metrics JSON lines are
/// Dist's `MetricsLog` callback).
/// Every method does nothing on other ranks.
final class TrainingOutput {
    let isRoot: Bool
    /// Whether stdout is a terminal (a bar redrawn in place) or a log (plain lines).
    let terminal: Bool
    let epochs: Int
    private var lastDraw = Date.distantPast
    private var barShown = false

    init(isRoot: Bool, epochs: Int) {
        self.isRoot = isRoot
        self.epochs = epochs
        terminal = TrainingOutput.progressOnTerminal()
    }

    /// The environment variable that chooses the progress style: `bar` or `lines`.
    static let progressVariable = "DDP_PROGRESS"

    /// Whether to draw a bar. Under mpirun a rank's stdout is a pseudo-terminal even when mpirun's
    /// own output goes to a file, so ranks follow `DDP_PROGRESS`, which `--np` sets from the
    /// launching process's stdout; without it, a rank under a launcher prints plain lines.
    static func progressOnTerminal() -> Bool {
        if let style = ProcessInfo.processInfo.environment[progressVariable] { return style == "bar" }
        return MPIRelaunch.launcherSize() == nil && isatty(STDOUT_FILENO) == 1
    }

    /// Records this process's stdout kind for the ranks `--np` is about to start (unless set).
    static func exportProgressStyle() {
        setenv(progressVariable, isatty(STDOUT_FILENO) == 1 ? "bar" : "lines", 0)
    }

    /// One plain line (after clearing a progress bar).
    func line(_ text: String) {
        guard isRoot else { return }
        if barShown {
            print("\r\u{1B}[K", terminator: "")
            barShown = false
        }
        printLine(text)
    }

    /// The data, model and optimizer of the run.
    func describe(
        spec: ModelSpec, optimizer: Optimizer, schedule: LearningRateSchedule?, train: Dataset,
        validation: Dataset?, test: Dataset?, batchSize: Int, accumulate: Int
    ) {
        var data = "data: \(train.count) training samples of shape \(train.sampleShape), \(train.classCount) classes"
        if let validation { data += ", \(validation.count) validation" }
        if let test { data += ", \(test.count) test" }
        line(data)
        line(
            "optimizer: \(optimizer.summary), lr \(schedule.map(\.description) ?? "\(optimizer.learningRate)")"
                + (accumulate > 1 ? ", \(accumulate) micro-batches of \(batchSize) per step (\(accumulate * batchSize) samples)" : ""))
    }

    /// Prints one trainer event.
    func handle(_ event: TrainingEvent, modelName: String, batchSize: Int, accumulate: Int, monitor: MonitoredMetric, patience: Int?) {
        guard isRoot else { return }
        switch event {
        case let .ready(parameters, fingerprint, ranks, steps):
            let per = batchSize / ranks
            line(
                "train: model \(modelName), \(parameters) parameters, \(ranks) rank\(ranks == 1 ? "" : "s"), global batch \(batchSize) (\(per)\(batchSize % ranks == 0 ? "" : "-\(per + 1)") per rank), \(steps) steps/epoch; replicas verified (fingerprint \(String(fingerprint, radix: 16)))"
            )
        case let .resumed(position):
            line("continuing at epoch \(position.epoch + 1), step \(position.stepInEpoch + 1)")
        case let .progress(p):
            progress(p)
        case let .epoch(m):
            line(TrainingOutput.epochLine(m, epochs: epochs))
        case let .checkpoint(path):
            line("checkpoint: \(path)")
        case let .stoppedEarly(epoch, best):
            line(
                String(
                    format: "early stopping after epoch %d: %@ has not improved for %d epochs (best %.4f)",
                    epoch + 1, monitor.rawValue, patience ?? 0, best))
        case let .finished(m):
            if let loss = m.testLoss, let accuracy = m.testAccuracy {
                line(String(format: "test: loss %.4f acc %.4f (%d samples) after %d steps", loss, accuracy, m.testSamples ?? 0, m.step))
            }
        }
    }

    /// `epoch 3/10: train loss 0.3012 acc 0.8911 | val loss … | lr 1.00e-03 | 5123 samples/s | 11.7 s`.
    static func epochLine(_ m: EpochMetrics, epochs: Int) -> String {
        var text = String(format: "epoch %d: train loss %.4f acc %.4f (%d samples)", m.epoch + 1, m.trainLoss, m.trainAccuracy, m.trainSamples)
        if let l = m.validationLoss, let a = m.validationAccuracy {
            text += String(format: " | val loss %.4f acc %.4f", l, a)
        }
        text += String(format: " | lr %.3g | %.0f samples/s | %.1f s", m.learningRate, m.samplesPerSecond, m.seconds)
        return text
    }

    /// A bar redrawn at most 10 times a second on a terminal; plain lines otherwise.
    private func progress(_ p: StepProgress) {
        let text = String(
            format: "epoch %d/%d step %d/%d loss %.4f acc %.3f lr %.3g %.0f samples/s ETA %@",
            p.epoch + 1, epochs, p.step, p.steps, p.loss, p.accuracy, p.learningRate, p.samplesPerSecond,
            TrainingOutput.duration(p.secondsLeft))
        guard terminal else { return printLine(text) }
        let now = Date()
        guard p.step == p.steps || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let width = 24, done = width * p.step / max(p.steps, 1)
        print("\r\u{1B}[K[" + String(repeating: "#", count: done) + String(repeating: ".", count: width - done) + "] " + text, terminator: "")
        fflush(stdout)
        barShown = true
    }

    /// `1:05` or `1:02:03`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.isFinite ? max(seconds, 0).rounded() : 0)
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
