import FleetModel

/// A vehicle's current `series` row for one (property, instance), as the store keeps it between polls.
struct SeriesRow: Hashable, Sendable {
    /// `series.id`: the key of its `history` rows.
    var id: Int64
    /// The unit the API sent when it was converted (part of the series' identity with `unit`).
    var sourceUnit: String?
    /// The observation time of its newest `history` row (ms, UTC); `nil` before the first.
    var historyAt: Int64?
}

/// A vehicle's series as a poll compares and moves them: the newest value of each (what the
/// event rules compare with) and the row behind it.
struct VehicleSeries {
    var values: [SeriesKey: LatestValue] = [:]
    var rows: [SeriesKey: SeriesRow] = [:]
}

extension TelemetryStore {
    /// Stores `samples` in `history` and moves each series' newest value (`series`) forward.
    ///
    /// A sample is a new history row when its series has no row at its observation time and:
    /// its value (or unit) differs from the series' newest value; or it is older than that one
    /// (a late or imported observation: stored, `latest` unchanged); or it repeats the newest value
    /// with a newer time and the series' last history row is `repeat_heartbeat` old or more (the
    /// heartbeat that keeps charts and range queries seeing the value). Any other repeat only
    /// moves the series' observation and receive time, so that `latest_view.age_seconds`, `stale`
    /// and `vehicle_silent` stay right. With a heartbeat of 0 every repeat with a new time is
    /// stored, except for samples without a timestamp of their own (``ObservationTimeSource``).
    ///
    /// - Parameters:
    ///   - state: The vehicle's series before these samples; on return, after them.
    ///   - replay: Reprocessing: `state` is the series as they were before the reprocessed window,
    ///     not as stored; the stored newest values are moved only by newer observations.
    /// - Returns: The new `history` rows.
    func writeSamples(
        _ samples: [Sample], state: inout VehicleSeries, receivedAt: Timestamp, replay: Bool = false
    ) throws -> Int {
        var historyValues: [SQLiteValue] = []
        var seriesValues: [SQLiteValue] = []
        historyValues.reserveCapacity(samples.count * RowWrite.history.columns)
        let received = receivedAt.millisecondsSince1970
        let heartbeat = repeatHeartbeatMilliseconds
        for sample in samples {
            let key = sample.key
            let time = sample.observedAt.millisecondsSince1970
            let value = Self.historyValue(sample.value)
            guard let old = state.values[key], var row = state.rows[key] else {
                // The first value of this (property, instance) for the vehicle.
                // Reprocessing never moves which series is current: the stored state is newer.
                let id = try seriesID(for: sample, current: !replay, connection: connection)
                historyValues += [.integer(id), .integer(time), value, .integer(received)]
                seriesValues += Self.seriesUpdate(id: id, sample, received: received, historyAt: time)
                state.values[key] = LatestValue(value: sample.value, unit: sample.unit, observedAt: sample.observedAt)
                state.rows[key] = SeriesRow(id: id, sourceUnit: sample.sourceUnit, historyAt: time)
                continue
            }
            let sameSeries = old.unit == sample.unit && row.sourceUnit == sample.sourceUnit
            if sameSeries && sample.observedAt == old.observedAt { continue }
            if sample.observedAt < old.observedAt {
                // Older than the newest value: history only (as received late).
                if sample.timeSource != .property, sameSeries, old.value == sample.value { continue }
                let id = sameSeries ? row.id : try seriesID(for: sample, current: false, connection: connection)
                historyValues += [.integer(id), .integer(time), value, .integer(received)]
                continue
            }
            if !sameSeries {
                // A new unit: the (property, instance)'s newest value moves to the series of that unit.
                let id = try seriesID(for: sample, current: false, connection: connection)
                if !replay {
                    try connection.cachedStatement("UPDATE series SET current = 0 WHERE id = ?1").run([.integer(row.id)]
                    )
                    try connection.cachedStatement("UPDATE series SET current = 1 WHERE id = ?1").run([.integer(id)])
                }
                row = SeriesRow(id: id, sourceUnit: sample.sourceUnit, historyAt: nil)
            }
            let repeated = sameSeries && old.value == sample.value
            let stored =
                !repeated
                || (heartbeat == 0
                    ? sample.timeSource == .property : row.historyAt.map { time - $0 >= heartbeat } ?? true)
            if stored {
                historyValues += [.integer(row.id), .integer(time), value, .integer(received)]
                row.historyAt = time
            }
            seriesValues += Self.seriesUpdate(id: row.id, sample, received: received, historyAt: row.historyAt)
            state.values[key] = LatestValue(value: sample.value, unit: sample.unit, observedAt: sample.observedAt)
            state.rows[key] = row
        }
        // Many rows per statement: one statement per row cost more than the rows themselves.
        let written = try runInChunks(.history, values: historyValues)
        // One row at a time, by id: an UPDATE binds no text, where a multi-row upsert had to bind
        // each row's VIN, property and instance again.
        let update = try connection.cachedStatement(replay ? Self.seriesUpdateIfNewerSQL : Self.seriesUpdateSQL)
        var row = 0
        while row < seriesValues.count {
            try update.run(Array(seriesValues[row..<(row + 6)]))
            row += 6
        }
        return written
    }

