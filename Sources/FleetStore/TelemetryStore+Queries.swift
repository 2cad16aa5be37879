import FleetModel

/// One line of `fleet-telemetry status`: what a fleet operator wants to see per vehicle.
public struct VehicleStatus: Sendable, Hashable {
    /// The vehicle.
    public var vin: VIN
    /// The newest observation time of any property, UTC (`vehicles.last_observed_at`).
    public var lastSeen: Timestamp?
    /// Percent 0–100.
    public var batteryPercent: Double?
    /// Kilometers (`charging.estimated_range`).
    public var rangeKm: Double?
    /// `doors.locks_state`, else whether every `doors.locks.lock_state` is `locked`.
    public var locks: String?
    /// `charging.status`.
    public var charging: String?
    /// `vehicle_location.coordinates.latitude`, degrees (WGS 84).
    public var latitude: Double?
    /// `vehicle_location.coordinates.longitude`, degrees (WGS 84).
    public var longitude: Double?
    /// The scheduler's health (`ok`, `backoff`, …) and the polling status (`active`, …).
    public var health: String?
    public var status: String?
    /// Why the health is not `ok` (the scheduler's reason: the last error, a pause; else the
    /// polling status's reason, such as `clearance revoked`), or `nil`.
    public var reason: String?
    /// When the daemon last polled it (wall clock, UTC; `vehicles.last_polled_at`), `nil` if never.
    public var lastPolled: Timestamp?
    /// When the daemon polls it next (UTC; `schedule.next_due_at`), `nil` when it has no schedule.
    public var nextDue: Timestamp?
    /// How many of the values shown are stale: observed longer ago than `database.stale_after`,
    /// or reported as failed by the newest response (see `latest_view.stale` for every property).
    public var staleValues = 0
}

extension TelemetryStore {
    /// The status of every vehicle, by VIN.
    ///
    /// Two passes in VIN order, merged: `vehicles` (with the schedule's health and the newest
    /// observation time) and the `latest_status` covering index, which holds only the properties
    /// shown. The cost grows with the number of vehicles, never with the history in `samples`.
    ///
    /// - Parameter now: The time against which shown values are counted stale (`stale_after_seconds`).
    public func status(now: Timestamp = SystemWallClock().now()) throws -> [VehicleStatus] {
        try withConnection { connection in
            let staleAfter =
                try connection.scalarInt("SELECT value FROM settings WHERE key = 'stale_after_seconds'") ?? 3600
            // A hand-edited setting of any size must not overflow: clamp to ±292 million years.
            let (scaled, overflow) = max(staleAfter, 0).multipliedReportingOverflow(by: 1000)
            let (cutoff, underflow) = now.millisecondsSince1970.subtractingReportingOverflow(
                overflow ? Int64.max : scaled)
            let staleBefore = underflow ? Int64.min : cutoff
            let vehicles = try connection.cachedStatement(
                """
                SELECT v.vin, v.status, s.health, v.last_observed_at, coalesce(s.reason, v.status_reason),
                    v.last_polled_at, s.next_due_at
                FROM vehicles v LEFT JOIN schedule s ON s.vin = v.vin ORDER BY v.vin
                """)
            try vehicles.bind([])
            var result: [VehicleStatus] = []
            var index: [String: Int] = [:]
            while try vehicles.step() {
                guard let text = vehicles.text(at: 0), let vin = VIN(text) else { continue }
                var entry = VehicleStatus(vin: vin, health: vehicles.text(at: 2), status: vehicles.text(at: 1))
                entry.lastSeen = vehicles.isNull(at: 3) ? nil : Timestamp(millisecondsSince1970: vehicles.int(at: 3))
                entry.reason = vehicles.text(at: 4)
                entry.lastPolled = vehicles.isNull(at: 5) ? nil : Timestamp(millisecondsSince1970: vehicles.int(at: 5))
                entry.nextDue = vehicles.isNull(at: 6) ? nil : Timestamp(millisecondsSince1970: vehicles.int(at: 6))
                index[text] = result.count
                result.append(entry)
            }
            // The property as a small code, so that no text is made per row.
            let values = try connection.cachedStatement(
                """
                SELECT vin, CASE property WHEN 'charging.battery_level' THEN 1 WHEN 'charging.estimated_range' THEN 2
                    WHEN 'doors.locks_state' THEN 3 WHEN 'doors.locks.lock_state' THEN 4 WHEN 'charging.status' THEN 5
                    WHEN 'vehicle_location.coordinates.latitude' THEN 6 WHEN 'vehicle_location.coordinates.longitude' THEN 7 END,
                    instance = '', value_num, value_text, failure_reason IS NOT NULL OR observed_at < ?1
                FROM series INDEXED BY latest_status
                WHERE current = 1 AND \(Schema.statusProperties)
                ORDER BY vin
                """)
            try values.bind([.integer(staleBefore)])
            var currentVIN = ""
            var current = -1
            var allLocked: Bool?
            func finish() {
                if current >= 0, result[current].locks == nil, let allLocked {
                    result[current].locks = allLocked ? "locked" : "unlocked"
                }
            }
            while try values.step() {
                let vin = values.text(at: 0) ?? ""
                if vin != currentVIN {
                    finish()
                    currentVIN = vin
                    current = index[vin] ?? -1
                    allLocked = nil
                }
                guard current >= 0 else { continue }
                let code = values.int(at: 1)
                let plain = values.int(at: 2) == 1
                guard plain || code == 4 else { continue }
                let number = values.isNull(at: 3) ? nil : values.double(at: 3)
                if values.int(at: 5) == 1 { result[current].staleValues += 1 }
                switch code {
                case 1: result[current].batteryPercent = number
                case 2: result[current].rangeKm = number
                case 3: result[current].locks = values.text(at: 4)
                case 4: allLocked = (allLocked ?? true) && values.text(at: 4) == "locked"
                case 5: result[current].charging = values.text(at: 4)
                case 6: result[current].latitude = number
                case 7: result[current].longitude = number
                default: break
                }
            }
            finish()
            return result
        }
    }

