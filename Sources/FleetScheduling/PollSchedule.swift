import FleetModel

/// Who is due for a poll and when: the only owner of the daemon's time decisions.
///
/// FleetScheduling (this type and ``Chores``) is pure: it never reads a clock, sleeps, sends a
/// request or touches the database; it decides from the times and outcomes it is given.
///
/// A value type with explicit transitions, driven by the times it is given, so that tests move
/// time forward instead of sleeping. Due times live in a binary heap, so finding the due VINs
/// costs O(k log n) for k due out of n, and an idle schedule costs nothing between due times.
///
/// Rules:
/// - Each VIN is polled every ``Policy/interval`` (or the interval of its last known activity,
///   ``Policy/activityIntervals``), from a random start offset within the first interval.
/// - Daily budgets stretch the interval, never cause bursts: with a per-VIN budget B the interval
///   is at least 24 h / B; with an application budget A for N VINs, at least 24 h × N / A.
/// - A rate limit (``Outcome/rateLimited(retryAfter:applicationWide:)``) delays that VIN for its
///   `Retry-After` (clamped above by ``Policy/maxRetryAfter``, never below the interval); without
///   one, an exponential backoff with full jitter. A per-vehicle 429 affects only its vehicle.
/// - An application-wide refusal (429s for ``Policy/globalRateLimitThreshold`` different VINs
///   within a minute, or an error that says so) lowers the learned ``ApplicationRate`` and pauses
///   the whole fleet for the `Retry-After` (else 1 s, doubling while the refusals go on). Requests
///   are paced at the learned rate, so the end of a pause, a restart or a fleet sync that adds
///   many vehicles never releases them all at once.
/// - Faults back off exponentially with full jitter between the interval and
///   `min(maxBackoff, interval × 2^(failures-1))`: the error path is never faster than success.
/// - A vehicle asleep or without data yet moves to ``Policy/slowInterval``; privacy mode to
///   ``Policy/privacyInterval``; no clearance marks it not cleared at the slow cadence.
/// - ``Policy/maxRequestsPerSecond`` caps the request rate: requests are paced at it.
/// - A request that was not answered (the daemon stopped, ``Outcome/cancelled``) or not sent (no
///   access token, ``Outcome/tokenUnavailable(retryAfter:)``) is no failure of the vehicle: it
///   stays due and is not counted against the budgets; a missing token pauses the whole fleet.
public struct PollSchedule: Sendable {
    /// The timing rules.
    public struct Policy: Sendable, Hashable {
        /// Time between two polls of one VIN.
        public var interval: Duration
        /// The longest backoff after repeated failures.
        public var maxBackoff: Duration
        /// The longest `Retry-After` honoured as given; longer ones are clamped to it.
        public var maxRetryAfter: Duration
        /// Cadence of a vehicle that is asleep/offline or has no data yet, or is not cleared.
        public var slowInterval: Duration
        /// Cadence of a vehicle in privacy mode.
        public var privacyInterval: Duration
        /// Interval per activity (`driving`, `charging`, `parked`), overriding ``interval``.
        public var activityIntervals: [VehicleActivity: Duration]
        /// At most this many requests per second for the whole application, or no cap: the
        /// ceiling of the learned ``ApplicationRate``.
        public var maxRequestsPerSecond: Double?
        /// At most this many polls per VIN per UTC day, or no budget.
        public var dailyBudgetPerVIN: Int?
        /// At most this many polls per UTC day for the whole application, or no budget.
        public var dailyBudgetApplication: Int?
        /// 429s for this many different VINs within a minute are an application-wide refusal.
        public var globalRateLimitThreshold: Int

