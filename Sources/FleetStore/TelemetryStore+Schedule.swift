import FleetModel

/// One VIN's polling state: a row of the `schedule` table.
public struct ScheduleRow: Sendable, Hashable {
    public var vin: VIN
    /// When the VIN is next due, UTC.
    public var nextDueAt: Timestamp
    /// `ok`, `backoff`, `rate_limited`, `asleep`, `pending`, `privacy`, `not_cleared`,
    /// `consent_removed` or `error`.
    public var health: String
    /// The last error, when the health is not `ok`.
    public var reason: String?
    public var consecutiveFailures: Int
    /// `driving`, `charging` or `parked` at the last successful poll.
    public var activity: String?
    /// Polls of this VIN during ``day``.
    public var pollsToday: Int
    /// The UTC day (days since 1970-01-01) ``pollsToday`` counts.
    public var day: Int64
    public var updatedAt: Timestamp

    public init(
        vin: VIN, nextDueAt: Timestamp, health: String, reason: String?, consecutiveFailures: Int, activity: String?,
        pollsToday: Int, day: Int64, updatedAt: Timestamp
    ) {
        self.vin = vin
        self.nextDueAt = nextDueAt
        self.health = health
        self.reason = reason
        self.consecutiveFailures = consecutiveFailures
        self.activity = activity
        self.pollsToday = pollsToday
        self.day = day
        self.updatedAt = updatedAt
    }
}

/// The application-wide polling state that survives a restart: the `settings` rows
/// `learned_rate_per_second`, `paused_until` (ms since 1970, UTC) and `pause_reason`.
public struct ApplicationScheduleState: Sendable, Hashable {
    /// The request rate learned from the API's refusals, requests per second; `nil`: none learned.
    public var learnedRatePerSecond: Double?
    /// The end of a fleet-wide pause, UTC; `nil`: not paused.
    public var pausedUntil: Timestamp?
    /// Why the fleet is paused: `rate_limited`, `daily_budget` or `token_unavailable`.
    public var pauseReason: String?

    public init(learnedRatePerSecond: Double? = nil, pausedUntil: Timestamp? = nil, pauseReason: String? = nil) {
        self.learnedRatePerSecond = learnedRatePerSecond
        self.pausedUntil = pausedUntil
        self.pauseReason = pauseReason
    }
}

extension TelemetryStore {
    /// Saves polling states and, when given, the application-wide state, in one transaction.
    public func saveSchedule(_ rows: [ScheduleRow], application: ApplicationScheduleState? = nil) throws {
        guard !rows.isEmpty || application != nil else { return }
        try withConnection { connection in
            try connection.transaction {
                if let application {
                    let setting = try connection.cachedStatement(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                    )
                    try setting.run([
                        .text("learned_rate_per_second"),
                        application.learnedRatePerSecond.map(SQLiteValue.real) ?? .null,
                    ])
                    try setting.run([
                        .text("paused_until"),
                        application.pausedUntil.map { .integer($0.millisecondsSince1970) } ?? .null,
                    ])
                    try setting.run([.text("pause_reason"), application.pauseReason.map(SQLiteValue.text) ?? .null])
                }
                let statement = try connection.cachedStatement(
                    """
                    INSERT INTO schedule (vin, next_due_at, health, reason, consecutive_failures, activity, polls_today, day, updated_at)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                    ON CONFLICT (vin) DO UPDATE SET next_due_at = excluded.next_due_at, health = excluded.health,
                        reason = excluded.reason, consecutive_failures = excluded.consecutive_failures,
                        activity = excluded.activity, polls_today = excluded.polls_today, day = excluded.day,
                        updated_at = excluded.updated_at
                    """)
                for row in rows {
                    try statement.run([
                        .text(row.vin.rawValue), .integer(row.nextDueAt.millisecondsSince1970), .text(row.health),
                        row.reason.map(SQLiteValue.text) ?? .null, .integer(Int64(row.consecutiveFailures)),
                        row.activity.map(SQLiteValue.text) ?? .null, .integer(Int64(row.pollsToday)), .integer(row.day),
                        .integer(row.updatedAt.millisecondsSince1970),
                    ])
                }
            }
        }
    }

