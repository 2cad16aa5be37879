import FleetModel

/// The application-wide request rate the scheduler learns from the API's refusals, and the
/// pacing of requests at that rate: additive increase, multiplicative decrease (AIMD), as TCP
/// learns a link's capacity.
///
/// A pure value on the schedule's time model (it never reads a clock); ``PollSchedule`` owns one.
///
/// Rules:
/// - Until the API limits the application (and without ``ceiling``) the rate is unknown and
///   requests are not paced: only `polling.max_concurrent_requests` bounds them.
/// - An application-wide refusal is one 429 whose error says the application's limit is
///   reached, or 429s for ``threshold`` different VINs within ``signalWindow`` that are also at
///   least 1 % of the answers in it (three refusals among thousands of answers are vehicles'
///   own limits, not the application's). A refusal that names the vehicle's limit never counts.
/// - It lowers the rate to 0.8 × itself. The first one of a run without a learned rate, when
///   fewer than half of the last ``measureWindow`` of requests were admitted (a start at full
///   speed far above the limit), sets 0.9 × the admitted rate instead, so that it lands next to
///   the limit in one step.
/// - Only refusals of requests sent after the last decrease count towards the next one: the
///   answers to requests sent at the old rate say nothing of the new one (one decrease per
///   round trip, as TCP).
/// - Each ``quietPeriod`` without any 429, while pacing held a due vehicle back (the rate is in
///   use), raises the rate by 1 % of the rate set at the last decrease (additive increase).
/// - The rate probes (+5 % of itself every ``probePeriod`` without a 429) after the first
///   decrease of a run without a learned rate, whose estimate comes from a second or two of
///   answers, and after ``probeAfter`` in use without a refusal (a rate restored from an earlier
///   run, or one a burst of refusals pushed far down); probing ends at the next decrease after a
///   probing step (as TCP's slow start ends at its first loss).
/// - The rate never exceeds ``ceiling`` (`polling.max_requests_per_second`) nor leaves
///   [``floor``, ``maximum``].
/// - Requests are paced: two releases are at least the *pacing gap* (1 / rate) apart, with a
///   jitter that only lengthens it (0–10 %), so that the rate is never exceeded.
public struct ApplicationRate: Sendable {
    /// The learned rate in requests per second, `nil` while the API never limited the application.
    public private(set) var learned: Double?
    /// `polling.max_requests_per_second`, or `nil`.
    public let ceiling: Double?
    /// 429s for this many different VINs within ``signalWindow`` mean the application's limit.
    public let threshold: Int
    /// The window in which refusals of different VINs add up to an application-wide signal.
    public static let signalWindow: Duration = .seconds(60)
    /// The window over which the admitted rate is measured at a decrease.
    public static let measureWindow: Duration = .seconds(10)
    /// The time without a 429 after which the rate is raised one step.
    public static let quietPeriod: Duration = .seconds(5)
    /// The quiet period while probing.
    public static let probePeriod: Duration = .seconds(2)
    /// A probing step, as a fraction of the current rate.
    public static let probeStep = 0.05
    /// Time in use without a refusal after which the rate probes again.
    public static let probeAfter: Duration = .seconds(180)
    /// The lowest rate: one request a minute.
    public static let floor = 1.0 / 60
    /// The highest rate: 100,000 requests/s (the highest `polling.max_requests_per_second`).
    public static let maximum = 100_000.0
    /// The factor of a decrease.
    public static let decrease = 0.8
    /// An increase step, as a fraction of the rate set at the last decrease.
    public static let increaseStep = 0.01
    /// The share of the answers in ``signalWindow`` that refusals must reach.
    public static let signalShare = 0.01

