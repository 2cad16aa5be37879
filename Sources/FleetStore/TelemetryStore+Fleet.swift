import FleetModel

/// What the daemon knows of a vehicle: a row of the `vehicles` table.
public struct VehicleRecord: Sendable, Hashable {
    public var vin: VIN
    /// Canonical brand (`mercedes_benz`), when known.
    public var brand: String?
    /// The last clearance status seen by a fleet sync, `nil` for vehicles listed in the config only.
    public var clearanceStatus: ClearanceStatus?
    /// When ``clearanceStatus`` last changed, UTC.
    public var clearanceChangedAt: Timestamp?
    /// The polling status.
    public var status: PollingStatus
    /// Why the vehicle is not polled, when it is not.
    public var statusReason: String?
    public var lastPolledAt: Timestamp?
    public var lastHTTPStatus: Int?
}

extension TelemetryStore {
    /// Records the clearance statuses of a fleet sync, atomically.
    ///
    /// A changed status updates `clearance_status` and `clearance_changed_at`; the events are
    /// what `detector` decides for each change (`clearance_changed`, none for a vehicle seen for
    /// the first time). A vehicle that becomes `approved` again gets `status = 'active'`;
    /// one that leaves `approved` gets `status = 'not_cleared'`.
    ///
    /// - Returns: The `clearance_changed` events stored, with ids.
    /// - Throws: ``SQLiteError``; nothing of this sync is kept then.
    public func recordClearance(
        _ vehicles: [FleetVehicle], at now: Timestamp, detector: some ChangeDetecting
    ) throws -> [Event] {
        try withConnection { connection in
            try connection.transaction {
                let select = try connection.cachedStatement("SELECT clearance_status FROM vehicles WHERE vin = ?1")
                let upsert = try connection.cachedStatement(
                    """
                    INSERT INTO vehicles (vin, first_seen_at, brand, clearance_status, clearance_changed_at, status, status_changed_at)
                    VALUES (?1, ?2, ?3, ?4, ?2, ?5, ?2)
                    ON CONFLICT (vin) DO UPDATE SET
                        brand = coalesce(excluded.brand, vehicles.brand),
                        clearance_status = excluded.clearance_status,
                        clearance_changed_at = CASE WHEN vehicles.clearance_status IS excluded.clearance_status
                            THEN vehicles.clearance_changed_at ELSE excluded.clearance_changed_at END,
                        status = CASE WHEN vehicles.status = 'consent_removed' THEN vehicles.status ELSE excluded.status END,
                        status_reason = CASE WHEN vehicles.status = 'consent_removed' OR excluded.status = 'active' THEN
                            (CASE WHEN vehicles.status = 'consent_removed' THEN vehicles.status_reason ELSE NULL END)
                            ELSE 'clearance ' || excluded.clearance_status END,
                        status_changed_at = CASE WHEN vehicles.status IS excluded.status OR vehicles.status = 'consent_removed'
                            THEN vehicles.status_changed_at ELSE excluded.status_changed_at END
                    """)
                var events: [Event] = []
                for vehicle in vehicles {
                    try select.bind([.text(vehicle.vin.rawValue)])
                    let previous = try select.step() ? select.text(at: 0) : nil
                    select.reset()
                    try upsert.run([
                        .text(vehicle.vin.rawValue), .integer(now.millisecondsSince1970),
                        vehicle.brand.map(SQLiteValue.text) ?? .null, .text(vehicle.status.rawValue),
                        .text((vehicle.status.isPollable ? PollingStatus.active : .notCleared).rawValue),
                    ])
                    events += detector.clearanceEvents(
                        vin: vehicle.vin, from: previous.flatMap(ClearanceStatus.init), to: vehicle.status, at: now)
                }
                return try insert(events, connection: connection)
            }
        }
    }

    /// Stores events found outside a poll (a consent vehicle's `consent_required`), each once
    /// (an event already stored is left out), queued for the delivery sinks as a poll's are.
    ///
    /// - Returns: The events stored, with their ids.
    public func record(events: [Event]) throws -> [Event] {
        try withConnection { connection in
            try connection.transaction { try insert(events, connection: connection) }
        }
    }

    /// Sets a vehicle's polling status and the reason.
    public func setStatus(_ status: PollingStatus, reason: String?, vin: VIN, at now: Timestamp) throws {
        try withConnection { connection in
            try connection.cachedStatement(
                """
                INSERT INTO vehicles (vin, first_seen_at, status, status_reason, status_changed_at) VALUES (?1, ?2, ?3, ?4, ?2)
                ON CONFLICT (vin) DO UPDATE SET status = excluded.status, status_reason = excluded.status_reason,
                    status_changed_at = CASE WHEN vehicles.status IS excluded.status THEN vehicles.status_changed_at ELSE excluded.status_changed_at END
                """
            ).run([
                .text(vin.rawValue), .integer(now.millisecondsSince1970), .text(status.rawValue),
                reason.map(SQLiteValue.text) ?? .null,
            ])
        }
    }

    /// Every row of `vehicles`, by VIN.
    public func vehicles() throws -> [VehicleRecord] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT vin, brand, clearance_status, clearance_changed_at, status, status_reason, last_polled_at, last_http_status
                FROM vehicles ORDER BY vin
                """)
            try statement.bind([])
            var result: [VehicleRecord] = []
            while try statement.step() {
                guard let vin = statement.text(at: 0).flatMap(VIN.init) else { continue }
                result.append(
                    VehicleRecord(
                        vin: vin, brand: statement.text(at: 1),
                        clearanceStatus: statement.text(at: 2).flatMap(ClearanceStatus.init),
                        clearanceChangedAt: statement.isNull(at: 3)
                            ? nil : Timestamp(millisecondsSince1970: statement.int(at: 3)),
                        status: statement.text(at: 4).flatMap(PollingStatus.init) ?? .active,
                        statusReason: statement.text(at: 5),
                        lastPolledAt: statement.isNull(at: 6)
                            ? nil : Timestamp(millisecondsSince1970: statement.int(at: 6)),
                        lastHTTPStatus: statement.isNull(at: 7) ? nil : Int(statement.int(at: 7))))
            }
            return result
        }
    }
}
