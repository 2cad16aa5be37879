/// The database schema, as numbered migrations tracked with `PRAGMA user_version`.
///
/// Migration N brings a database from version N-1 to N. Each runs in the same transaction as the
/// `user_version` bump, so a killed process leaves the database at a whole version. The tables
/// are the product's interface; `docs/schema.md` documents every column.
enum Schema {
    /// The properties `fleet-telemetry status` shows: the condition of the partial index
    /// `latest_status`, repeated verbatim by the status query so that the planner can use it.
    /// Written as `=` terms joined by OR, not `IN (…)`: an IN list in an index condition makes
    /// SQLite build a temporary table on every write of `latest`.
    static let statusProperties = """
        (property = 'charging.battery_level' OR property = 'charging.estimated_range' OR property = 'doors.locks_state' \
        OR property = 'doors.locks.lock_state' OR property = 'charging.status' \
        OR property = 'vehicle_location.coordinates.latitude' OR property = 'vehicle_location.coordinates.longitude')
        """

    /// The views over `samples`: created by migration 6, created again by migration 7 after it
    /// rebuilt the table.
    static let sampleViews = """
        CREATE VIEW position_track AS
            SELECT lat.vin, strftime('%Y-%m-%dT%H:%M:%fZ', lat.observed_at / 1000.0, 'unixepoch') AS observed_at,
                   lat.observed_at AS observed_at_ms, lat.value_num AS latitude, lon.value_num AS longitude
            FROM samples lat JOIN samples lon
              ON lon.vin = lat.vin AND lon.observed_at = lat.observed_at AND lon.instance = ''
             AND lon.property = 'vehicle_location.coordinates.longitude'
            WHERE lat.property = 'vehicle_location.coordinates.latitude' AND lat.instance = '';
        CREATE VIEW battery_history AS
            SELECT vin, strftime('%Y-%m-%dT%H:%M:%fZ', observed_at / 1000.0, 'unixepoch') AS observed_at,
                   observed_at AS observed_at_ms, value_num AS battery_percent
            FROM samples WHERE property = 'charging.battery_level' AND instance = '';
        """

    /// `latest_view` (schemas 7 and 12): `latest` with times as text, ages and staleness.
    static let latestView = """
        CREATE VIEW latest_view AS
            SELECT vin, property, instance, coalesce(value_num, value_text) AS value, unit,
                   strftime('%Y-%m-%dT%H:%M:%fZ', observed_at / 1000.0, 'unixepoch') AS observed_at,
                   (CAST(strftime('%s', 'now') AS INTEGER) * 1000 - observed_at) / 1000 AS age_seconds,
                   failure_reason,
                   strftime('%Y-%m-%dT%H:%M:%fZ', failed_at / 1000.0, 'unixepoch') AS failed_at,
                   (failure_reason IS NOT NULL
                    OR (CAST(strftime('%s', 'now') AS INTEGER) * 1000 - observed_at) / 1000
                       > (SELECT value FROM settings WHERE key = 'stale_after_seconds')) AS stale
            FROM latest;
        """

