import FleetModel

/// Who is due for a poll and when: the only owner of the daemon's time decisions.
///
/// A value type with explicit transitions, driven by the times it is given, so that tests move
/// time forward instead of sleeping. Each VIN is polled every ``Policy/interval`` from a random
/// start offset within the first interval. After a 429 the VIN waits for its `Retry-After` when
/// one was given (clamped above by ``Policy/maxRetryAfter``, never below what the server asked),
/// else for an exponential backoff; after another failure it backs off exponentially. A backoff
/// is never shorter than the interval, so errors never cause faster polling than success. Other
/// VINs keep their cadence.
public struct PollSchedule: Sendable {
    /// The timing rules.
    public struct Policy: Sendable, Hashable {
        /// Time between two polls of one VIN.
        public var interval: Duration
        /// The longest backoff after repeated failures.
        public var maxBackoff: Duration
        /// The longest `Retry-After` honoured as given; longer ones are clamped to it.
        public var maxRetryAfter: Duration

        public init(interval: Duration, maxBackoff: Duration = .seconds(3600), maxRetryAfter: Duration = .seconds(86_400)) {
            self.interval = interval
            self.maxBackoff = max(maxBackoff, interval)
            self.maxRetryAfter = maxRetryAfter
        }
    }

    /// How a poll ended, as far as timing is concerned.
    public enum Outcome: Sendable, Hashable {
        /// A response that counts as an answer (200, and errors that are not worth retrying sooner).
        case success
        /// HTTP 429, with the `Retry-After` delay when the server gave one.
        case rateLimited(retryAfter: Duration?)
        /// A transport failure or a server error: back off.
        case failed
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
    }

    public let policy: Policy
    private(set) public var entries: [VIN: Entry] = [:]
    private var random: SplitMix64

    /// - Parameters:
    ///   - vins: The VINs to poll.
    ///   - start: The time the schedule starts; each VIN's first poll falls in `[start, start + interval)`.
    ///   - seed: Seeds the start offsets and the backoff jitter.
    public init(vins: [VIN], policy: Policy, start: Timestamp, seed: UInt64) {
        self.policy = policy
        self.random = SplitMix64(seed: seed)
        let span = max(1, policy.interval.milliseconds)
        for vin in vins {
            let offset = Int64(random.next() % UInt64(span))
            entries[vin] = Entry(nextDue: start.adding(milliseconds: offset), consecutiveFailures: 0, inFlight: false)
        }
    }

    /// Adds `vin` (if not scheduled yet), first due at a random offset within one interval of `now`.
    public mutating func add(_ vin: VIN, at now: Timestamp) {
        guard entries[vin] == nil else { return }
        let offset = Int64(random.next() % UInt64(max(1, policy.interval.milliseconds)))
        entries[vin] = Entry(nextDue: now.adding(milliseconds: offset), consecutiveFailures: 0, inFlight: false)
    }

    /// Stops scheduling `vin`; an outcome recorded for it later is ignored.
    public mutating func remove(_ vin: VIN) {
        entries[vin] = nil
    }

    /// VINs due at `now` and not in flight, earliest first.
    public func due(at now: Timestamp) -> [VIN] {
        entries.filter { !$0.value.inFlight && $0.value.nextDue <= now }
            .sorted { ($0.value.nextDue, $0.key) < ($1.value.nextDue, $1.key) }
            .map(\.key)
    }

    /// The earliest time a VIN not in flight is due, or `nil` when none is.
    public var nextDueTime: Timestamp? {
        entries.values.filter { !$0.inFlight }.map(\.nextDue).min()
    }

    /// Marks `vin` as being polled, so that it is not handed out again until ``record(_:for:at:)``.
    public mutating func start(_ vin: VIN) {
        entries[vin]?.inFlight = true
    }

    /// Records how a poll of `vin` ended at `now` and sets its next due time.
    public mutating func record(_ outcome: Outcome, for vin: VIN, at now: Timestamp) {
        guard var entry = entries[vin] else { return }
        entry.inFlight = false
        switch outcome {
        case .success:
            entry.consecutiveFailures = 0
            // Keep the cadence: the next slot after the one just served, never in the past.
            var next = entry.nextDue.adding(policy.interval)
            if next <= now { next = now.adding(policy.interval) }
            entry.nextDue = next
        case .rateLimited(let retryAfter?):
            entry.consecutiveFailures += 1
            entry.nextDue = now.adding(min(retryAfter, policy.maxRetryAfter))
        case .stop:
            entries[vin] = nil
            return
        case .rateLimited(nil), .failed, .credentialsRejected:
            entry.consecutiveFailures += 1
            entry.nextDue = now.adding(backoff(failures: entry.consecutiveFailures))
        }
        entries[vin] = entry
    }

    /// Exponential backoff with jitter: `interval × 2^(failures-1)`, capped at `maxBackoff`, then
    /// a random value in its upper half, never below the interval.
    mutating func backoff(failures: Int) -> Duration {
        let base = policy.interval.milliseconds
        let cap = policy.maxBackoff.milliseconds
        let exponent = min(max(failures - 1, 0), 30)
        let raw = base > cap >> exponent ? cap : min(cap, base << exponent)
        let half = raw / 2
        let jittered = half + Int64(random.next() % UInt64(max(1, raw - half + 1)))
        return .milliseconds(max(base, jittered))
    }
}