    /// The rate set at the last decrease, the unit of the additive increase.
    private var base: Double?
    private var recentRefusals: [(vin: VIN, at: Timestamp)] = []
    private var lastRefusal: Timestamp?
    private var lastChange: Timestamp?
    /// When the rate was last lowered: refusals of requests sent before do not count.
    private var lastDecrease: Timestamp?
    /// Since when the rate is in use without a refusal (for ``probeAfter``).
    private var quietSince: Timestamp?
    /// True when pacing held a due vehicle back since the last change.
    private var heldBack = false
    /// True while the rate probes upwards.
    public private(set) var probing = false
    /// True once a probing step raised the rate: the next decrease ends the probing.
    private var probed = false
    /// The earliest time the next request may be released, when pacing.
    public private(set) var nextRelease: Timestamp?
    /// Answers in the last ``signalWindow``, in one-second buckets.
    private var buckets: [Bucket] = []

    private struct Bucket: Sendable {
        var second: Int64
        var answers: Int
        var admitted: Int
    }

    /// - Parameters:
    ///   - ceiling: `polling.max_requests_per_second`; requests are paced at it until a lower
    ///     rate is learned.
    ///   - threshold: `polling.global_rate_limit_threshold`.
    ///   - learned: A rate learned by an earlier run (persisted), clamped to the ceiling and to
    ///     [``floor``, ``maximum``]; ignored when not a positive finite number.
    public init(ceiling: Double?, threshold: Int, learned: Double? = nil) {
        self.ceiling = ceiling.flatMap { $0 > 0 ? min($0, Self.maximum) : nil }
        self.threshold = max(1, threshold)
        if let learned, learned.isFinite, learned > 0 {
            self.learned = min(max(learned, Self.floor), self.ceiling ?? Self.maximum)
            self.base = self.learned
        }
    }

    /// The rate requests are paced at, in requests per second: the learned rate, else the
    /// ceiling; `nil` when nothing limits the rate.
    public var current: Double? {
        switch (learned, ceiling) {
        case (let learned?, let ceiling?): return min(learned, ceiling)
        case (let learned?, nil): return learned
        case (nil, let ceiling?): return ceiling
        case (nil, nil): return nil
        }
    }

    /// The shortest time between two releases at the current rate, or `nil` when not pacing.
    public var pacingGap: Duration? {
        current.map { .milliseconds(max(1, Int64((1000 / $0).rounded(.up)))) }
    }

    // MARK: - Pacing

    /// True when a request may be released at `now`; otherwise notes that pacing held one back.
    public mutating func mayRelease(at now: Timestamp) -> Bool {
        guard let nextRelease, now < nextRelease else { return true }
        heldBack = true
        return false
    }

    /// Records a release at `now` and sets the next one a pacing gap (plus a jitter of 0–10 %,
    /// from `unit` in [0, 1)) later.
    public mutating func released(at now: Timestamp, jitter unit: Double) {
        guard let gap = pacingGap else {
            nextRelease = nil
            return
        }
        let wait = Double(gap.milliseconds) * (1 + 0.1 * min(max(unit, 0), 1))
        nextRelease = now.adding(milliseconds: Int64(wait.rounded(.up)))
    }

    /// Moves the next release to no earlier than `time` (the end of a fleet-wide pause).
    mutating func holdReleases(until time: Timestamp) {
        nextRelease = max(nextRelease ?? time, time)
    }

    // MARK: - Learning