    /// `samples` and `latest` as views over `series` and `history` (schema 12): the columns of
    /// the tables they were.
    static let seriesViews = """
        CREATE VIEW samples AS
            SELECT s.vin, s.property, s.instance, h.observed_at,
                   CASE WHEN typeof(h.value) IN ('integer', 'real') THEN CAST(h.value AS REAL) END AS value_num,
                   CASE WHEN typeof(h.value) = 'text' THEN h.value END AS value_text,
                   s.unit, h.received_at, s.source_unit
            FROM history h JOIN series s ON s.id = h.series_id;
        CREATE VIEW latest AS
            SELECT vin, property, instance, observed_at, value_num, value_text, unit, received_at, source_unit,
                   failure_reason, failed_at
            FROM series WHERE current = 1;
        CREATE VIEW battery_history AS
            SELECT s.vin, strftime('%Y-%m-%dT%H:%M:%fZ', h.observed_at / 1000.0, 'unixepoch') AS observed_at,
                   h.observed_at AS observed_at_ms, CAST(h.value AS REAL) AS battery_percent
            FROM series s JOIN history h ON h.series_id = s.id
            WHERE s.property = 'charging.battery_level' AND s.instance = '';
        CREATE VIEW position_track AS
            SELECT p.vin, strftime('%Y-%m-%dT%H:%M:%fZ', p.observed_at / 1000.0, 'unixepoch') AS observed_at,
                   p.observed_at AS observed_at_ms,
                   (SELECT CAST(h.value AS REAL) FROM history h
                    WHERE h.series_id = p.latitude_id AND h.observed_at <= p.observed_at
                    ORDER BY h.observed_at DESC LIMIT 1) AS latitude,
                   (SELECT CAST(h.value AS REAL) FROM history h
                    WHERE h.series_id = p.longitude_id AND h.observed_at <= p.observed_at
                    ORDER BY h.observed_at DESC LIMIT 1) AS longitude
            FROM (
                SELECT DISTINCT lat.vin, lat.id AS latitude_id, lon.id AS longitude_id, h.observed_at
                FROM series lat
                JOIN series lon ON lon.vin = lat.vin AND lon.property = 'vehicle_location.coordinates.longitude'
                    AND lon.instance = '' AND lon.current = 1
                JOIN history h ON h.series_id IN (lat.id, lon.id)
                WHERE lat.property = 'vehicle_location.coordinates.latitude' AND lat.instance = '' AND lat.current = 1
            ) p;
        """

