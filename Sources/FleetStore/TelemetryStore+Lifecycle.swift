import FleetModel

/// A charging session: a row of the `charging_sessions` table.
public struct ChargingSession: Sendable, Hashable {
    public var vin: VIN
    /// The `charging_started` observation's time, UTC.
    public var startedAt: Timestamp
    /// When it ended (the ending event's time, or start + timeout), UTC; `nil` while open.
    public var endedAt: Timestamp?
    /// `charging.battery_level` (percent) at the start and the end, when known.
    public var startLevel: Double?
    public var endLevel: Double?
    /// `completed`, `interrupted`, `error` or `timeout`; `nil` while open.
    public var endReason: String?
    /// Energy charged, in kWh: `charging.charging_rate` (kW) integrated over the session's
    /// observations (each rate holds until the next one); `nil` when no rate was observed.
    public var energyKWh: Double? = nil
}

extension TelemetryStore {
    /// Opens and closes charging sessions from the charging events just stored (same transaction).
    func updateChargingSessions(for events: [Event], levels: [VIN: Double], connection: Connection) throws {
        for event in events {
            switch event.type {
            case .chargingStarted:
                try connection.cachedStatement(
                    """
                    INSERT OR IGNORE INTO charging_sessions (vin, started_at, start_level) VALUES (?1, ?2, ?3)
                    """
                ).run([
                    .text(event.vin.rawValue), .integer(event.occurredAt.millisecondsSince1970),
                    levels[event.vin].map(SQLiteValue.real) ?? .null,
                ])
            case .chargingCompleted, .chargingInterrupted, .chargingError:
                let reason =
                    event.type == .chargingCompleted
                    ? "completed" : event.type == .chargingError ? "error" : "interrupted"
                let open = try connection.cachedStatement(
                    "SELECT started_at FROM charging_sessions WHERE vin = ?1 AND ended_at IS NULL AND started_at <= ?2")
                try open.bind([.text(event.vin.rawValue), .integer(event.occurredAt.millisecondsSince1970)])
                var energy: Double?
                if try open.step() {
                    let startedAt = open.int(at: 0)
                    open.reset()
                    energy = try chargedEnergy(
                        vin: event.vin, from: startedAt, to: event.occurredAt.millisecondsSince1970,
                        connection: connection)
                }
                try connection.cachedStatement(
                    """
                    UPDATE charging_sessions SET ended_at = ?2, end_level = ?3, end_reason = ?4, energy_kwh = ?5
                    WHERE vin = ?1 AND ended_at IS NULL AND started_at <= ?2
                    """
                ).run([
                    .text(event.vin.rawValue), .integer(event.occurredAt.millisecondsSince1970),
                    levels[event.vin].map(SQLiteValue.real) ?? .null, .text(reason),
                    energy.map(SQLiteValue.real) ?? .null,
                ])
            default:
                continue
            }
        }
    }

    /// `charging.charging_rate` (kW) integrated from `start` to `end` (ms): each observed rate holds
    /// until the next observation.
    func chargedEnergy(vin: VIN, from start: Int64, to end: Int64, connection: Connection) throws -> Double? {
        let statement = try connection.cachedStatement(
            """
            SELECT observed_at, value_num FROM samples
            WHERE vin = ?1 AND property = 'charging.charging_rate' AND instance = '' AND observed_at >= ?2 AND observed_at <= ?3
              AND unit = 'kilowatts' ORDER BY observed_at
            """)
        try statement.bind([.text(vin.rawValue), .integer(start), .integer(end)])
        var points: [(Int64, Double)] = []
        while try statement.step() { points.append((statement.int(at: 0), statement.double(at: 1))) }
        guard !points.isEmpty else { return nil }
        var kWh = 0.0
        for (index, point) in points.enumerated() {
            let until = index + 1 < points.count ? points[index + 1].0 : end
            kWh += point.1 * Double(until - point.0) / 3_600_000
        }
        return (kWh * 1000).rounded() / 1000
    }

