/// What a rank that waited too long in a collective learned about the others, and the message it
/// prints (the stall inspector of `MPICommunicator`, after Horovod's).
///
/// Every collective a rank starts gets the next number of a count every rank keeps alike (all
/// ranks start the same collectives in the same order), so "rank 1 last started collective 41
/// while rank 0 waits in 42" says who is missing without any clock.
public struct StallReport: Equatable {
    /// Where one rank is, as it answered the inspector's query.
    public struct Position: Equatable {
        /// The number of the newest collective the rank started (0: none yet).
        public var started: Int
        /// The collective it is waiting in now, if any.
        public var waiting: Int?
        /// What that is, e.g. `gradient reduction of epoch 1 step 4`.
        public var label: String

        public init(started: Int, waiting: Int?, label: String) {
            self.started = started
            self.waiting = waiting
            self.label = label
        }
    }

    /// The rank that waited.
    public var rank: Int
    /// The number of ranks.
    public var size: Int
    /// The collective it waits in.
    public var collective: Int
    /// What that collective is (`gradient reduction of epoch 1 step 4`).
    public var label: String
    /// Seconds it waited.
    public var waited: Double
    /// Each other rank's answer, nil for ranks that did not answer.
    public var answers: [Int: Position?]

    public init(rank: Int, size: Int, collective: Int, label: String, waited: Double, answers: [Int: Position?]) {
        self.rank = rank
        self.size = size
        self.collective = collective
        self.label = label
        self.waited = waited
        self.answers = answers
    }

    /// The ranks that have not joined this collective: no answer (busy outside any collective, or
    /// hung), an older collective, or another collective of the same number (ranks that took
    /// different paths).
    public var missing: [Int] {
        answers.keys.sorted().filter { r in
            guard let answer = answers[r], let position = answer else { return true }
            return position.started < collective || (position.waiting == collective && position.label != label)
        }
    }

    /// The message: who waited where, who is missing and where each of those is.
    public var description: String {
        let seconds = (waited * 10).rounded() / 10
        var parts: [String] = []
        for r in missing {
            guard let answer = answers[r], let position = answer else {
                parts.append("rank \(r) did not answer (busy outside any collective, or hung)")
                continue
            }
            if position.waiting == collective {
                parts.append("rank \(r) waits in collective #\(collective) as \(position.label) instead")
            } else if let waiting = position.waiting {
                parts.append("rank \(r) waits in collective #\(waiting) (\(position.label))")
            } else {
                parts.append("rank \(r) last started collective #\(position.started)\(position.label.isEmpty ? "" : " (\(position.label))") and is computing")
            }
        }
        let list = missing.map(String.init).joined(separator: ", ")
        return
            "stall: rank \(rank) waited \(seconds) s in the \(label) (collective #\(collective)); rank\(missing.count == 1 ? "" : "s") \(list) of \(size) missing: \(parts.joined(separator: "; "))"
    }
}