    static let migrations: [String] = [
        // 1: the first schema.
        """
        CREATE TABLE vehicles (
            vin TEXT PRIMARY KEY NOT NULL,
            first_seen_at INTEGER NOT NULL,
            last_polled_at INTEGER,
            last_http_status INTEGER,
            last_error TEXT
        ) WITHOUT ROWID;

        CREATE TABLE samples (
            vin TEXT NOT NULL,
            property TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            observed_at INTEGER NOT NULL,
            value_num REAL,
            value_text TEXT,
            unit TEXT,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (vin, property, instance, observed_at)
        ) WITHOUT ROWID;

        CREATE TABLE latest (
            vin TEXT NOT NULL,
            property TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            observed_at INTEGER NOT NULL,
            value_num REAL,
            value_text TEXT,
            unit TEXT,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (vin, property, instance)
        ) WITHOUT ROWID;

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            vin TEXT NOT NULL,
            type TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            occurred_at INTEGER NOT NULL,
            detected_at INTEGER NOT NULL,
            previous_value TEXT,
            new_value TEXT NOT NULL,
            UNIQUE (vin, type, instance, occurred_at)
        );
        CREATE INDEX events_by_time ON events (occurred_at);

        CREATE TABLE polls (
            id INTEGER PRIMARY KEY,
            vin TEXT NOT NULL,
            requested_at INTEGER NOT NULL,
            http_status INTEGER,
            latency_ms INTEGER NOT NULL,
            error TEXT,
            request_id TEXT,
            samples_written INTEGER NOT NULL DEFAULT 0,
            events_emitted INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX polls_by_vin_time ON polls (vin, requested_at);
        """,
        // 2: fleet clearance and per-vehicle polling status.
        """
        ALTER TABLE vehicles ADD COLUMN brand TEXT;
        ALTER TABLE vehicles ADD COLUMN clearance_status TEXT;
        ALTER TABLE vehicles ADD COLUMN clearance_changed_at INTEGER;
        ALTER TABLE vehicles ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
        ALTER TABLE vehicles ADD COLUMN status_reason TEXT;
        ALTER TABLE vehicles ADD COLUMN status_changed_at INTEGER;
        """,
        // 3: the polling schedule, so that a restart keeps due times and backoff.
        """
        CREATE TABLE schedule (
            vin TEXT PRIMARY KEY NOT NULL,
            next_due_at INTEGER NOT NULL,
            health TEXT NOT NULL,
            reason TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            activity TEXT,
            polls_today INTEGER NOT NULL DEFAULT 0,
            day INTEGER NOT NULL DEFAULT 0,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
        // 4: polls made by hand (`fleet-telemetry poll --store`) count against the daily budgets.
        """
        ALTER TABLE polls ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX polls_by_time ON polls (requested_at);
        """,
        // 5: the unit the API sent, and property failures as observations.
        """
        ALTER TABLE samples ADD COLUMN source_unit TEXT;
        ALTER TABLE latest ADD COLUMN source_unit TEXT;
        CREATE TABLE property_failures (
            vin TEXT NOT NULL,
            property TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            observed_at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            description TEXT,
            received_at INTEGER NOT NULL,
            UNIQUE (vin, property, instance, observed_at, reason)
        );
        CREATE TABLE rule_state (
            vin TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (vin, key)
        ) WITHOUT ROWID;
        CREATE TABLE charging_sessions (
            id INTEGER PRIMARY KEY,
            vin TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            ended_at INTEGER,
            start_level REAL,
            end_level REAL,
            end_reason TEXT,
            energy_kwh REAL,
            UNIQUE (vin, started_at)
        );
        CREATE INDEX charging_sessions_open ON charging_sessions (vin, ended_at);
        CREATE TABLE imported_messages (
            vin TEXT NOT NULL,
            message_id TEXT NOT NULL,
            imported_at INTEGER NOT NULL,
            PRIMARY KEY (vin, message_id)
        ) WITHOUT ROWID;
        """,
        // 6: views for people: times as RFC 3339 text, the age of each value.
        """
        CREATE VIEW latest_view AS
            SELECT vin, property, instance, coalesce(value_num, value_text) AS value, unit,
                   strftime('%Y-%m-%dT%H:%M:%fZ', observed_at / 1000.0, 'unixepoch') AS observed_at,
                   (CAST(strftime('%s', 'now') AS INTEGER) * 1000 - observed_at) / 1000 AS age_seconds
            FROM latest;
        CREATE VIEW events_view AS
            SELECT id, vin, type, instance,
                   strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at / 1000.0, 'unixepoch') AS occurred_at,
                   strftime('%Y-%m-%dT%H:%M:%fZ', detected_at / 1000.0, 'unixepoch') AS detected_at,
                   previous_value, new_value
            FROM events;
        \(sampleViews)
        CREATE VIEW charging_sessions_view AS
            SELECT id, vin, strftime('%Y-%m-%dT%H:%M:%fZ', started_at / 1000.0, 'unixepoch') AS started_at,
                   strftime('%Y-%m-%dT%H:%M:%fZ', ended_at / 1000.0, 'unixepoch') AS ended_at,
                   (ended_at - started_at) / 60000 AS minutes, start_level, end_level, energy_kwh, end_reason
            FROM charging_sessions;
        """,
        // 7: samples clustered by time within a vehicle, so that a poll appends to one place
        //    instead of touching one page per property; staleness in `latest`; the raw-response
        //    archive; settings the views read; what `status` shows, readable without a scan of
        //    `latest` (the vehicle's newest observation, a covering index of the status properties).
        """
        DROP VIEW position_track;
        DROP VIEW battery_history;
        DROP VIEW latest_view;
        CREATE TABLE samples_v7 (
            vin TEXT NOT NULL,
            property TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            observed_at INTEGER NOT NULL,
            value_num REAL,
            value_text TEXT,
            unit TEXT,
            received_at INTEGER NOT NULL,
            source_unit TEXT,
            PRIMARY KEY (vin, observed_at, property, instance)
        ) WITHOUT ROWID;
        INSERT INTO samples_v7 (vin, property, instance, observed_at, value_num, value_text, unit, received_at, source_unit)
            SELECT vin, property, instance, observed_at, value_num, value_text, unit, received_at, source_unit FROM samples;
        DROP TABLE samples;
        ALTER TABLE samples_v7 RENAME TO samples;
        ALTER TABLE latest ADD COLUMN failure_reason TEXT;
        ALTER TABLE latest ADD COLUMN failed_at INTEGER;
        CREATE TABLE raw_responses (
            id INTEGER PRIMARY KEY,
            vin TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            http_status INTEGER,
            body BLOB NOT NULL
        );
        CREATE INDEX raw_responses_by_vin_time ON raw_responses (vin, received_at);
        CREATE INDEX raw_responses_by_time ON raw_responses (received_at);
        CREATE TABLE settings (
            key TEXT PRIMARY KEY NOT NULL,
            value
        ) WITHOUT ROWID;
        INSERT INTO settings (key, value) VALUES ('stale_after_seconds', 3600);
        ALTER TABLE vehicles ADD COLUMN last_observed_at INTEGER;
        UPDATE vehicles SET last_observed_at = (SELECT max(observed_at) FROM latest WHERE latest.vin = vehicles.vin);
        CREATE INDEX latest_status ON latest (vin, property, instance, observed_at, value_num, value_text, failure_reason)
            WHERE \(statusProperties);
        \(sampleViews)
        \(latestView)
        """,
        // 8: events found by detection time (`events --since`: what was learned since a time,
        //    whatever the vehicle's clock says).
        """
        CREATE INDEX events_by_detection ON events (detected_at);
        """,
        // 9: the outbox: every event queued for each delivery sink (webhooks, MQTT) in the
        //    transaction that stores it, with its delivery state.
        """
        CREATE TABLE outbox (
            sink TEXT NOT NULL,
            event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
            vin TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            last_attempt_at INTEGER,
            last_http_status INTEGER,
            last_error TEXT,
            created_at INTEGER NOT NULL,
            delivered_at INTEGER,
            PRIMARY KEY (sink, event_id)
        ) WITHOUT ROWID;
        CREATE INDEX outbox_pending ON outbox (sink, next_attempt_at) WHERE status = 'pending';
        CREATE INDEX outbox_pending_by_vin ON outbox (sink, vin, event_id) WHERE status = 'pending';
        CREATE INDEX outbox_by_event ON outbox (event_id);
        CREATE VIEW outbox_view AS
            SELECT sink, event_id, vin, status, attempts,
                   strftime('%Y-%m-%dT%H:%M:%fZ', next_attempt_at / 1000.0, 'unixepoch') AS next_attempt_at,
                   strftime('%Y-%m-%dT%H:%M:%fZ', last_attempt_at / 1000.0, 'unixepoch') AS last_attempt_at,
                   last_http_status, last_error,
                   strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
                   strftime('%Y-%m-%dT%H:%M:%fZ', delivered_at / 1000.0, 'unixepoch') AS delivered_at
            FROM outbox;
        """,
        // 10: event ids are never reused, so a receiver that deduplicates by id never drops a
        //     new event: the largest id ever deleted (purge, retention) is kept, and the next
        //     event is numbered after it (see `TelemetryStore.insert(_:connection:)`).
        """
        INSERT INTO settings (key, value) SELECT 'event_id_high_water', coalesce(max(id), 0) FROM events
            WHERE true ON CONFLICT (key) DO NOTHING;
        CREATE TRIGGER events_keep_high_water AFTER DELETE ON events BEGIN
            INSERT INTO settings (key, value) VALUES ('event_id_high_water', OLD.id)
                ON CONFLICT (key) DO UPDATE SET value = max(coalesce(value, 0), excluded.value);
        END;
        """,
        // 11: the raw archive compressed: each body deflated with a preset dictionary
        //     (`archive_dictionaries`): one built from the fleet's own responses, followed by a
        //     recent body of the same vehicle (its keyframe); keyed by vehicle and receive time, so
        //     that a poll costs ~150 bytes instead of a 4 KB page. Bodies archived before are kept
        //     as they were (`dictionary_id` NULL).
        """
        CREATE TABLE archive_dictionaries (
            id INTEGER PRIMARY KEY,
            created_at INTEGER NOT NULL,
            vin TEXT,
            base_id INTEGER,
            size INTEGER,
            dictionary BLOB NOT NULL
        );
        CREATE INDEX archive_dictionaries_by_vin ON archive_dictionaries (vin, id);
        CREATE TABLE raw_responses_v11 (
            vin TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            http_status INTEGER,
            dictionary_id INTEGER,
            size INTEGER NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (vin, received_at)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO raw_responses_v11 (vin, received_at, http_status, dictionary_id, size, body)
            SELECT vin, received_at, http_status, NULL, length(body), body FROM raw_responses
            ORDER BY vin, received_at, id;
        DROP TABLE raw_responses;
        ALTER TABLE raw_responses_v11 RENAME TO raw_responses;
        """,
        // 12: narrow history. A dictionary of series (one integer id per VIN, property, instance
        //     and unit) holds each series' newest value, updated in place by a poll; `history`
        //     holds only what varies, keyed by (series, observation time). `samples` and `latest`
        //     become views with their columns of before, so every documented query still works.
        //     The rows are moved as they were (repeats included).
        """
        DROP VIEW position_track;
        DROP VIEW battery_history;
        DROP VIEW latest_view;
        DROP INDEX latest_status;
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            vin TEXT NOT NULL,
            property TEXT NOT NULL,
            instance TEXT NOT NULL DEFAULT '',
            unit TEXT,
            source_unit TEXT,
            current INTEGER NOT NULL DEFAULT 1,
            observed_at INTEGER NOT NULL,
            value_num REAL,
            value_text TEXT,
            received_at INTEGER NOT NULL,
            failure_reason TEXT,
            failed_at INTEGER,
            history_at INTEGER
        );
        CREATE UNIQUE INDEX series_by_key ON series (vin, property, instance, coalesce(unit, ''), coalesce(source_unit, ''));
        CREATE UNIQUE INDEX series_current ON series (vin, property, instance) WHERE current = 1;
        INSERT INTO series (vin, property, instance, unit, source_unit, current, observed_at, value_num, value_text,
                received_at, failure_reason, failed_at, history_at)
            SELECT vin, property, instance, unit, source_unit, 1, observed_at, value_num, value_text, received_at,
                failure_reason, failed_at, observed_at
            FROM latest ORDER BY vin, property, instance;
        CREATE TABLE history (
            series_id INTEGER NOT NULL,
            observed_at INTEGER NOT NULL,
            value,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (series_id, observed_at)
        ) WITHOUT ROWID;
        -- Read in the order samples are stored (a vehicle at a time), with no sort: a migration of
        -- 100 M rows must not need memory in proportion.
        INSERT OR IGNORE INTO series (vin, property, instance, unit, source_unit, current, observed_at, value_num,
                value_text, received_at)
            SELECT vin, property, instance, unit, source_unit, 0, observed_at, value_num, value_text, received_at
            FROM samples;
        INSERT OR IGNORE INTO history (series_id, observed_at, value, received_at)
            SELECT s.id, x.observed_at,
                CASE WHEN x.value_num IS NULL THEN x.value_text
                     WHEN x.value_num = CAST(x.value_num AS INTEGER) AND abs(x.value_num) < 4503599627370496
                        THEN CAST(x.value_num AS INTEGER)
                     ELSE x.value_num END,
                x.received_at
            FROM samples x CROSS JOIN series s INDEXED BY series_by_key
            WHERE s.vin = x.vin AND s.property = x.property AND s.instance = x.instance
                AND coalesce(s.unit, '') = coalesce(x.unit, '') AND coalesce(s.source_unit, '') = coalesce(x.source_unit, '');
        UPDATE series SET history_at = (SELECT max(observed_at) FROM history WHERE series_id = series.id);
        -- A series of a unit no longer sent: its newest value is its newest row.
        UPDATE series SET (observed_at, value_num, value_text, received_at) = (
            SELECT h.observed_at, CASE WHEN typeof(h.value) = 'text' THEN NULL ELSE h.value END,
                CASE WHEN typeof(h.value) = 'text' THEN h.value END, h.received_at
            FROM history h WHERE h.series_id = series.id ORDER BY h.observed_at DESC LIMIT 1)
        WHERE current = 0 AND history_at IS NOT NULL;
        UPDATE series SET current = 1 WHERE id IN (
            SELECT s.id FROM series s
            WHERE NOT EXISTS (SELECT 1 FROM series c WHERE c.vin = s.vin AND c.property = s.property
                    AND c.instance = s.instance AND c.current = 1)
                AND s.observed_at = (SELECT max(o.observed_at) FROM series o WHERE o.vin = s.vin
                    AND o.property = s.property AND o.instance = s.instance)
            GROUP BY s.vin, s.property, s.instance);
        ALTER TABLE samples RENAME TO samples_v11;
        ALTER TABLE latest RENAME TO latest_v11;
        \(seriesViews)
        \(latestView)
        CREATE INDEX latest_status ON series (vin, property, instance, observed_at, value_num, value_text, failure_reason)
            WHERE current = 1 AND \(statusProperties);
        """,
        // 13: the tables of before 12 dropped, each in autocommit (see ``outsideTransaction``):
        //     inside a transaction SQLite keeps every freed page in the statement journal, in
        //     memory (~750 MB for 10 M rows).
        """
        DROP TABLE IF EXISTS samples_v11;
        DROP TABLE IF EXISTS latest_v11;
        """,
        // 14: a vehicle gets an integer id (AUTOINCREMENT: never given twice, so a poll row can
        //     never come to name another vehicle), and the poll log refers to it instead of
        //     repeating the VIN (twice a poll, with its index); a new `request_id` of 32 lowercase
        //     hex digits is kept as its 16 bytes (rows copied here keep their text). `polls`
        //     becomes a view with its columns of before. The rows are copied in id order; the old
        //     table is dropped by 15.
        """
        CREATE TABLE vehicles_v14 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            vin TEXT NOT NULL UNIQUE,
            first_seen_at INTEGER NOT NULL,
            last_polled_at INTEGER,
            last_http_status INTEGER,
            last_error TEXT,
            brand TEXT,
            clearance_status TEXT,
            clearance_changed_at INTEGER,
            status TEXT NOT NULL DEFAULT 'active',
            status_reason TEXT,
            status_changed_at INTEGER,
            last_observed_at INTEGER
        );
        INSERT INTO vehicles_v14 (vin, first_seen_at, last_polled_at, last_http_status, last_error, brand,
                clearance_status, clearance_changed_at, status, status_reason, status_changed_at, last_observed_at)
            SELECT vin, first_seen_at, last_polled_at, last_http_status, last_error, brand, clearance_status,
                clearance_changed_at, status, status_reason, status_changed_at, last_observed_at
            FROM vehicles ORDER BY vin;
        -- A poll of a VIN with no vehicles row (none is written so, but a hand edit could) keeps its
        -- rows: the vehicle gets one.
        INSERT OR IGNORE INTO vehicles_v14 (vin, first_seen_at, last_polled_at)
            SELECT vin, min(requested_at), max(requested_at) FROM polls GROUP BY vin;
        DROP TABLE vehicles;
        ALTER TABLE vehicles_v14 RENAME TO vehicles;
        CREATE TABLE poll_log (
            id INTEGER PRIMARY KEY,
            vehicle_id INTEGER NOT NULL,
            requested_at INTEGER NOT NULL,
            http_status INTEGER,
            latency_ms INTEGER NOT NULL,
            error TEXT,
            request_id,
            samples_written INTEGER NOT NULL DEFAULT 0,
            events_emitted INTEGER NOT NULL DEFAULT 0,
            manual INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO poll_log (id, vehicle_id, requested_at, http_status, latency_ms, error, request_id,
                samples_written, events_emitted, manual)
            SELECT p.id, v.id, p.requested_at, p.http_status, p.latency_ms, p.error, p.request_id, p.samples_written,
                p.events_emitted, p.manual
            FROM polls p JOIN vehicles v ON v.vin = p.vin ORDER BY p.id;
        ALTER TABLE polls RENAME TO polls_v13;
        CREATE INDEX poll_log_by_vehicle_time ON poll_log (vehicle_id, requested_at);
        CREATE INDEX poll_log_by_time ON poll_log (requested_at);
        \(pollsView)
        """,
        // 15: the poll table of before 14 dropped in autocommit, as 13 does.
        """
        DROP TABLE IF EXISTS polls_v13;
        """,
    ]

    /// `polls`: the poll log with each poll's VIN, and its `request_id` as the API sent it.
    static let pollsView = """
        CREATE VIEW polls AS
            SELECT p.id, v.vin, p.requested_at, p.http_status, p.latency_ms, p.error,
                CASE WHEN typeof(p.request_id) = 'blob' THEN lower(hex(p.request_id)) ELSE p.request_id END
                    AS request_id,
                p.samples_written, p.events_emitted, p.manual
            FROM poll_log p JOIN vehicles v ON v.id = p.vehicle_id;
        """

    /// Migrations that run statement by statement in autocommit, then bump `user_version`:
    /// each statement is atomic and the whole is idempotent, so a process killed halfway runs it
    /// again at the next start.
    static let outsideTransaction: Set<Int64> = [13, 15]

    /// The schema version this build writes.
    static var currentVersion: Int64 { Int64(migrations.count) }

    /// Brings the database to ``currentVersion``.
    ///
    /// - Throws: ``StoreError/newerSchema(found:supported:path:)`` for a database written by a
    ///   newer fleet-telemetry; ``SQLiteError`` when a migration fails (nothing is changed then).
    static func migrate(_ connection: Connection) throws {
        let found = try connection.scalarInt("PRAGMA user_version") ?? 0
        guard found <= currentVersion else {
            throw StoreError.newerSchema(found: found, supported: currentVersion, path: connection.path)
        }
        if found == 0,
            let table = try connection.scalarText("SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1")
        {
            // Version 0 with tables: a database of some other program, never ours to change.
            throw StoreError.foreignDatabase(path: connection.path, table: table)
        }
        // Foreign keys off while the schema changes, as SQLite advises for table rebuilds: with
        // them on, dropping a table deletes its rows one by one first (10 M `samples` rows held
        // ~800 MB in the statement journal during migration 12).
        guard found < currentVersion else { return }
        // While migrating: foreign keys off; table renames that leave the views and triggers of
        // the schema as they are (a user's view on `polls` goes on reading `polls`, the view that
        // replaces the table, and a view already broken does not stop the rename); and temporary
        // data (the sort of an index built over 10 M rows) on disk, not in memory.
        try connection.execute("PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; PRAGMA temp_store = FILE")
        defer {
            try? connection.execute(
                "PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = OFF; PRAGMA temp_store = MEMORY")
        }
        for version in (found + 1)...max(found + 1, currentVersion) where version <= currentVersion {
            if outsideTransaction.contains(version) {
                try connection.execute(migrations[Int(version) - 1])
                try connection.execute("PRAGMA user_version = \(version)")
                continue
            }
            try connection.transaction {
                // Another process may have run this migration while this one waited for the lock.
                guard (try connection.scalarInt("PRAGMA user_version") ?? 0) < version else { return }
                try connection.execute(migrations[Int(version) - 1])
                try connection.execute("PRAGMA user_version = \(version)")
            }
        }
    }
}

/// An error of the telemetry store that is not a plain SQLite error.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The database was written by a newer fleet-telemetry, with a schema this build does not know.
    case newerSchema(found: Int64, supported: Int64, path: String)
    /// The file is an SQLite database of another program (it has tables but no fleet-telemetry schema).
    case foreignDatabase(path: String, table: String)
    /// A read-only use (`status`, `history`, …) was given a file that holds no fleet-telemetry data yet.
    case notAFleetDatabase(path: String)
    /// A reader without write access found an older schema, which only a writer can upgrade.
    case olderSchemaReadOnly(found: Int64, supported: Int64, path: String)

    public var description: String {
        switch self {
        case .newerSchema(let found, let supported, let path):
            return
                "database \(path) has schema version \(found), newer than the \(supported) this fleet-telemetry knows; upgrade fleet-telemetry"
        case .foreignDatabase(let path, let table):
            return
                "\(path) is an SQLite database of another program (it has a table \(table) but no fleet-telemetry schema); it is left untouched: choose another file"
        case .notAFleetDatabase(let path):
            return
                "\(path) is not a fleet-telemetry database (it is empty); run the daemon, the demo or an import first"
        case .olderSchemaReadOnly(let found, let supported, let path):
            return
                "database \(path) has schema version \(found) and this fleet-telemetry reads \(supported); it is read-only for this user, so it cannot be upgraded: start the daemon once (it upgrades the file)"
        }
    }
}
