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
/// - A rate limit (``Outcome/rateLimited(retryAfter:)``) delays that VIN for its `Retry-After` (clamped above by ``Policy/maxRetryAfter``, never
///   below what the server asked, and never below the interval); without one, an exponential
///   backoff with full jitter. 429s for
///   ``Policy/globalRateLimitThreshold`` different VINs within a minute mean the application's
///   quota is spent: the whole fleet pauses.
/// - Faults back off exponentially with full jitter between the interval and
///   `min(maxBackoff, interval × 2^(failures-1))`: the error path is never faster than success.
/// - A vehicle asleep or without data yet moves to ``Policy/slowInterval``; privacy mode to
///   ``Policy/privacyInterval``; no clearance marks it not cleared at the slow cadence.
/// - ``Policy/maxRequestsPerSecond`` caps the request rate with a token bucket.
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
        /// At most this many requests per second for the whole application, or no cap.
        public var maxRequestsPerSecond: Double?
        /// At most this many polls per VIN per UTC day, or no budget.
        public var dailyBudgetPerVIN: Int?
        /// At most this many polls per UTC day for the whole application, or no budget.
        public var dailyBudgetApplication: Int?
        /// 429s for this many different VINs within a minute pause the whole fleet.
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
        case error
    }

    /// How a poll ended, as far as timing is concerned.
    public enum Outcome: Sendable, Hashable {
        /// A response with data; the activity it showed, when known.
        case success(VehicleActivity?)
        /// The API limited the rate, with the `Retry-After` delay when the server gave a usable one.
        case rateLimited(retryAfter: Duration?)
        /// A transport failure, a server error or a malformed body: back off.
        case failed
        /// An answer that means "ask again much later": asleep, data pending, privacy mode, not
        /// cleared.
        case slow(Health)
        /// The API refused the client credentials: nothing can succeed until the config is fixed.
        case credentialsRejected
        /// The vehicle must not be polled any more (`Consent is removed by OEM`).
        case stop
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

    public let policy: Policy
    private(set) public var entries: [VIN: Entry] = [:]
    private var heap = DueHeap()
    private var random: SplitMix64
    /// While set, no VIN is handed out before it (application-wide rate limit).
    private(set) public var globalPauseUntil: Timestamp?
    private var recent429s: [(VIN, Timestamp)] = []
    private var bucketTokens: Double = 0
    private var bucketUpdatedAt: Timestamp?
    private var applicationDay: Int64 = 0
    private(set) public var applicationPollsToday = 0

    /// - Parameters:
    ///   - vins: The VINs to poll.
    ///   - start: The time the schedule starts; each VIN's first poll falls in `[start, start + interval)`.
    ///   - seed: Seeds the start offsets and the backoff jitter.
    public init(vins: [VIN], policy: Policy, start: Timestamp, seed: UInt64) {
        self.policy = policy
        self.random = SplitMix64(seed: seed)
        self.bucketTokens = policy.maxRequestsPerSecond.map { max(1, $0) } ?? 0
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
    /// Respects the global pause, the request-rate token bucket and the daily budgets.
    public mutating func takeDue(at now: Timestamp, limit: Int = .max) -> [VIN] {
        if let pause = globalPauseUntil {
            if now < pause { return [] }
            globalPauseUntil = nil
        }
        rollApplicationDay(now)
        refillBucket(now)
        var taken: [VIN] = []
        while taken.count < limit, let top = heap.peek, top.due <= now {
            heap.pop()
            guard var entry = entries[top.vin], !entry.inFlight, entry.nextDue == top.due else { continue }
            if policy.maxRequestsPerSecond != nil {
                guard bucketTokens >= 1 else {
                    heap.push(top)
                    break
                }
                bucketTokens -= 1
            }
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
                let resume = Self.startOfNextDay(now)
                globalPauseUntil = resume
                break
            }
            entry.pollsToday += 1
            applicationPollsToday += 1
            entry.inFlight = true
            entries[top.vin] = entry
            taken.append(top.vin)
        }
        return taken
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

    /// The earliest time something is due (respecting the global pause and the token bucket),
    /// or `nil` when nothing is scheduled.
    public mutating func nextDueTime() -> Timestamp? {
        while let top = heap.peek {
            if let entry = entries[top.vin], !entry.inFlight, entry.nextDue == top.due { break }
            heap.pop()
        }
        guard var next = heap.peek?.due else { return nil }
        if let pause = globalPauseUntil, pause > next { next = pause }
        if let rate = policy.maxRequestsPerSecond, bucketTokens < 1, let updated = bucketUpdatedAt {
            let wait = min(((1 - bucketTokens) / rate * 1000).rounded(.up), Double(Timestamp.millisecondsPerDay))
            let refill = updated.adding(milliseconds: Int64(wait))
            if refill > next { next = refill }
        }
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
        case .success(let activity):
            entry.consecutiveFailures = 0
            entry.health = .ok
            if let activity { entry.activity = activity }
            let interval = effectiveInterval(for: entry)
            // Keep the cadence: the next slot after the one just served, never in the past.
            var next = entry.nextDue.adding(interval)
            if next <= now { next = now.adding(interval) }
            entry.nextDue = next
        case .rateLimited(let retryAfter?):
            entry.consecutiveFailures += 1
            entry.health = .rateLimited
            // Never sooner than the interval: a `Retry-After: 0` or a date in the past must not
            // turn the error path into a tight loop. Never later than the clamp.
            entry.nextDue = now.adding(max(min(retryAfter, policy.maxRetryAfter), policy.interval))
            noteRateLimit(vin, at: now, until: entry.nextDue)
        case .rateLimited(nil):
            entry.consecutiveFailures += 1
            entry.health = .rateLimited
            entry.nextDue = now.adding(backoff(failures: entry.consecutiveFailures))
            noteRateLimit(vin, at: now, until: entry.nextDue)
        case .failed, .credentialsRejected:
            entry.consecutiveFailures += 1
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

    /// The interval after a success: the activity's (or the base), stretched by daily budgets.
    public func effectiveInterval(for entry: Entry) -> Duration {
        var interval = entry.activity.flatMap { policy.activityIntervals[$0] } ?? policy.interval
        if let budget = policy.dailyBudgetPerVIN, budget > 0 {
            interval = max(interval, .milliseconds(Timestamp.millisecondsPerDay / Int64(budget)))
        }
        if let budget = policy.dailyBudgetApplication, budget > 0 {
            let perVIN = Timestamp.millisecondsPerDay * Int64(max(1, entries.count)) / Int64(budget)
            interval = max(interval, .milliseconds(perVIN))
        }
        return interval
    }

    /// 429s for several different VINs within a minute: pause everyone until the latest of
    /// their waits.
    private mutating func noteRateLimit(_ vin: VIN, at now: Timestamp, until: Timestamp) {
        let windowStart = now.adding(milliseconds: -60_000)
        recent429s.removeAll { $0.1 < windowStart || $0.0 == vin }
        recent429s.append((vin, now))
        if recent429s.count >= policy.globalRateLimitThreshold {
            let pause = max(until, globalPauseUntil ?? until)
            globalPauseUntil = pause
        }
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

    private mutating func refillBucket(_ now: Timestamp) {
        guard let rate = policy.maxRequestsPerSecond else { return }
        if let updated = bucketUpdatedAt, now > updated {
            let elapsed = Double(now.millisecondsSince1970 - updated.millisecondsSince1970) / 1000
            bucketTokens = min(max(1, rate), bucketTokens + elapsed * rate)
        }
        bucketUpdatedAt = now
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
