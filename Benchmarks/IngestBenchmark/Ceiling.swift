import CSQLite
import FleetModel
import FleetStore

/// The rows one payload made ours write, read back from our database after the run: what the
/// ceiling writes again, straight through the SQLite C API.
struct WrittenRows {
    var vin: String
    var receivedAt: Int64
    /// `history` rows (series_id, observed_at, value, received_at); each one also
    /// moves its `series` row's newest value.
    var samples: [[CValue]] = []
    /// `events` rows (vin, type, instance, occurred_at, detected_at, previous_value, new_value).
    var events: [[CValue]] = []
    /// The `polls` row (vin … manual), `nil` for an imported document.
    var poll: [CValue]?
    /// The `raw_responses` row (vin, received_at, http_status, dictionary_id, size, body as
    /// stored, compressed), `nil` without the archive.
    var raw: [CValue]?
    /// The newest observation of the payload, for `vehicles.last_observed_at`.
    var newestObservation: Int64?
    /// `series` updates of the payload's re-observations (series id, observed_at, value_num,
    /// value_text, received_at): a sample newer than its series' newest value with no history row
    /// (a repeat) still moves the series' observation time, as ours does.
    var reobserved: [[CValue]] = []
}

/// Adds to `rows` the `series` updates ours made for re-observed values: `samples` are each
/// payload's normalized samples, in the order ours stored them; the series ids come from ours'
/// database at `path`.
func addReobservations(to rows: inout [WrittenRows], samples: [[Sample]], path: String) throws {
    var db: OpaquePointer?
    defer { sqlite3_close_v2(db) }
    guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
        throw CeilingError(message: "open \(path) to read back")
    }
    var prepared: OpaquePointer?
    let sql = "SELECT id, vin, property, instance, coalesce(unit, ''), coalesce(source_unit, '') FROM series"
    guard sqlite3_prepare_v2(db, sql, -1, &prepared, nil) == SQLITE_OK, let statement = prepared else {
        throw CeilingError(message: String(cString: sqlite3_errmsg(db)))
    }
    defer { sqlite3_finalize(statement) }
    var ids: [String: Int64] = [:]
    while sqlite3_step(statement) == SQLITE_ROW {
        let key = (1...5).map { sqlite3_column_text(statement, $0).map { String(cString: $0) } ?? "" }
        ids[key.joined(separator: "|")] = sqlite3_column_int64(statement, 0)
    }
    var newest: [Int64: Int64] = [:]
    for (offset, payload) in samples.enumerated() {
        var historyRows = Set<String>()
        for row in rows[offset].samples {
            if case .integer(let id) = row[0], case .integer(let time) = row[1] { historyRows.insert("\(id)|\(time)") }
        }
        for sample in payload {
            let key = [
                sample.vin.rawValue, sample.property, sample.instance, sample.unit ?? "", sample.sourceUnit ?? "",
            ]
            guard let id = ids[key.joined(separator: "|")] else { continue }
            let time = sample.observedAt.millisecondsSince1970
            guard newest[id].map({ time > $0 }) ?? true else { continue }
            newest[id] = time
            // A history row moves its series already (the ceiling's history statement).
            if historyRows.contains("\(id)|\(time)") { continue }
            rows[offset].reobserved.append([
                .integer(id), .integer(time), sample.value.number.map(CValue.real) ?? .null,
                sample.value.text.map { .text(Array($0.utf8).map { CChar(bitPattern: $0) }) } ?? .null,
                .integer(rows[offset].receivedAt),
            ])
        }
    }
}