        /// Defaults: backoff up to 1h, `Retry-After` up to 24h, slow cadence 6 × interval,
        /// privacy 6h, no rate cap, no budgets, a global pause after 429s for 3 VINs in a minute.
        /// Intervals shorter than `interval` are raised to it.
        public init(
            interval: Duration, maxBackoff: Duration = .seconds(3600), maxRetryAfter: Duration = .seconds(86_400),
            slowInterval: Duration? = nil, privacyInterval: Duration = .seconds(6 * 3600),
            activityIntervals: [VehicleActivity: Duration] = [:], maxRequestsPerSecond: Double? = nil,
            dailyBudgetPerVIN: Int? = nil, dailyBudgetApplication: Int? = nil, globalRateLimitThreshold: Int = 3
        ) {
            self.interval = interval
            self.maxBackoff = max(maxBackoff, interval)
            self.maxRetryAfter = maxRetryAfter
            self.slowInterval = max(slowInterval ?? interval * 6, interval)
            self.privacyInterval = max(privacyInterval, interval)
            self.activityIntervals = activityIntervals
            self.maxRequestsPerSecond = maxRequestsPerSecond.flatMap { $0 > 0 ? max($0, 0.001) : nil }
            self.dailyBudgetPerVIN = dailyBudgetPerVIN
            self.dailyBudgetApplication = dailyBudgetApplication
            self.globalRateLimitThreshold = max(1, globalRateLimitThreshold)
        }
    }

    /// What the vehicle was doing at its last successful poll.
    public typealias VehicleActivity = FleetModel.VehicleActivity

    /// A VIN's polling health, stored in the `schedule` table.
    public enum Health: String, Sendable, Hashable, CaseIterable {
        case ok, backoff
        case rateLimited = "rate_limited"
        case asleep, pending, privacy
        case notCleared = "not_cleared"
        case consentRemoved = "consent_removed"
        /// A vehicle connected by consent whose refresh token was refused: not polled until the
        /// owner consents again.
        case consentRequired = "consent_required"
        case error
    }

    /// How a poll ended, as far as timing is concerned.
    public enum Outcome: Sendable, Hashable {
        /// A response with data; the activity it showed, when known.
        case success(VehicleActivity?)
        /// The API limited the rate, with the `Retry-After` delay when the server gave a usable one;
        /// `applicationWide`: `true` when the error said the application's limit is reached, `false`
        /// when it said the vehicle's (never counted towards an application-wide refusal), `nil`
        /// when it said neither.
        case rateLimited(retryAfter: Duration?, applicationWide: Bool? = nil)
        /// A transport failure, a server error or a malformed body: back off.
        case failed
        /// An answer that means "ask again much later": asleep, data pending, privacy mode, not
        /// cleared.
        case slow(Health)
        /// The API refused the client credentials: nothing can succeed until the config is fixed.
        case credentialsRejected
        /// The vehicle must not be polled any more (`Consent is removed by OEM`).
        case stop
        /// The request was cancelled before its answer came (the daemon is stopping): the vehicle
        /// stays due and the poll is not counted.
        case cancelled
        /// No request was sent: no access token could be obtained. The vehicle stays due, the poll
        /// is not counted, and the fleet waits for the next token attempt (`retryAfter`, else 1 s).
        case tokenUnavailable(retryAfter: Duration?)
    }

    /// Why the whole fleet is paused.
    public enum PauseReason: String, Sendable, Hashable {
        /// The API refused the application (429s for several vehicles, or an error that says so).
        case rateLimited = "rate_limited"
        /// `polling.daily_budget` is spent for the UTC day.
        case dailyBudget = "daily_budget"
        /// No access token could be obtained.
        case tokenUnavailable = "token_unavailable"
    }

    /// One VIN's place in the schedule.
    public struct Entry: Sendable, Hashable {
        /// When the VIN is next due, UTC.
        public var nextDue: Timestamp
        /// Consecutive failed polls (0 after a success).
        public var consecutiveFailures: Int
        /// True while a poll of this VIN is in flight.
        public var inFlight: Bool
        public var health: Health
        /// The interval that applies after a success (the activity's, stretched by budgets).
        public var activity: VehicleActivity?
        /// Polls of this VIN in the current UTC day.
        public var pollsToday: Int
        public var day: Int64
        /// When the poll in flight was handed out.
        public var sentAt: Timestamp? = nil

        public init(
            nextDue: Timestamp, consecutiveFailures: Int = 0, inFlight: Bool = false, health: Health = .ok,
            activity: VehicleActivity? = nil, pollsToday: Int = 0, day: Int64 = 0
        ) {
            self.nextDue = nextDue
            self.consecutiveFailures = consecutiveFailures
            self.inFlight = inFlight
            self.health = health
            self.activity = activity
            self.pollsToday = pollsToday
            self.day = day
        }
    }

