import FleetModel

/// The daemon's periodic work besides polling, on the same time model as ``PollSchedule``: a
/// value that says what is due at the time it is given, so that the polling loop has no timer
/// of its own and tests drive every chore with a manual clock.
public struct Chores: Sendable {
    /// One kind of periodic work.
    public enum Chore: Sendable, Hashable, CaseIterable {
        /// List the fleet (Fleet Clearance API) and update who is polled.
        case fleetSync
        /// Count polls made by hand (`poll --store`, another process) against the daily budgets.
        case manualPollCount
        /// Detect silent vehicles, close stale charging sessions, apply retention, bound the WAL.
        case maintenance
        /// Write the polling states of the vehicles polled since the last save.
        case scheduleSave
        /// Tell the service manager the loop still turns (`WATCHDOG=1`).
        case watchdog
        /// Tell the service manager what the daemon is doing (`STATUS=`).
        case status
        /// The consent grants: the state file read again when it changed (vehicles connected or
        /// revoked meanwhile), and idle grants refreshed.
        case consent
    }

    /// How often each chore runs.
    public struct Cadence: Sendable, Hashable {
        /// `fleet.sync_interval`; `nil` when the fleet is not synced.
        public var fleetSync: Duration?
        /// `nil` when no daily budget is set (nothing to count).
        public var manualPollCount: Duration?
        /// ``Chore/maintenance``: once a minute unless silence needs it sooner.
        public var maintenance: Duration
        /// How long polling states may wait to be written: a second of lost due times costs
        /// nothing at a restart (overdue vehicles are spread), a transaction per poll does.
        public var scheduleSaveDelay: Duration
        /// Half of the service manager's `WATCHDOG_USEC`; `nil` without a watchdog.
        public var watchdog: Duration?
        /// How often `STATUS=` is refreshed; `nil` without a service manager.
        public var status: Duration?
        /// How often the consent grants are looked at; `nil`: never.
        public var consent: Duration?

        public init(
            fleetSync: Duration?, manualPollCount: Duration? = .seconds(10), maintenance: Duration = .seconds(60),
            scheduleSaveDelay: Duration = .seconds(1), watchdog: Duration? = nil, status: Duration? = nil,
            consent: Duration? = nil
        ) {
            self.consent = consent
            self.watchdog = watchdog
            self.status = status
            self.fleetSync = fleetSync
            self.manualPollCount = manualPollCount
            self.maintenance = maintenance
            self.scheduleSaveDelay = scheduleSaveDelay
        }
    }

    /// How often each chore runs.
    public let cadence: Cadence
    /// When each chore is next due, UTC; absent when it is not scheduled.
    private var dueAt: [Chore: Timestamp] = [:]
    /// Fleet listings failed in a row.
    public private(set) var fleetSyncFailures = 0
    private var random: SplitMix64

    /// The first wait after a failed fleet listing, doubled at each failure in a row.
    public static let fleetSyncFirstRetry: Duration = .seconds(1)

    /// Every periodic chore is first due at `start`; ``Chore/scheduleSave`` only once a poll
    /// needs saving (``needsSave(at:)``).
    ///
    /// - Parameter seed: Seeds the jitter of the fleet-sync retries.
    public init(cadence: Cadence, start: Timestamp, seed: UInt64 = 0) {
        self.cadence = cadence
        self.random = SplitMix64(seed: seed)
        if cadence.fleetSync != nil { dueAt[.fleetSync] = start }
        if cadence.manualPollCount != nil { dueAt[.manualPollCount] = start }
        dueAt[.maintenance] = start
        if cadence.watchdog != nil { dueAt[.watchdog] = start }
        if cadence.status != nil { dueAt[.status] = start }
        if cadence.consent != nil { dueAt[.consent] = start }
    }

    /// The chores due at `now`, in the order of ``Chore`` (the fleet first: it decides who is polled).
    public func due(at now: Timestamp) -> [Chore] {
        Chore.allCases.filter { chore in dueAt[chore].map { $0 <= now } ?? false }
    }

    /// When `chore` is next due, or `nil` when it is not scheduled.
    public func nextDue(_ chore: Chore) -> Timestamp? {
        dueAt[chore]
    }

    /// The earliest time a chore is due, or `nil` when none is scheduled.
    public var nextDue: Timestamp? {
        dueAt.values.min()
    }

    /// Records that `chore` ran at `now`: a periodic chore is next due one period later; a save
    /// waits for the next poll that needs one.
    public mutating func completed(_ chore: Chore, at now: Timestamp) {
        switch chore {
        case .fleetSync:
            dueAt[chore] = cadence.fleetSync.map { now.adding($0) }
            fleetSyncFailures = 0
        case .manualPollCount: dueAt[chore] = cadence.manualPollCount.map { now.adding($0) }
        case .maintenance: dueAt[chore] = now.adding(cadence.maintenance)
        case .scheduleSave: dueAt[chore] = nil
        case .watchdog: dueAt[chore] = cadence.watchdog.map { now.adding($0) }
        case .status: dueAt[chore] = cadence.status.map { now.adding($0) }
        case .consent: dueAt[chore] = cadence.consent.map { now.adding($0) }
        }
    }

    /// A poll ended whose polling state is to be written: the save is due within
    /// ``Cadence/scheduleSaveDelay`` (at once when `urgent`, e.g. a vehicle that started backing off).
    public mutating func needsSave(at now: Timestamp, urgent: Bool = false) {
        let due = urgent ? now : now.adding(cadence.scheduleSaveDelay)
        dueAt[.scheduleSave] = min(dueAt[.scheduleSave] ?? due, due)
    }

    /// Moves the next fleet listing to `time` (it waits for the next access-token attempt).
    public mutating func postponeFleetSync(until time: Timestamp) {
        guard dueAt[.fleetSync] != nil else { return }
        dueAt[.fleetSync] = time
    }

    /// Records a failed fleet listing at `now` and schedules the next try: a backoff from
    /// ``fleetSyncFirstRetry`` doubling at each failure in a row, at most a fifth of the sync
    /// interval and 5 minutes, with jitter (between half and all of it), so that a daemon started
    /// before the network is up, or during an outage, polls within seconds of its end.
    ///
    /// - Returns: The wait before the next try.
    @discardableResult
    public mutating func fleetSyncFailed(at now: Timestamp) -> Duration {
        fleetSyncFailures += 1
        let cap = min((cadence.fleetSync ?? .seconds(300)) / 5, .seconds(300))
        let exponent = min(fleetSyncFailures - 1, 20)
        let full = min(Self.fleetSyncFirstRetry * (1 << exponent), cap)
        let fraction = 0.5 + Double(random.next() >> 11) / Double(1 << 53) / 2
        let wait = Duration.milliseconds(max(1, Int64(Double(full.milliseconds) * fraction)))
        dueAt[.fleetSync] = now.adding(wait)
        return wait
    }
}