/// Reads back what ours wrote for `payloads` (VIN and receive time, UTC ms) from the database at
/// `path`, through the C API as the ceiling writes (the store keeps its connection to itself).
func writtenRows(path: String, payloads: [(vin: String, receivedAt: Int64)], withPolls: Bool) throws -> [WrittenRows] {
    var db: OpaquePointer?
    defer { sqlite3_close_v2(db) }
    guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
        throw CeilingError(message: "open \(path) to read back")
    }
    var index: [String: Int] = [:]
    var rows = payloads.enumerated().map { offset, payload in
        index["\(payload.vin)|\(payload.receivedAt)"] = offset
        return WrittenRows(vin: payload.vin, receivedAt: payload.receivedAt)
    }
    func read(
        _ sql: String, columns: Int32, limit: Int64? = nil, offset: (OpaquePointer) -> Int?,
        into: (inout WrittenRows, [CValue]) -> Bool
    ) throws {
        var prepared: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &prepared, nil) == SQLITE_OK, let statement = prepared else {
            throw CeilingError(message: String(cString: sqlite3_errmsg(db)))
        }
        defer { sqlite3_finalize(statement) }
        if let limit { sqlite3_bind_int64(statement, 1, limit) }
        var code = sqlite3_step(statement)
        while code == SQLITE_ROW {
            if let offset = offset(statement) {
                let values = (0..<columns).map { CValue(statement, column: $0) }
                guard into(&rows[offset], values) else { return }
            }
            code = sqlite3_step(statement)
        }
        guard code == SQLITE_DONE else { throw CeilingError(message: String(cString: sqlite3_errmsg(db))) }
    }
    func text(_ statement: OpaquePointer, _ column: Int32) -> String {
        sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""
    }
    try read(
        """
        SELECT h.series_id, h.observed_at, h.value, h.received_at, s.vin
        FROM history h JOIN series s ON s.id = h.series_id
        """,
        columns: 4, offset: { index["\(text($0, 4))|\(sqlite3_column_int64($0, 3))"] }
    ) { row, values in
        row.samples.append(values)
        if case .integer(let observed) = values[1] {
            row.newestObservation = max(row.newestObservation ?? observed, observed)
        }
        return true
    }
    try read(
        "SELECT vin, type, instance, occurred_at, detected_at, previous_value, new_value FROM events",
        columns: 7, offset: { index["\(text($0, 0))|\(sqlite3_column_int64($0, 4))"] }
    ) {
        $0.events.append($1)
        return true
    }
    try read(
        "SELECT vin, received_at, http_status, dictionary_id, size, body FROM raw_responses",
        columns: 6, offset: { index["\(text($0, 0))|\(sqlite3_column_int64($0, 1))"] }
    ) {
        $0.raw = $1
        return true
    }
    if withPolls {
        // A poll's row carries its request time; the payloads are matched in order instead.
        var next = 0
        let count = rows.count
        try read(
            """
            SELECT v.vin, p.requested_at, p.http_status, p.latency_ms, p.error, p.request_id, p.samples_written,
                p.events_emitted, p.manual
            FROM poll_log p JOIN vehicles v ON v.id = p.vehicle_id ORDER BY p.id LIMIT ?1
            """, columns: 9, limit: Int64(count), offset: { _ in next }
        ) { row, values in
            row.poll = values
            next += 1
            return next < count
        }
    }
    return rows
}

/// The ceiling: `rows` written straight through the SQLite C API into a database with our schema,
/// one prepared statement per table (bound and stepped per row), `perTransaction` payloads per
/// transaction, with the connection settings of ours (WAL, `synchronous = NORMAL`).
final class CeilingWriter {
    private var db: OpaquePointer?
    private var statements: [OpaquePointer?] = []