    public private(set) var policy: Policy
    private(set) public var entries: [VIN: Entry] = [:]
    private var heap = DueHeap()
    private var random: SplitMix64
    /// While set, no VIN is handed out before it (application-wide rate limit, daily budget,
    /// no access token).
    private(set) public var globalPauseUntil: Timestamp?
    /// Why ``globalPauseUntil`` is set.
    private(set) public var pauseReason: PauseReason?
    /// The learned application-wide request rate and the pacing at it.
    private(set) public var rate: ApplicationRate
    /// Application-wide refusals in a row (none for a minute resets it): the pause without a
    /// `Retry-After` doubles with each.
    private var applicationRefusals = 0
    private var lastApplicationRefusal: Timestamp?
    private var applicationDay: Int64 = 0
    private(set) public var applicationPollsToday = 0

    /// - Parameters:
    ///   - vins: The VINs to poll.
    ///   - start: The time the schedule starts; each VIN's first poll falls in `[start, start + interval)`.
    ///   - seed: Seeds the start offsets and the backoff jitter.
    public init(vins: [VIN], policy: Policy, start: Timestamp, seed: UInt64) {
        self.policy = policy
        self.random = SplitMix64(seed: seed)
        self.rate = ApplicationRate(ceiling: policy.maxRequestsPerSecond, threshold: policy.globalRateLimitThreshold)
        for vin in vins { add(vin, at: start) }
    }

    /// The entry of `vin`. Prefer this to `entries[vin]` in a loop: reading `entries` from outside
    /// hands out the whole dictionary, and a later mutation while that copy is alive would copy it.
    public func entry(_ vin: VIN) -> Entry? {
        entries[vin]
    }

    /// Number of scheduled VINs.
    public var count: Int { entries.count }

    // MARK: - Membership

    /// Adds `vin` (if not scheduled yet), first due at a random offset within one interval of `now`.
    public mutating func add(_ vin: VIN, at now: Timestamp) {
        guard entries[vin] == nil else { return }
        let offset = Int64(random.next() % UInt64(max(1, policy.interval.milliseconds)))
        set(vin, Entry(nextDue: now.adding(milliseconds: offset), day: Self.day(of: now)))
    }

    /// Adds `vin` with a state restored from the database. A due time already past is spread
    /// over one interval from `now`, so that a restart never fires every VIN at once; a future
    /// one (a long `Retry-After`) is kept.
    public mutating func restore(_ vin: VIN, entry: Entry, at now: Timestamp) {
        var entry = entry
        entry.inFlight = false
        entry.consecutiveFailures = min(max(entry.consecutiveFailures, 0), 1_000)
        entry.pollsToday = max(entry.pollsToday, 0)
        // No saved wait outlasts the longest this policy can set (a corrupt row, an old config).
        entry.nextDue = min(entry.nextDue, now.adding(longestWait))
        // A healthy VIN waits at most one current interval, whatever an earlier config said.
        if entry.health == .ok, entry.nextDue > now.adding(effectiveInterval(for: entry)) {
            entry.nextDue = now
        }
        if entry.nextDue <= now {
            entry.nextDue = now.adding(
                milliseconds: Int64(random.next() % UInt64(max(1, policy.interval.milliseconds))))
        }
        set(vin, entry)
    }

    /// Stops scheduling `vin`; an outcome recorded for it later is ignored.
    public mutating func remove(_ vin: VIN) {
        entries[vin] = nil
    }

    private mutating func set(_ vin: VIN, _ entry: Entry) {
        let previous = entries[vin]
        entries[vin] = entry
        if previous?.nextDue != entry.nextDue || previous?.inFlight == true {
            heap.push(DueHeap.Item(due: entry.nextDue, vin: vin))
            if heap.count > 2 * entries.count + 1024 { rebuildHeap() }
        }
    }

    private mutating func rebuildHeap() {
        heap = DueHeap(
            entries.compactMap { $0.value.inFlight ? nil : DueHeap.Item(due: $0.value.nextDue, vin: $0.key) })
    }

    // MARK: - Taking due VINs