    /// The application-wide state saved by ``saveSchedule(_:application:)``; empty when none was.
    public func loadApplicationState() throws -> ApplicationScheduleState {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                "SELECT key, value FROM settings WHERE key IN ('learned_rate_per_second', 'paused_until', 'pause_reason')"
            )
            try statement.bind([])
            var state = ApplicationScheduleState()
            while try statement.step() {
                guard !statement.isNull(at: 1) else { continue }
                switch statement.text(at: 0) {
                case "learned_rate_per_second":
                    let rate = statement.double(at: 1)
                    state.learnedRatePerSecond = rate.isFinite && rate > 0 ? rate : nil
                case "paused_until": state.pausedUntil = Timestamp(millisecondsSince1970: statement.int(at: 1))
                case "pause_reason": state.pauseReason = statement.text(at: 1)
                default: break
                }
            }
            return state
        }
    }

    /// Every saved polling state, by VIN.
    public func loadSchedule() throws -> [VIN: ScheduleRow] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT vin, next_due_at, health, reason, consecutive_failures, activity, polls_today, day, updated_at FROM schedule
                """)
            try statement.bind([])
            var rows: [VIN: ScheduleRow] = [:]
            while try statement.step() {
                guard let vin = statement.text(at: 0).flatMap(VIN.init) else { continue }
                rows[vin] = ScheduleRow(
                    vin: vin, nextDueAt: Timestamp(millisecondsSince1970: statement.int(at: 1)),
                    health: statement.text(at: 2) ?? "ok",
                    reason: statement.text(at: 3), consecutiveFailures: Int(statement.int(at: 4)),
                    activity: statement.text(at: 5),
                    pollsToday: Int(statement.int(at: 6)), day: statement.int(at: 7),
                    updatedAt: Timestamp(millisecondsSince1970: statement.int(at: 8)))
            }
            return rows
        }
    }

    /// Polls requested at or after `since` (UTC), all VINs.
    public func pollCount(since: Timestamp) throws -> Int {
        try withConnection { connection in
            Int(
                try connection.scalarInt(
                    "SELECT count(*) FROM poll_log WHERE requested_at >= ?1", [.integer(since.millisecondsSince1970)])
                    ?? 0
            )
        }
    }

    /// Manual polls (`poll --store`) with a row id above `afterID`, oldest first; and the highest id seen.
    public func manualPolls(afterID: Int64) throws -> (polls: [(VIN, Timestamp)], lastID: Int64) {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                "SELECT id, vin, requested_at FROM polls WHERE id > ?1 AND manual = 1 ORDER BY id")
            try statement.bind([.integer(afterID)])
            var polls: [(VIN, Timestamp)] = []
            var last = afterID
            while try statement.step() {
                last = statement.int(at: 0)
                if let vin = statement.text(at: 1).flatMap(VIN.init) {
                    polls.append((vin, Timestamp(millisecondsSince1970: statement.int(at: 2))))
                }
            }
            return (polls, last)
        }
    }

    /// The highest `polls.id`, or 0.
    public func lastPollID() throws -> Int64 {
        try withConnection { connection in try connection.scalarInt("SELECT max(id) FROM poll_log") ?? 0 }
    }

    /// What the polls with a row id above `afterID` wrote on average (`polls.samples_written` and
    /// `polls.events_emitted`): new sample rows and events stored per poll, 0 when there is none.
    public func averageWrites(afterID: Int64) throws -> (samplesPerPoll: Double, eventsPerPoll: Double) {
        try withConnection { connection in
            let statement = try connection.makeStatement(
                "SELECT avg(samples_written), avg(events_emitted) FROM poll_log WHERE id > ?1")
            try statement.bind([.integer(afterID)])
            defer { statement.reset() }
            guard try statement.step() else { return (0, 0) }
            return (statement.double(at: 0), statement.double(at: 1))
        }
    }

    /// Polls per VIN requested at or after `since` (UTC), scheduled and manual.
    public func pollCountsByVIN(since: Timestamp) throws -> [VIN: Int] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT v.vin, c.polls FROM (
                    SELECT vehicle_id, count(*) AS polls FROM poll_log WHERE requested_at >= ?1 GROUP BY vehicle_id
                ) c JOIN vehicles v ON v.id = c.vehicle_id
                """)
            try statement.bind([.integer(since.millisecondsSince1970)])
            var counts: [VIN: Int] = [:]
            while try statement.step() {
                if let vin = statement.text(at: 0).flatMap(VIN.init) { counts[vin] = Int(statement.int(at: 1)) }
            }
            return counts
        }
    }
}
