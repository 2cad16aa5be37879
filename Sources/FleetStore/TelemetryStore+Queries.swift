import FleetModel

/// One line of `fleet-telemetry status`: what a fleet operator wants to see per vehicle.
public struct VehicleStatus: Sendable, Hashable {
    public var vin: VIN
    /// The newest observation time of any property, UTC.
    public var lastSeen: Timestamp?
    /// Percent 0–100.
    public var batteryPercent: Double?
    /// Kilometers (`charging.estimated_range`).
    public var rangeKm: Double?
    /// `doors.locks_state`, else whether every `doors.locks.lock_state` is `locked`.
    public var locks: String?
    /// `charging.status`.
    public var charging: String?
    public var latitude: Double?
    public var longitude: Double?
    /// The scheduler's health (`ok`, `backoff`, …) and the polling status (`active`, …).
    public var health: String?
    public var status: String?
}

extension TelemetryStore {
    /// The status of every vehicle, by VIN; one indexed pass over `latest`.
    public func status() throws -> [VehicleStatus] {
        try withConnection { connection in
            var result: [VIN: VehicleStatus] = [:]
            let vehicles = try connection.makeStatement("""
                SELECT v.vin, v.status, s.health FROM vehicles v LEFT JOIN schedule s ON s.vin = v.vin
                """)
            while try vehicles.step() {
                guard let vin = vehicles.text(at: 0).flatMap(VIN.init) else { continue }
                result[vin] = VehicleStatus(vin: vin, health: vehicles.text(at: 2), status: vehicles.text(at: 1))
            }
            let latest = try connection.makeStatement("""
                SELECT vin, property, instance, value_num, value_text, observed_at FROM latest
                WHERE property IN ('charging.battery_level', 'charging.estimated_range', 'doors.locks_state', 'doors.locks.lock_state',
                                   'charging.status', 'vehicle_location.coordinates.latitude', 'vehicle_location.coordinates.longitude')
                   OR instance = ''
                """)
            var allLocked: [VIN: Bool] = [:]
            while try latest.step() {
                guard let vin = latest.text(at: 0).flatMap(VIN.init) else { continue }
                var entry = result[vin] ?? VehicleStatus(vin: vin)
                let observed = Timestamp(millisecondsSince1970: latest.int(at: 5))
                if entry.lastSeen.map({ observed > $0 }) ?? true { entry.lastSeen = observed }
                let number = latest.isNull(at: 3) ? nil : latest.double(at: 3)
                let text = latest.text(at: 4)
                switch latest.text(at: 1) {
                case "charging.battery_level": entry.batteryPercent = number
                case "charging.estimated_range": entry.rangeKm = number
                case "doors.locks_state": entry.locks = text
                case "doors.locks.lock_state": allLocked[vin] = (allLocked[vin] ?? true) && text == "locked"
                case "charging.status": entry.charging = text
                case "vehicle_location.coordinates.latitude": entry.latitude = number
                case "vehicle_location.coordinates.longitude": entry.longitude = number
                default: break
                }
                result[vin] = entry
            }
            for (vin, locked) in allLocked where result[vin]?.locks == nil {
                result[vin]?.locks = locked ? "locked" : "unlocked"
            }
            return result.values.sorted { $0.vin < $1.vin }
        }
    }

    /// Events, newest last, filtered by VIN, type and time (`occurred_at` ≥ `since`).
    public func events(vin: VIN?, type: EventType?, since: Timestamp?, limit: Int) throws -> [Event] {
        try withConnection { connection in
            let statement = try connection.cachedStatement("""
                SELECT id, vin, type, instance, occurred_at, detected_at, previous_value, new_value FROM (
                    SELECT * FROM events WHERE (?1 IS NULL OR vin = ?1) AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR occurred_at >= ?3)
                    ORDER BY occurred_at DESC, id DESC LIMIT ?4)
                ORDER BY occurred_at, id
                """)
            try statement.bind([vin.map { .text($0.rawValue) } ?? .null, type.map { .text($0.rawValue) } ?? .null,
                                since.map { .integer($0.millisecondsSince1970) } ?? .null, .integer(Int64(limit))])
            var result: [Event] = []
            while try statement.step() {
                guard let vin = statement.text(at: 1).flatMap(VIN.init), let type = statement.text(at: 2).flatMap(EventType.init) else { continue }
                result.append(Event(id: statement.int(at: 0), vin: vin, type: type, instance: statement.text(at: 3) ?? "",
                                    occurredAt: Timestamp(millisecondsSince1970: statement.int(at: 4)), detectedAt: Timestamp(millisecondsSince1970: statement.int(at: 5)),
                                    previousValue: statement.text(at: 6), newValue: statement.text(at: 7) ?? ""))
            }
            return result
        }
    }

    /// The history of one property of `vin` (every instance), between `since` and `until` (UTC), oldest first.
    public func history(vin: VIN, property: String, since: Timestamp?, until: Timestamp?) throws -> [Sample] {
        try withConnection { connection in
            let statement = try connection.cachedStatement("""
                SELECT instance, observed_at, value_num, value_text, unit FROM samples
                WHERE vin = ?1 AND property = ?2 AND observed_at >= ?3 AND observed_at <= ?4
                ORDER BY observed_at, instance
                """)
            try statement.bind([.text(vin.rawValue), .text(property), .integer(since?.millisecondsSince1970 ?? Int64.min), .integer(until?.millisecondsSince1970 ?? Int64.max)])
            var result: [Sample] = []
            while try statement.step() {
                let value: SampleValue = statement.isNull(at: 2) ? .text(statement.text(at: 3) ?? "") : .number(statement.double(at: 2))
                result.append(Sample(vin: vin, property: property, instance: statement.text(at: 0) ?? "", value: value, unit: statement.text(at: 4), observedAt: Timestamp(millisecondsSince1970: statement.int(at: 1))))
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
        try withConnection { connection in
            try connection.transaction {
                var deleted = 0
                for table in ["samples", "latest", "events", "polls", "property_failures", "charging_sessions", "schedule", "rule_state", "imported_messages", "raw_responses", "vehicles"] {
                    try connection.makeStatement("DELETE FROM \(table) WHERE vin = ?1").run([.text(vin.rawValue)])
                    deleted += connection.changes
                }
                return deleted
            }
        }
    }
}