    /// VINs due at `now` and not in flight, earliest first (inspection only; O(n)).
    public func due(at now: Timestamp) -> [VIN] {
        if let pause = globalPauseUntil, now < pause { return [] }
        return entries.filter { !$0.value.inFlight && $0.value.nextDue <= now }
            .sorted { ($0.value.nextDue, $0.key) < ($1.value.nextDue, $1.key) }
            .map(\.key)
    }

    /// Hands out at most `limit` VINs due at `now`, earliest first, and marks them in flight.
    /// Respects the global pause, the pacing at the application rate and the daily budgets.
    public mutating func takeDue(at now: Timestamp, limit: Int = .max) -> [VIN] {
        if let pause = globalPauseUntil {
            if now < pause { return [] }
            endPause(at: now)
        }
        rollApplicationDay(now)
        rate.advance(to: now)
        var taken: [VIN] = []
        while taken.count < limit, let top = heap.peek, top.due <= now {
            guard rate.mayRelease(at: now) else { break }
            heap.pop()
            guard var entry = entries[top.vin], !entry.inFlight, entry.nextDue == top.due else { continue }
            let today = Self.day(of: now)
            if entry.day != today {
                entry.day = today
                entry.pollsToday = 0
            }
            if let budget = policy.dailyBudgetPerVIN, entry.pollsToday >= budget {
                entry.nextDue = Self.startOfNextDay(now).adding(
                    milliseconds: Int64(random.next() % UInt64(max(1, policy.interval.milliseconds))))
                set(top.vin, entry)
                continue
            }
            if let budget = policy.dailyBudgetApplication, applicationPollsToday >= budget {
                heap.push(top)
                pause(until: Self.startOfNextDay(now), reason: .dailyBudget)
                break
            }
            entry.pollsToday += 1
            applicationPollsToday += 1
            entry.inFlight = true
            entry.sentAt = now
            entries[top.vin] = entry
            taken.append(top.vin)
            rate.released(at: now, jitter: random.uniform(0...1))
        }
        return taken
    }

    /// Pauses the whole fleet until `time` (a pause already longer is kept).
    ///
    /// - Returns: True when the pause was set or extended.
    @discardableResult
    public mutating func pause(until time: Timestamp, reason: PauseReason) -> Bool {
        guard globalPauseUntil.map({ time > $0 }) ?? true else { return false }
        globalPauseUntil = time
        pauseReason = reason
        rate.holdReleases(until: time)
        return true
    }

    /// Ends the fleet-wide pause. After a spent daily budget with no learned rate, the VINs due
    /// by now are spread over one interval instead of all being due at midnight.
    private mutating func endPause(at now: Timestamp) {
        let reason = pauseReason
        globalPauseUntil = nil
        pauseReason = nil
        guard reason == .dailyBudget, rate.current == nil else { return }
        for (vin, entry) in entries where !entry.inFlight && entry.nextDue <= now {
            var spread = entry
            spread.nextDue = now.adding(
                milliseconds: Int64(random.next() % UInt64(max(1, policy.interval.milliseconds))))
            set(vin, spread)
        }
    }

    /// Applies a new policy (a reloaded config) without dropping state: due times, failures,
    /// daily counts and the learned rate stay (within the new ceiling); a healthy VIN due later
    /// than one new interval from `now` is brought forward to it.
    public mutating func update(policy newPolicy: Policy, at now: Timestamp) {
        guard newPolicy != policy else { return }
        policy = newPolicy
        rate = ApplicationRate(
            ceiling: newPolicy.maxRequestsPerSecond, threshold: newPolicy.globalRateLimitThreshold,
            learned: rate.learned)
        if let pause = globalPauseUntil { rate.holdReleases(until: pause) }
        for (vin, entry) in entries where !entry.inFlight && entry.health == .ok {
            let latest = now.adding(effectiveInterval(for: entry))
            if entry.nextDue > latest {
                var moved = entry
                moved.nextDue = latest
                set(vin, moved)
            }
        }
    }