    /// The newest value of a series, by id (``seriesUpdate(id:_:received:historyAt:)``'s values).
    static let seriesUpdateSQL = """
        UPDATE series SET observed_at = ?2, value_num = ?3, value_text = ?4, received_at = ?5,
            history_at = coalesce(?6, history_at), failure_reason = NULL, failed_at = NULL
        WHERE id = ?1
        """
    /// The same, only where the observation is newer than the stored one (reprocessing).
    static let seriesUpdateIfNewerSQL = seriesUpdateSQL + " AND ?2 > observed_at"

    /// A value as `history.value` holds it: a text, or a number; a whole number as an integer,
    /// which SQLite stores in 1 to 6 bytes instead of 8 (the views read every number as REAL).
    static func historyValue(_ value: SampleValue) -> SQLiteValue {
        switch value {
        case .text(let text): return .text(text)
        case .number(let number):
            if number == number.rounded(), abs(number) < 4_503_599_627_370_496 { return .integer(Int64(number)) }
            return .real(number)
        }
    }

    /// A `history.value` read back.
    static func sampleValue(_ value: SQLiteValue) -> SampleValue {
        switch value {
        case .integer(let number): return .number(Double(number))
        case .real(let number): return .number(number)
        case .text(let text): return .text(text)
        case .null, .blob: return .text("")
        }
    }

    /// The values of one `series` update: id, observed_at, value_num, value_text, received_at, history_at.
    private static func seriesUpdate(id: Int64, _ sample: Sample, received: Int64, historyAt: Int64?) -> [SQLiteValue] {
        [
            .integer(id), .integer(sample.observedAt.millisecondsSince1970),
            sample.value.number.map(SQLiteValue.real) ?? .null, sample.value.text.map(SQLiteValue.text) ?? .null,
            .integer(received), historyAt.map(SQLiteValue.integer) ?? .null,
        ]
    }