    /// - Parameters:
    ///   - seriesFrom: The database ours wrote: its `series` rows (the dictionary of series the
    ///     history rows refer to) are copied first, outside the timing.
    ///   - samplesOnly: write only the `history` rows (the narrower reference).
    init(path: String, seriesFrom: String, samplesOnly: Bool) throws {
        self.samplesOnly = samplesOnly
        _ = try TelemetryStore(path: path)  // creates the same schema
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            throw CeilingError(message: "open \(path)")
        }
        try exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16000;")
        try exec(
            """
            ATTACH DATABASE '\(seriesFrom.replacingOccurrences(of: "'", with: "''"))' AS ours;
            INSERT INTO series SELECT * FROM ours.series;
            DETACH DATABASE ours;
            """)
        let sql = [
            """
            INSERT INTO history (series_id, observed_at, value, received_at) VALUES (?1, ?2, ?3, ?4)
            """,
            """
            UPDATE series SET observed_at = ?2, value_num = CASE WHEN typeof(?3) = 'text' THEN NULL ELSE ?3 END,
                value_text = CASE WHEN typeof(?3) = 'text' THEN ?3 END, received_at = ?4, history_at = ?2
            WHERE id = ?1
            """,
            "INSERT INTO events (vin, type, instance, occurred_at, detected_at, previous_value, new_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            """
            INSERT INTO poll_log (vehicle_id, requested_at, http_status, latency_ms, error, request_id,
                samples_written, events_emitted, manual)
            VALUES ((SELECT id FROM vehicles WHERE vin = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            """,
            """
            INSERT INTO raw_responses (vin, received_at, http_status, dictionary_id, size, body)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            """,
            """
            INSERT INTO vehicles (vin, first_seen_at, last_polled_at, last_observed_at) VALUES (?1, ?2, ?2, ?3)
            ON CONFLICT (vin) DO UPDATE SET last_polled_at = excluded.last_polled_at, last_observed_at = excluded.last_observed_at
            """,
            """
            UPDATE series SET observed_at = ?2, value_num = ?3, value_text = ?4, received_at = ?5 WHERE id = ?1
            """,
        ]
        for text in sql {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v3(db, text, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK
            else {
                throw CeilingError(message: String(cString: sqlite3_errmsg(db)))
            }
            statements.append(statement)
        }
    }
    private let samplesOnly: Bool

    deinit {
        for statement in statements { sqlite3_finalize(statement) }
        sqlite3_close_v2(db)
    }

    /// `payloads` in the form bound below: texts already UTF-8, so that timing covers SQLite alone.
    static func prepare(_ payloads: [WrittenRows]) -> [CPayload] {
        payloads.map { payload in
            CPayload(
                samples: payload.samples, reobserved: payload.reobserved, events: payload.events, poll: payload.poll,
                raw: payload.raw,
                vehicle: [
                    .text(Array(payload.vin.utf8).map { CChar(bitPattern: $0) }), .integer(payload.receivedAt),
                    payload.newestObservation.map(CValue.integer) ?? .null,
                ])
        }
    }

    func write(_ payloads: ArraySlice<CPayload>) throws {
        try exec("BEGIN IMMEDIATE")
        for payload in payloads {
            for row in payload.samples {
                try run(statements[0], row)
                if !samplesOnly { try run(statements[1], row) }
            }
            if samplesOnly { continue }
            for row in payload.reobserved { try run(statements[6], row) }
            // The vehicle first, as ours writes it: the poll's row refers to it.
            try run(statements[5], payload.vehicle)
            for row in payload.events { try run(statements[2], row) }
            if let poll = payload.poll { try run(statements[3], poll) }
            if let raw = payload.raw { try run(statements[4], raw) }
        }
        try exec("COMMIT")
    }

    private func run(_ statement: OpaquePointer?, _ values: [CValue]) throws {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .null: sqlite3_bind_null(statement, index)
            case .integer(let i): sqlite3_bind_int64(statement, index, i)
            case .real(let d): sqlite3_bind_double(statement, index, d)
            case .text(let bytes):
                bytes.withUnsafeBufferPointer {
                    _ = sqlite3_bind_text(statement, index, $0.baseAddress, Int32($0.count), nil)
                }
            case .blob(let bytes):
                bytes.withUnsafeBytes { _ = sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), nil) }
            }
        }
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else { throw CeilingError(message: String(cString: sqlite3_errmsg(db))) }
    }

    private func exec(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw CeilingError(message: String(cString: sqlite3_errmsg(db)))
        }
    }
}

struct CeilingError: Error, CustomStringConvertible {
    var message: String
    var description: String { "ceiling: \(message)" }
}

/// A value bound by the ceiling: texts as UTF-8 bytes, bound without a copy.
enum CValue {
    case null
    case integer(Int64)
    case real(Double)
    case text([CChar])
    case blob([UInt8])

    /// Column `column` of the current row of `statement`, in the storage class SQLite holds it in.
    init(_ statement: OpaquePointer, column: Int32) {
        switch sqlite3_column_type(statement, column) {
        case SQLITE_NULL: self = .null
        case SQLITE_INTEGER: self = .integer(sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT: self = .real(sqlite3_column_double(statement, column))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, column))
            let bytes = sqlite3_column_blob(statement, column)
            self = .blob(bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? [])
        default:
            let text = sqlite3_column_text(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            let bytes = text.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
            self = .text(bytes.map { CChar(bitPattern: $0) })
        }
    }
}

/// One payload's rows for the ceiling.
struct CPayload {
    var samples: [[CValue]]
    var reobserved: [[CValue]]
    var events: [[CValue]]
    var poll: [CValue]?
    var raw: [CValue]?
    var vehicle: [CValue]
}