    /// Restores the application-wide state saved by an earlier run: the learned rate, and a
    /// fleet-wide pause still running at `now` (a 24 h `Retry-After` survives a restart), at most
    /// ``Policy/maxRetryAfter`` ahead. A pause for a spent daily budget holds only while the
    /// policy still has that budget; a pause for a missing token does not survive (a new process
    /// asks for a token at once).
    public mutating func restoreApplication(
        learnedRate: Double?, pausedUntil: Timestamp?, reason: PauseReason?, at now: Timestamp
    ) {
        rate = ApplicationRate(
            ceiling: policy.maxRequestsPerSecond, threshold: policy.globalRateLimitThreshold, learned: learnedRate)
        let reason = reason ?? .rateLimited
        guard let pausedUntil, pausedUntil > now, reason != .tokenUnavailable else { return }
        guard reason != .dailyBudget || policy.dailyBudgetApplication != nil else { return }
        let bound = reason == .dailyBudget ? Self.startOfNextDay(now) : now.adding(policy.maxRetryAfter)
        pause(until: min(pausedUntil, bound), reason: reason)
    }

    /// The longest wait this policy can give a VIN (backoff, `Retry-After`, slow cadences, a day).
    private var longestWait: Duration {
        max(policy.maxBackoff, policy.maxRetryAfter, policy.slowInterval, policy.privacyInterval, .days(1))
            + effectiveInterval(for: Entry(nextDue: Timestamp(millisecondsSince1970: 0)))
    }

    /// Counts a poll made outside the schedule (`fleet-telemetry poll --store`) against the budgets.
    public mutating func countManualPoll(_ vin: VIN, at now: Timestamp) {
        rollApplicationDay(now)
        applicationPollsToday += 1
        guard var entry = entries[vin] else { return }
        let today = Self.day(of: now)
        if entry.day != today {
            entry.day = today
            entry.pollsToday = 0
        }
        entry.pollsToday += 1
        entries[vin] = entry
    }

    /// Sets a VIN's poll count for the UTC day of `now` (restored from the database).
    public mutating func setPollsToday(_ count: Int, for vin: VIN, at now: Timestamp) {
        guard var entry = entries[vin] else { return }
        entry.day = Self.day(of: now)
        entry.pollsToday = count
        entries[vin] = entry
    }

    /// Sets the application's poll count for the UTC day of `now` (restored from the database).
    public mutating func setApplicationPollsToday(_ count: Int, at now: Timestamp) {
        rollApplicationDay(now)
        applicationPollsToday = count
    }

    /// The earliest time something is due (respecting the global pause and the pacing),
    /// or `nil` when nothing is scheduled.
    public mutating func nextDueTime() -> Timestamp? {
        while let top = heap.peek {
            if let entry = entries[top.vin], !entry.inFlight, entry.nextDue == top.due { break }
            heap.pop()
        }
        guard var next = heap.peek?.due else { return nil }
        if let pause = globalPauseUntil, pause > next { next = pause }
        if let release = rate.nextRelease, release > next { next = release }
        return next
    }

    // MARK: - Outcomes

    /// Marks `vin` as being polled (for callers that pick VINs themselves, e.g. tests).
    public mutating func start(_ vin: VIN) {
        entries[vin]?.inFlight = true
    }