    /// `INDEXED BY series_current` where a statement names the property: the planner would
    /// otherwise weigh the partial index `latest_status` against each bound property, and SQLite
    /// prepares such a statement again whenever the bound value changes.
    ///
    /// The id of the series of `sample`'s VIN, property, instance, unit and source unit, created
    /// when there is none yet: as the current one of its property and instance when `current`,
    /// or when that has none.
    private func seriesID(for sample: Sample, current: Bool, connection: Connection) throws -> Int64 {
        let find = try connection.cachedStatement(
            """
            SELECT id FROM series WHERE vin = ?1 AND property = ?2 AND instance = ?3
                AND coalesce(unit, '') = coalesce(?4, '') AND coalesce(source_unit, '') = coalesce(?5, '')
            """)
        let key: [SQLiteValue] = [
            .text(sample.vin.rawValue), .text(sample.property), .text(sample.instance),
            sample.unit.map(SQLiteValue.text) ?? .null, sample.sourceUnit.map(SQLiteValue.text) ?? .null,
        ]
        try find.bind(key)
        let found = try find.step() ? find.int(at: 0) : nil
        find.reset()
        if let found {
            if current {
                try connection.cachedStatement("UPDATE series SET current = 1 WHERE id = ?1").run([.integer(found)])
            }
            return found
        }
        try connection.cachedStatement(
            """
            INSERT INTO series (vin, property, instance, unit, source_unit, current, observed_at, value_num, value_text,
                received_at, history_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6 OR NOT EXISTS (
                SELECT 1 FROM series INDEXED BY series_current
                WHERE vin = ?1 AND property = ?2 AND instance = ?3 AND current = 1),
                ?7, ?8, ?9, ?7, ?7)
            """
        ).run(
            key + [
                .integer(current ? 1 : 0), .integer(sample.observedAt.millisecondsSince1970),
                sample.value.number.map(SQLiteValue.real) ?? .null, sample.value.text.map(SQLiteValue.text) ?? .null,
            ])
        return connection.lastInsertRowID
    }

    /// The multi-row writes of ``writeSamples(_:state:receivedAt:replay:)``.
    enum RowWrite: Hashable {
        /// New `history` rows (one already stored is left as it is).
        case history

        /// Values per row.
        var columns: Int { 4 }

        /// The statement for `rows` rows.
        func sql(rows: Int) -> String {
            let placeholders = Array(repeating: "(?, ?, ?, ?)", count: rows).joined(separator: ", ")
            return "INSERT OR IGNORE INTO history (series_id, observed_at, value, received_at) VALUES \(placeholders)"
        }
    }

    /// Runs `write` over `values` (rows of ``RowWrite/columns`` values, in order), at most 32 rows
    /// per statement; each (write, row count) statement is built and prepared once per connection.
    ///
    /// - Returns: The rows changed, as `sqlite3_changes` counts them.
    func runInChunks(_ write: RowWrite, values: [SQLiteValue]) throws -> Int {
        let columns = write.columns
        let rows = values.count / columns
        var changed = 0
        var start = 0
        while start < rows {
            let count = min(32, rows - start)
            let statement = try rowWriteStatement(write, rows: count)
            try statement.run(Array(values[(start * columns)..<((start + count) * columns)]))
            changed += connection.changes
            start += count
        }
        return changed
    }

    /// The current series of `vin`: each newest value, its row, and whether any carries a failure flag.
    func latestRows(vin: VIN) throws -> (series: VehicleSeries, flagged: Bool) {
        let statement = try connection.cachedStatement(
            """
            SELECT id, property, instance, observed_at, value_num, value_text, unit, source_unit, history_at,
                failure_reason IS NOT NULL
            FROM series WHERE vin = ?1 AND current = 1
            """)
        try statement.bind([.text(vin.rawValue)])
        defer { statement.reset() }
        // Not reserved ahead: the maps are kept in the `LatestCache`, where room for 64 series took
        // twice the memory of a vehicle's 25.
        var series = VehicleSeries()
        var flagged = false
        while try statement.step() {
            let key = SeriesKey(vin: vin, property: statement.text(at: 1) ?? "", instance: statement.text(at: 2) ?? "")
            series.values[key] = LatestValue(
                value: Self.value(statement, numberColumn: 4, textColumn: 5), unit: statement.text(at: 6),
                observedAt: Timestamp(millisecondsSince1970: statement.int(at: 3)))
            series.rows[key] = SeriesRow(
                id: statement.int(at: 0), sourceUnit: statement.text(at: 7),
                historyAt: statement.isNull(at: 8) ? nil : statement.int(at: 8))
            if statement.int(at: 9) != 0 { flagged = true }
        }
        return (series, flagged)
    }

    /// A number or a text from a row's `value_num` and `value_text` columns.
    static func value(_ statement: Statement, numberColumn: Int32, textColumn: Int32) -> SampleValue {
        statement.isNull(at: numberColumn)
            ? .text(statement.text(at: textColumn) ?? "") : .number(statement.double(at: numberColumn))
    }
}