    /// Closes charging sessions open longer than `timeout` (their end was never observed) with
    /// `end_reason = timeout`, ended at start + timeout.
    ///
    /// - Returns: How many sessions were closed.
    @discardableResult
    public func closeStaleChargingSessions(now: Timestamp, timeout: Duration) throws -> Int {
        try withConnection { connection in
            try connection.cachedStatement(
                """
                UPDATE charging_sessions SET ended_at = started_at + ?2, end_reason = 'timeout'
                WHERE ended_at IS NULL AND started_at + ?2 <= ?1
                """
            ).run([.integer(now.millisecondsSince1970), .integer(timeout.milliseconds)])
            return connection.changes
        }
    }

    /// Charging sessions of `vin` (or all), oldest first.
    public func chargingSessions(vin: VIN? = nil) throws -> [ChargingSession] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT vin, started_at, ended_at, start_level, end_level, end_reason, energy_kwh FROM charging_sessions
                WHERE ?1 IS NULL OR vin = ?1 ORDER BY started_at, id
                """)
            try statement.bind([vin.map { .text($0.rawValue) } ?? .null])
            var sessions: [ChargingSession] = []
            while try statement.step() {
                guard let vin = statement.text(at: 0).flatMap(VIN.init) else { continue }
                sessions.append(
                    ChargingSession(
                        vin: vin, startedAt: Timestamp(millisecondsSince1970: statement.int(at: 1)),
                        endedAt: statement.isNull(at: 2) ? nil : Timestamp(millisecondsSince1970: statement.int(at: 2)),
                        startLevel: statement.isNull(at: 3) ? nil : statement.double(at: 3),
                        endLevel: statement.isNull(at: 4) ? nil : statement.double(at: 4),
                        endReason: statement.text(at: 5),
                        energyKWh: statement.isNull(at: 6) ? nil : statement.double(at: 6)))
            }
            return sessions
        }
    }

    /// Hands the rules every vehicle that is not silent and has sent no new observation for
    /// `detector.silentAfter` (measured on the daemon's clock: the newest `latest.received_at`,
    /// so that a vehicle clock that is off does not matter), and stores the events and rule
    /// state they decide (`vehicle_silent`), in one transaction.
    ///
    /// - Returns: The events stored, with ids.
    public func detectSilentVehicles(now: Timestamp, detector: some ChangeDetecting) throws -> [Event] {
        guard let after = detector.silentAfter else { return [] }
        return try withConnection { connection in
            try connection.transaction {
                let statement = try connection.cachedStatement(
                    """
                    SELECT l.vin, max(l.received_at) AS newest FROM latest l
                    WHERE NOT EXISTS (SELECT 1 FROM rule_state r WHERE r.vin = l.vin AND r.key = ?3)
                    GROUP BY l.vin HAVING newest + ?2 <= ?1
                    """)
                try statement.bind([
                    .integer(now.millisecondsSince1970), .integer(after.milliseconds),
                    .text(RuleStateKey.silent.rawValue),
                ])
                var found: [(VIN, Int64)] = []
                while try statement.step() {
                    if let vin = statement.text(at: 0).flatMap(VIN.init) { found.append((vin, statement.int(at: 1))) }
                }
                var events: [Event] = []
                for (vin, newest) in found {
                    var state = try ruleState(vin: vin)
                    let before = state
                    events += detector.silenceEvents(
                        vin: vin, lastReceivedAt: Timestamp(millisecondsSince1970: newest), now: now, state: &state)
                    if state != before { try saveRuleState(state, replacing: before, vin: vin, at: now) }
                }
                return try insert(events, connection: connection)
            }
        }
    }

    /// Records whether the API says privacy mode is on for `vin` and stores the events the rules
    /// decide for it (`privacy_mode_entered`, `privacy_mode_left`), in one transaction.
    ///
    /// The daemon passes this with the poll instead (``PollRecord/privacyMode``), so that the
    /// state, the event and the poll row are one write.
    ///
    /// - Returns: The events stored, with ids.
    public func setPrivacyMode(
        _ active: Bool, vin: VIN, at time: Timestamp, detector: some ChangeDetecting
    ) throws -> [Event] {
        try withConnection { connection in
            try connection.transaction {
                var state = try ruleState(vin: vin)
                let before = state
                let events = detector.privacyEvents(vin: vin, privacyMode: active, at: time, state: &state)
                if state != before { try saveRuleState(state, replacing: before, vin: vin, at: time) }
                return try insert(events, connection: connection)
            }
        }
    }
}