    /// Records how a poll of `vin` ended at `now` and sets its next due time.
    public mutating func record(_ outcome: Outcome, for vin: VIN, at now: Timestamp) {
        guard var entry = entries[vin] else { return }
        entry.inFlight = false
        switch outcome {
        case .cancelled, .tokenUnavailable:
            break
        case .rateLimited:
            break
        default:
            rate.noteAnswer(from: vin, at: now, sentAt: entry.sentAt, refused: false, fleetSize: entries.count)
        }
        switch outcome {
        case .success(let activity):
            entry.consecutiveFailures = 0
            entry.health = .ok
            if let activity { entry.activity = activity }
            let interval = effectiveInterval(for: entry)
            // Keep the cadence: the next slot after the one just served, never in the past.
            var next = entry.nextDue.adding(interval)
            if next <= now { next = now.adding(interval) }
            entry.nextDue = next
        case .rateLimited(let retryAfter, let applicationWide):
            entry.consecutiveFailures = min(entry.consecutiveFailures, 1_000_000) + 1
            entry.health = .rateLimited
            if let retryAfter {
                // Never sooner than the interval: a `Retry-After: 0` or a date in the past must not
                // turn the error path into a tight loop. Never later than the clamp.
                entry.nextDue = now.adding(max(min(retryAfter, policy.maxRetryAfter), policy.interval))
            } else {
                entry.nextDue = now.adding(backoff(failures: entry.consecutiveFailures))
            }
            // A refusal that names the vehicle's own limit says nothing of the application's.
            let signal = rate.noteAnswer(
                from: vin, at: now, sentAt: entry.sentAt, refused: applicationWide != false,
                applicationWide: applicationWide == true, fleetSize: entries.count)
            if signal {
                // The application's limit, not this vehicle's: the vehicle is due again when the
                // fleet resumes, at the lowered rate.
                if let last = lastApplicationRefusal, now >= last.adding(ApplicationRate.signalWindow) {
                    applicationRefusals = 0
                }
                applicationRefusals += 1
                lastApplicationRefusal = now
                let wait =
                    retryAfter.map { min($0, policy.maxRetryAfter) }
                    ?? min(.seconds(1) * (1 << min(applicationRefusals - 1, 12)), policy.maxBackoff)
                let resume = now.adding(max(wait, .milliseconds(1)))
                pause(until: resume, reason: .rateLimited)
                entry.nextDue = max(resume, globalPauseUntil ?? resume)
            }
        case .cancelled:
            uncount(&entry)
        case .tokenUnavailable(let retryAfter):
            uncount(&entry)
            pause(until: now.adding(max(retryAfter ?? .seconds(1), .milliseconds(1))), reason: .tokenUnavailable)
        case .failed, .credentialsRejected:
            entry.consecutiveFailures = min(entry.consecutiveFailures, 1_000_000) + 1
            entry.health = entry.consecutiveFailures >= 5 ? .error : .backoff
            entry.nextDue = now.adding(backoff(failures: entry.consecutiveFailures))
        case .slow(let health):
            entry.consecutiveFailures = 0
            entry.health = health
            entry.nextDue = now.adding(health == .privacy ? policy.privacyInterval : policy.slowInterval)
        case .stop:
            entries[vin] = nil
            return
        }
        set(vin, entry)
    }

    /// The polls `entry` is expected to make from `now` to the end of the UTC day, at its current
    /// cadence (the slow or privacy interval for those healths, the effective interval otherwise)
    /// and within the per-VIN daily budget; 0 for a stopped VIN.
    public func projectedPolls(for entry: Entry, at now: Timestamp) -> Int {
        Self.projectedPolls(for: entry, policy: policy, fleetSize: entries.count, at: now)
    }

    /// ``projectedPolls(for:at:)`` for a saved state (`fleet-telemetry schedule`), with `fleetSize`
    /// the VINs the application budget is shared by.
    public static func projectedPolls(for entry: Entry, policy: Policy, fleetSize: Int, at now: Timestamp) -> Int {
        let cadence: Duration
        switch entry.health {
        case .consentRemoved, .consentRequired: return 0
        case .asleep, .pending, .notCleared: cadence = policy.slowInterval
        case .privacy: cadence = policy.privacyInterval
        default: cadence = effectiveInterval(for: entry, policy: policy, fleetSize: fleetSize)
        }
        let end = now.startOfUTCDay.adding(.days(1))
        let first = max(entry.nextDue, now)
        guard first < end else { return 0 }
        let step = max(1, cadence.milliseconds)
        var polls = Int((end.millisecondsSince1970 - 1 - first.millisecondsSince1970) / step) + 1
        if let budget = policy.dailyBudgetPerVIN {
            let used = entry.day == now.utcDay ? entry.pollsToday : 0
            polls = min(polls, max(0, budget - used))
        }
        return polls
    }

