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
                try connection.cachedStatement("""
                    INSERT OR IGNORE INTO charging_sessions (vin, started_at, start_level) VALUES (?1, ?2, ?3)
                    """).run([.text(event.vin.rawValue), .integer(event.occurredAt.millisecondsSince1970), levels[event.vin].map(SQLiteValue.real) ?? .null])
            case .chargingCompleted, .chargingInterrupted, .chargingError:
                let reason = event.type == .chargingCompleted ? "completed" : event.type == .chargingError ? "error" : "interrupted"
                let open = try connection.cachedStatement("SELECT started_at FROM charging_sessions WHERE vin = ?1 AND ended_at IS NULL AND started_at <= ?2")
                try open.bind([.text(event.vin.rawValue), .integer(event.occurredAt.millisecondsSince1970)])
                var energy: Double?
                if try open.step() {
                    let startedAt = open.int(at: 0)
                    open.reset()
                    energy = try chargedEnergy(vin: event.vin, from: startedAt, to: event.occurredAt.millisecondsSince1970, connection: connection)
                }
                try connection.cachedStatement("""
                    UPDATE charging_sessions SET ended_at = ?2, end_level = ?3, end_reason = ?4, energy_kwh = ?5
                    WHERE vin = ?1 AND ended_at IS NULL AND started_at <= ?2
                    """).run([.text(event.vin.rawValue), .integer(event.occurredAt.millisecondsSince1970), levels[event.vin].map(SQLiteValue.real) ?? .null, .text(reason), energy.map(SQLiteValue.real) ?? .null])
            default:
                continue
            }
        }
    }

    /// `charging.charging_rate` (kW) integrated from `start` to `end` (ms): each observed rate holds
    /// until the next observation.
    func chargedEnergy(vin: VIN, from start: Int64, to end: Int64, connection: Connection) throws -> Double? {
        let statement = try connection.cachedStatement("""
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
            try connection.cachedStatement("""
                UPDATE charging_sessions SET ended_at = started_at + ?2, end_reason = 'timeout'
                WHERE ended_at IS NULL AND started_at + ?2 <= ?1
                """).run([.integer(now.millisecondsSince1970), .integer(timeout.milliseconds)])
            return connection.changes
        }
    }

    /// Charging sessions of `vin` (or all), oldest first.
    public func chargingSessions(vin: VIN? = nil) throws -> [ChargingSession] {
        try withConnection { connection in
            let statement = try connection.cachedStatement("""
                SELECT vin, started_at, ended_at, start_level, end_level, end_reason, energy_kwh FROM charging_sessions
                WHERE ?1 IS NULL OR vin = ?1 ORDER BY started_at, id
                """)
            try statement.bind([vin.map { .text($0.rawValue) } ?? .null])
            var sessions: [ChargingSession] = []
            while try statement.step() {
                guard let vin = statement.text(at: 0).flatMap(VIN.init) else { continue }
                sessions.append(ChargingSession(
                    vin: vin, startedAt: Timestamp(millisecondsSince1970: statement.int(at: 1)),
                    endedAt: statement.isNull(at: 2) ? nil : Timestamp(millisecondsSince1970: statement.int(at: 2)),
                    startLevel: statement.isNull(at: 3) ? nil : statement.double(at: 3),
                    endLevel: statement.isNull(at: 4) ? nil : statement.double(at: 4), endReason: statement.text(at: 5),
                    energyKWh: statement.isNull(at: 6) ? nil : statement.double(at: 6)))
            }
            return sessions
        }
    }

    /// Emits `vehicle_silent` for every vehicle that has sent no new observation for `after`
    /// (measured on the daemon's clock: the newest `latest.received_at`, so that a vehicle clock
    /// that is off does not matter) and that is not silent already; `occurred_at` is that
    /// receive time + `after`.
    ///
    /// - Returns: The events stored, with ids.
    public func detectSilentVehicles(now: Timestamp, after: Duration) throws -> [Event] {
        try withConnection { connection in
            try connection.transaction {
                let statement = try connection.cachedStatement("""
                    SELECT l.vin, max(l.received_at) AS newest FROM latest l
                    WHERE NOT EXISTS (SELECT 1 FROM rule_state r WHERE r.vin = l.vin AND r.key = 'silent')
                    GROUP BY l.vin HAVING newest + ?2 <= ?1
                    """)
                try statement.bind([.integer(now.millisecondsSince1970), .integer(after.milliseconds)])
                var found: [(VIN, Int64)] = []
                while try statement.step() {
                    if let vin = statement.text(at: 0).flatMap(VIN.init) { found.append((vin, statement.int(at: 1))) }
                }
                var events: [Event] = []
                let mark = try connection.cachedStatement("""
                    INSERT INTO rule_state (vin, key, value, updated_at) VALUES (?1, 'silent', ?2, ?3)
                    ON CONFLICT (vin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                    """)
                for (vin, newest) in found {
                    try mark.run([.text(vin.rawValue), .text(String(newest)), .integer(now.millisecondsSince1970)])
                    events.append(Event(vin: vin, type: .vehicleSilent, instance: "", occurredAt: Timestamp(millisecondsSince1970: newest).adding(after), detectedAt: now, previousValue: "reporting", newValue: "silent"))
                }
                return try insert(events, connection: connection)
            }
        }
    }

    /// Records whether the API says privacy mode is on for `vin`; emits `privacy_mode_entered` or
    /// `privacy_mode_left` on a change (state key `privacy`).
    ///
    /// The daemon passes this with the poll instead (``PollRecord/privacyMode``), so that the
    /// state, the event and the poll row are one write.
    ///
    /// - Returns: The event stored, if any.
    public func setPrivacyMode(_ active: Bool, vin: VIN, at time: Timestamp) throws -> [Event] {
        try withConnection { connection in
            try connection.transaction { try applyPrivacyMode(active, vin: vin, at: time, connection: connection) }
        }
    }

    /// The privacy-mode state change of `vin` and its event, inside the caller's transaction.
    func applyPrivacyMode(_ active: Bool, vin: VIN, at time: Timestamp, connection: Connection) throws -> [Event] {
        let read = try connection.cachedStatement("SELECT 1 FROM rule_state WHERE vin = ?1 AND key = 'privacy'")
        try read.bind([.text(vin.rawValue)])
        let wasActive = try read.step()
        read.reset()
        guard wasActive != active else { return [] }
        if active {
            try connection.cachedStatement("""
                INSERT INTO rule_state (vin, key, value, updated_at) VALUES (?1, 'privacy', 'on', ?2)
                ON CONFLICT (vin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                """).run([.text(vin.rawValue), .integer(time.millisecondsSince1970)])
        } else {
            try connection.cachedStatement("DELETE FROM rule_state WHERE vin = ?1 AND key = 'privacy'").run([.text(vin.rawValue)])
        }
        let event = Event(vin: vin, type: active ? .privacyModeEntered : .privacyModeLeft, instance: "", occurredAt: time, detectedAt: time,
                          previousValue: active ? "off" : "on", newValue: active ? "on" : "off")
        return try insert([event], connection: connection)
    }
}