    /// Records the answer to one request at `now`.
    ///
    /// - Parameters:
    ///   - sentAt: When the request was sent; a refusal of a request sent before the last
    ///     decrease does not count towards the next one.
    ///   - refused: The API answered 429 (or a quota error) not naming the vehicle's own limit.
    ///   - applicationWide: The error itself said the application's limit is reached.
    ///   - fleetSize: VINs scheduled: a fleet of two cannot show three refused VINs.
    /// - Returns: True when the answer completes an application-wide signal (the rate was lowered).
    @discardableResult
    public mutating func noteAnswer(
        from vin: VIN, at now: Timestamp, sentAt: Timestamp? = nil, refused: Bool, applicationWide: Bool = false,
        fleetSize: Int = .max
    ) -> Bool {
        count(at: now, admitted: !refused)
        guard refused else { return false }
        lastRefusal = now
        quietSince = nil
        if let lastDecrease, (sentAt ?? now) < lastDecrease { return false }
        let windowStart = now.subtracting(Self.signalWindow)
        recentRefusals.removeAll { $0.at < windowStart || $0.vin == vin }
        recentRefusals.append((vin, now))
        let needed = min(threshold, max(2, fleetSize))
        let answers = buckets.reduce(0) { $0 + $1.answers }
        let refusals = answers - buckets.reduce(0) { $0 + $1.admitted }
        let significant = Double(refusals) >= Self.signalShare * Double(answers)
        guard applicationWide || (recentRefusals.count >= needed && significant) else { return false }
        recentRefusals.removeAll()
        lower(at: now)
        return true
    }

    /// Raises the rate by one step per ``quietPeriod`` (``probePeriod`` while probing) passed
    /// without a 429 while the rate was in use. Call it whenever the schedule looks at the time.
    public mutating func advance(to now: Timestamp) {
        guard let learned, let base else { return }
        guard let reference = [lastRefusal, lastChange].compactMap({ $0 }).max() else {
            lastChange = now
            return
        }
        let period = probing ? Self.probePeriod : Self.quietPeriod
        guard now >= reference.adding(period) else { return }
        defer {
            lastChange = now
            heldBack = false
        }
        // Not in use: the rate stays where it is, and the quiet period starts again.
        guard heldBack else {
            quietSince = nil
            return
        }
        if quietSince == nil { quietSince = reference }
        if !probing, let quietSince, now >= quietSince.adding(Self.probeAfter) { probing = true }
        // A loop that wakes only every few periods (a slow rate) still gets every step.
        let steps = min(Int(now.duration(since: reference).milliseconds / period.milliseconds), 100)
        var rate = learned
        for _ in 0..<steps {
            rate += probing ? rate * Self.probeStep : base * Self.increaseStep
        }
        if probing { probed = true }
        self.learned = min(rate, ceiling ?? Self.maximum)
    }

    private mutating func lower(at now: Timestamp) {
        let windowStart = now.subtracting(Self.measureWindow).millisecondsSince1970 / 1000
        let live = buckets.filter { $0.second >= windowStart }
        let first = live.map(\.second).min().map { $0 * 1000 } ?? now.millisecondsSince1970
        // Measured over the window, or since the first answer in it (at least a second).
        let seconds = max(1, Double(now.millisecondsSince1970 - first) / 1000)
        let admitted = Double(live.reduce(0) { $0 + $1.admitted }) / seconds
        let sent = Double(live.reduce(0) { $0 + $1.answers }) / seconds
        let from = current ?? sent
        var rate = Self.decrease * from
        if learned == nil, admitted > 0, admitted < 0.5 * from { rate = 0.9 * admitted }
        rate = min(max(rate, Self.floor), ceiling ?? Self.maximum)
        // Decreases in a row at the start (refusals of requests sent at full speed) keep probing on.
        probing = learned == nil || (probing && !probed)
        probed = false
        learned = rate
        base = rate
        lastChange = now
        lastDecrease = now
        heldBack = false
    }

    private mutating func count(at now: Timestamp, admitted: Bool) {
        let second = now.millisecondsSince1970 / 1000
        if let last = buckets.last, last.second == second {
            buckets[buckets.count - 1].answers += 1
            if admitted { buckets[buckets.count - 1].admitted += 1 }
        } else {
            buckets.append(Bucket(second: second, answers: 1, admitted: admitted ? 1 : 0))
        }
        let oldest = (now.millisecondsSince1970 - Self.signalWindow.milliseconds) / 1000
        if let first = buckets.first, first.second < oldest {
            buckets.removeAll { $0.second < oldest }
        }
    }
}