    /// The largest event id stored, `nil` when there is no event: where `events --follow` starts.
    public func newestEventID() throws -> Int64? {
        try withConnection { connection in try connection.scalarInt("SELECT max(id) FROM events") }
    }

    /// Which events ``events(matching:)`` returns.
    public struct EventQuery: Sendable, Hashable {
        /// Only this vehicle's.
        public var vin: VIN?
        /// Only this type's.
        public var type: EventType?
        /// Detected at or after this time (UTC, `detected_at`): what the daemon learned since then,
        /// late reports included.
        public var detectedSince: Timestamp?
        /// Occurred at or after this time (UTC, `occurred_at`, the vehicle's own time).
        public var occurredSince: Timestamp?
        /// Only events with a larger `id`, oldest first: the way to resume or follow.
        public var afterID: Int64?
        /// At most this many: the newest ones, or with ``afterID`` the first ones after it.
        public var limit: Int

        public init(
            vin: VIN? = nil, type: EventType? = nil, detectedSince: Timestamp? = nil,
            occurredSince: Timestamp? = nil, afterID: Int64? = nil, limit: Int = 1000
        ) {
            self.vin = vin
            self.type = type
            self.detectedSince = detectedSince
            self.occurredSince = occurredSince
            self.afterID = afterID
            self.limit = limit
        }
    }

    /// Events matching `query`: without ``EventQuery/afterID`` the newest `limit` ones ordered by
    /// `occurred_at` then `id`; with it the first `limit` ones after that id, by `id` (the order
    /// they were stored in).
    ///
    /// - Returns: The events and whether more matched than `limit`.
    public func events(matching query: EventQuery) throws -> (events: [Event], truncated: Bool) {
        try withConnection { connection in
            let filter = """
                (?1 IS NULL OR vin = ?1) AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR detected_at >= ?3)
                AND (?4 IS NULL OR occurred_at >= ?4) AND (?5 IS NULL OR id > ?5)
                """
            let statement = try connection.cachedStatement(
                query.afterID == nil
                    ? """
                    SELECT id, vin, type, instance, occurred_at, detected_at, previous_value, new_value FROM (
                        SELECT * FROM events WHERE \(filter) ORDER BY occurred_at DESC, id DESC LIMIT ?6)
                    ORDER BY occurred_at, id
                    """
                    : """
                    SELECT id, vin, type, instance, occurred_at, detected_at, previous_value, new_value FROM events
                    WHERE \(filter) ORDER BY id LIMIT ?6
                    """)
            try statement.bind([
                query.vin.map { .text($0.rawValue) } ?? .null, query.type.map { .text($0.rawValue) } ?? .null,
                query.detectedSince.map { .integer($0.millisecondsSince1970) } ?? .null,
                query.occurredSince.map { .integer($0.millisecondsSince1970) } ?? .null,
                query.afterID.map { .integer($0) } ?? .null, .integer(Int64(query.limit) + 1),
            ])
            var result: [Event] = []
            while try statement.step() {
                if let event = Self.event(statement) { result.append(event) }
            }
            guard result.count > query.limit else { return (result, false) }
            // One more than asked for was read to tell; drop the oldest (or, after an id, the last).
            return (query.afterID == nil ? Array(result.dropFirst()) : Array(result.dropLast()), true)
        }
    }