    /// The cadence in words, for the startup log line and `check-config`: the base interval, each
    /// activity's that differs and the config key it comes from, the slow and privacy cadences
    /// and how the daily budgets stretch them (`interval 30s; parked 15m from
    /// polling.intervals.parked; slow 3m, privacy 6h`).
    public static func cadence(
        of policy: Policy, fleetSize: Int, format: (Duration) -> String
    ) -> String {
        var parts = ["interval \(format(policy.interval))"]
        for activity in VehicleActivity.allCases {
            guard let interval = policy.activityIntervals[activity], interval != policy.interval else { continue }
            parts.append("\(activity.rawValue) \(format(interval)) from polling.intervals.\(activity.rawValue)")
        }
        parts.append("slow \(format(policy.slowInterval)) (asleep, no data yet, not cleared)")
        parts.append("privacy mode \(format(policy.privacyInterval))")
        let floor = effectiveInterval(
            for: Entry(nextDue: Timestamp(millisecondsSince1970: 0)),
            policy: Policy(
                interval: .milliseconds(1), dailyBudgetPerVIN: policy.dailyBudgetPerVIN,
                dailyBudgetApplication: policy.dailyBudgetApplication),
            fleetSize: fleetSize)
        if floor > .milliseconds(1) {
            parts.append("daily budgets: never more often than every \(format(floor)) per vehicle")
        }
        return parts.joined(separator: "; ")
    }

    /// The interval after a success: the activity's (or the base), stretched by daily budgets.
    public func effectiveInterval(for entry: Entry) -> Duration {
        Self.effectiveInterval(for: entry, policy: policy, fleetSize: entries.count)
    }

    static func effectiveInterval(for entry: Entry, policy: Policy, fleetSize: Int) -> Duration {
        var interval = entry.activity.flatMap { policy.activityIntervals[$0] } ?? policy.interval
        if let budget = policy.dailyBudgetPerVIN, budget > 0 {
            interval = max(interval, .milliseconds(Timestamp.millisecondsPerDay / Int64(budget)))
        }
        if let budget = policy.dailyBudgetApplication, budget > 0 {
            let perVIN = Timestamp.millisecondsPerDay * Int64(max(1, fleetSize)) / Int64(budget)
            interval = max(interval, .milliseconds(perVIN))
        }
        return interval
    }

    /// Takes back the count of a poll that was never answered (or never sent).
    private mutating func uncount(_ entry: inout Entry) {
        if entry.pollsToday > 0 { entry.pollsToday -= 1 }
        if applicationPollsToday > 0 { applicationPollsToday -= 1 }
    }

    /// Exponential backoff with full jitter between the interval and
    /// `min(maxBackoff, interval × 2^(failures-1))`.
    mutating func backoff(failures: Int) -> Duration {
        let base = policy.interval.milliseconds
        let cap = policy.maxBackoff.milliseconds
        let exponent = min(max(failures - 1, 0), 30)
        let ceiling = base > cap >> exponent ? cap : min(cap, base << exponent)
        let span = max(0, ceiling - base)
        return .milliseconds(base + Int64(random.next() % UInt64(span + 1)))
    }

    private mutating func rollApplicationDay(_ now: Timestamp) {
        let today = Self.day(of: now)
        if today != applicationDay {
            applicationDay = today
            applicationPollsToday = 0
        }
    }

    /// The UTC day of `time` (days since 1970-01-01), by which daily budgets are counted.
    public static func day(of time: Timestamp) -> Int64 {
        time.utcDay
    }

    static func startOfNextDay(_ time: Timestamp) -> Timestamp {
        Timestamp(millisecondsSince1970: (day(of: time) + 1) * Timestamp.millisecondsPerDay)
    }
}

/// A binary min-heap of due times (ties broken by VIN), with lazy deletion by the owner.
struct DueHeap: Sendable {
    struct Item: Sendable, Comparable {
        var due: Timestamp
        var vin: VIN
        static func < (a: Item, b: Item) -> Bool { (a.due, a.vin) < (b.due, b.vin) }
    }

    private var items: [Item] = []

    init() {}

    init(_ items: [Item]) {
        self.items = items
        var index = items.count / 2 - 1
        while index >= 0 {
            siftDown(index)
            index -= 1
        }
    }

    var count: Int { items.count }
    var peek: Item? { items.first }

    mutating func push(_ item: Item) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Item? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        if !items.isEmpty { siftDown(0) }
        return top
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left] < items[smallest] { smallest = left }
            if right < items.count, items[right] < items[smallest] { smallest = right }
            if smallest == parent { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