    /// What the database knows of one property of one vehicle, for explaining an empty history.
    public struct PropertyPresence: Sendable, Hashable {
        /// Whether `vin` is in the database at all.
        public var vehicleKnown: Bool
        /// The newest observation of the property for `vin` (UTC), `nil` when it has none.
        public var newest: Timestamp?
        /// The property paths stored for `vin` (or for any vehicle when `vin` has none), sorted.
        public var knownProperties: [String]
    }

    /// Whether `vin` and its `property` are stored, from `latest` (no scan of `samples`).
    public func presence(vin: VIN, property: String) throws -> PropertyPresence {
        try withConnection { connection in
            let known = try connection.scalarInt("SELECT count(*) FROM vehicles WHERE vin = ?1", [.text(vin.rawValue)])
            let newest = try connection.scalarInt(
                "SELECT max(observed_at) FROM latest WHERE vin = ?1 AND property = ?2",
                [.text(vin.rawValue), .text(property)])
            var names: [String] = []
            for sql in [
                "SELECT DISTINCT property FROM latest WHERE vin = ?1 ORDER BY property",
                "SELECT DISTINCT property FROM latest ORDER BY property",
            ] where names.isEmpty {
                let statement = try connection.makeStatement(sql)
                try statement.bind(sql.contains("?1") ? [.text(vin.rawValue)] : [])
                while try statement.step() { if let name = statement.text(at: 0) { names.append(name) } }
            }
            return PropertyPresence(
                vehicleKnown: (known ?? 0) > 0, newest: newest.map { Timestamp(millisecondsSince1970: $0) },
                knownProperties: names)
        }
    }

    /// The history of one property of `vin` (every instance), between `since` and `until` (UTC), oldest first.
    public func history(vin: VIN, property: String, since: Timestamp?, until: Timestamp?) throws -> [Sample] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT instance, observed_at, value_num, value_text, unit FROM samples
                WHERE vin = ?1 AND property = ?2 AND observed_at >= ?3 AND observed_at <= ?4
                ORDER BY observed_at, instance
                """)
            try statement.bind([
                .text(vin.rawValue), .text(property), .integer(since?.millisecondsSince1970 ?? Int64.min),
                .integer(until?.millisecondsSince1970 ?? Int64.max),
            ])
            var result: [Sample] = []
            while try statement.step() {
                let value: SampleValue =
                    statement.isNull(at: 2) ? .text(statement.text(at: 3) ?? "") : .number(statement.double(at: 2))
                result.append(
                    Sample(
                        vin: vin, property: property, instance: statement.text(at: 0) ?? "", value: value,
                        unit: statement.text(at: 4), observedAt: Timestamp(millisecondsSince1970: statement.int(at: 1)))
                )
            }
            return result
        }
    }

    /// Writes a consistent copy of the live database to `destination` (`VACUUM INTO`), without
    /// stopping ingestion for longer than the copy's read transaction.
    ///
    /// - Throws: ``SQLiteError`` (the destination exists, the disk is full, …).
    public func backup(to destination: String) throws {
        try withConnection { connection in
            try connection.makeStatement("VACUUM INTO ?1").run([.text(destination)])
        }
    }

    /// Removes every row of `vin`, in one transaction.
    ///
    /// - Returns: How many rows were deleted.
    @discardableResult
    public func purge(vin: VIN) throws -> Int {
        latestCache.removeAll()
        // The vehicle's keyframe goes with it.
        rawArchive.invalidate()
        return try withConnection { connection in
            try connection.transaction {
                var deleted = 0
                try connection.makeStatement(
                    "DELETE FROM history WHERE series_id IN (SELECT id FROM series WHERE vin = ?1)"
                ).run([.text(vin.rawValue)])
                deleted += connection.changes
                try connection.makeStatement(
                    "DELETE FROM poll_log WHERE vehicle_id = (SELECT id FROM vehicles WHERE vin = ?1)"
                ).run([.text(vin.rawValue)])
                deleted += connection.changes
                for table in [
                    "outbox", "series", "events", "property_failures", "charging_sessions",
                    "schedule",
                    "rule_state", "imported_messages", "raw_responses", "archive_dictionaries", "vehicles",
                ] {
                    try connection.makeStatement("DELETE FROM \(table) WHERE vin = ?1").run([.text(vin.rawValue)])
                    deleted += connection.changes
                }
                return deleted
            }
        }
    }
}
