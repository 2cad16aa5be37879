import FleetModel
import Foundation

extension TelemetryStore {
    /// Deletes `samples` observed, `polls` requested and `raw_responses` received before the
    /// cutoffs, in batches of at most `batch` rows per transaction, so that ingestion never waits
    /// long for the write lock. `latest`, `events` and `charging_sessions` are kept.
    ///
    /// History rows are deleted one vehicle at a time, series by series along the primary key
    /// `(series_id, observed_at)`: no full-table scan, whatever the size of the table. The newest
    /// value of each series (`latest`) stays.
    ///
    /// - Parameters:
    ///   - samplesBefore: Samples observed earlier are deleted; `nil` keeps them all.
    ///   - pollsBefore: Polls requested earlier are deleted; `nil` keeps them all.
    ///   - rawBefore: Archived responses received earlier are deleted; `nil` keeps them all.
    /// - Returns: The rows deleted.
    /// - Throws: ``SQLiteError``; the batches committed before the error stay deleted.
    @discardableResult
    public func prune(
        samplesBefore: Timestamp?, pollsBefore: Timestamp?, rawBefore: Timestamp? = nil, batch: Int = 5000
    ) throws -> Int {
        try withConnection { connection in
            func deleteInBatches(_ sql: String, _ values: [SQLiteValue]) throws -> Int {
                var deleted = 0
                while true {
                    let removed = try connection.transaction { () throws -> Int in
                        try connection.cachedStatement(sql).run(values + [.integer(Int64(batch))])
                        return connection.changes
                    }
                    deleted += removed
                    if removed < batch { return deleted }
                }
            }
            var deleted = 0
            // Samples and archived responses are deleted vehicle by vehicle, along their keys.
            var all: [String] = []
            if samplesBefore != nil || rawBefore != nil {
                let vins = try connection.makeStatement("SELECT vin FROM vehicles ORDER BY vin")
                while try vins.step() { all.append(vins.text(at: 0) ?? "") }
            }
            if let cutoff = samplesBefore {
                for vin in all {
                    deleted += try deleteInBatches(
                        """
                        DELETE FROM history WHERE (series_id, observed_at) IN (
                            SELECT h.series_id, h.observed_at FROM series s JOIN history h ON h.series_id = s.id
                            WHERE s.vin = ?1 AND h.observed_at < ?2 LIMIT ?3)
                        """, [.text(vin), .integer(cutoff.millisecondsSince1970)])
                }
            }
            if let cutoff = pollsBefore {
                deleted += try deleteInBatches(
                    """
                    DELETE FROM poll_log WHERE id IN (SELECT id FROM poll_log WHERE requested_at < ?1 LIMIT ?2)
                    """, [.integer(cutoff.millisecondsSince1970)])
            }
            if let cutoff = rawBefore {
                for vin in all {
                    deleted += try deleteInBatches(
                        """
                        DELETE FROM raw_responses WHERE vin = ?1 AND received_at IN (
                            SELECT received_at FROM raw_responses WHERE vin = ?1 AND received_at < ?2 LIMIT ?3)
                        """, [.text(vin), .integer(cutoff.millisecondsSince1970)])
                }
                // A dictionary (the fleet's, or a vehicle's keyframe) is used until the next one of
                // its kind is made: once that happened a day before the cutoff, every body it
                // encoded was received before the cutoff, and is gone. Only the oldest are looked at.
                try connection.transaction {
                    try connection.cachedStatement(
                        """
                        DELETE FROM archive_dictionaries WHERE id IN (
                            SELECT d.id FROM archive_dictionaries d
                            WHERE d.id < coalesce(
                                    (SELECT min(id) FROM archive_dictionaries WHERE created_at >= ?1),
                                    (SELECT max(id) + 1 FROM archive_dictionaries))
                                AND (SELECT n.created_at FROM archive_dictionaries n INDEXED BY archive_dictionaries_by_vin
                                     WHERE n.vin IS d.vin AND n.id > d.id ORDER BY n.id LIMIT 1) < ?1)
                        """
                    ).run([.integer(cutoff.millisecondsSince1970 - 86_400_000)])
                }
            }
            return deleted
        }
    }

    /// Vehicles whose clearance ended (`revoked`, `rejected` or `canceled`) before `cutoff` and
    /// that hold data: the ones `retention.purge_revoked_days` purges. (After a purge, the fleet
    /// sync lists the vehicle again with its clearance only: that row has no data to forget.)
    public func vehiclesRevoked(before cutoff: Timestamp) throws -> [VIN] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT vin FROM vehicles WHERE clearance_status IN ('revoked', 'rejected', 'canceled')
                AND clearance_changed_at < ?1 AND (last_polled_at IS NOT NULL OR last_observed_at IS NOT NULL)
                ORDER BY vin
                """)
            try statement.bind([.integer(cutoff.millisecondsSince1970)])
            var result: [VIN] = []
            while try statement.step() {
                if let vin = statement.text(at: 0).flatMap(VIN.init) { result.append(vin) }
            }
            return result
        }
    }

    /// Stores the age after which `latest_view` (and `fleet-telemetry status`) call a value
    /// stale: the `stale_after_seconds` row of `settings`.
    public func setStaleAfter(seconds: Int64) throws {
        try withConnection { connection in
            try connection.cachedStatement(
                "INSERT INTO settings (key, value) VALUES ('stale_after_seconds', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )
            .run([.integer(seconds)])
        }
    }

    /// Stores `database.repeat_heartbeat` (`repeat_heartbeat_seconds` in `settings`), which this
    /// store and every later one on the file apply: a value re-observed unchanged is stored again
    /// in the history at most every `seconds`; 0 stores every repeat.
    public func setRepeatHeartbeat(seconds: Int64) throws {
        try withConnection { connection in
            try connection.cachedStatement(
                """
                INSERT INTO settings (key, value) VALUES ('repeat_heartbeat_seconds', ?1)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value
                """
            )
            .run([.integer(max(0, seconds))])
        }
        repeatHeartbeatMilliseconds = max(0, seconds) * 1000
    }

    /// The `stale_after_seconds` setting (3600 unless set).
    public func staleAfterSeconds() throws -> Int64 {
        try withConnection { connection in
            try connection.scalarInt("SELECT value FROM settings WHERE key = 'stale_after_seconds'") ?? 3600
        }
    }

    /// What a WAL checkpoint did.
    public struct CheckpointResult: Sendable, Hashable {
        /// True when a reader or writer kept the checkpoint from completing.
        public var busy: Bool
        /// Frames in the WAL before the checkpoint.
        public var walFrames: Int
        /// Frames copied into the database.
        public var checkpointedFrames: Int
        /// The size of the `-wal` file afterwards, in bytes.
        public var walBytes: Int64
    }

    /// The size of the database's `-wal` file in bytes (0 when there is none).
    public func walSize() -> Int64 {
        withConnection { Connection.fileSize(atPath: $0.path + "-wal") }
    }

    /// Checkpoints the WAL and truncates it to zero bytes (`PRAGMA wal_checkpoint(TRUNCATE)`).
    ///
    /// SQLite checkpoints by itself after commits (every 4,000 pages), but it cannot reuse the WAL
    /// while a reader (a Grafana query, a `sqlite3` shell left in a transaction) holds an old
    /// snapshot, so the file grows. Once that reader is gone this brings the file back to zero.
    /// While a reader still holds its snapshot the result is `busy`, and nothing is lost: the
    /// frames stay in the WAL until the next attempt.
    ///
    /// - Throws: ``SQLiteError`` for errors other than busy.
    public func checkpoint() throws -> CheckpointResult {
        try withConnection { connection in
            try connection.withBusyTimeout(milliseconds: 200) {
                let statement = try connection.makeStatement("PRAGMA wal_checkpoint(TRUNCATE)")
                defer { statement.reset() }
                let walPath = connection.path + "-wal"
                let hasRow: Bool
                do {
                    hasRow = try statement.step()
                } catch let error as SQLiteError where error.isLocked {
                    return CheckpointResult(
                        busy: true, walFrames: 0, checkpointedFrames: 0, walBytes: Connection.fileSize(atPath: walPath))
                }
                guard hasRow else {
                    return CheckpointResult(
                        busy: true, walFrames: 0, checkpointedFrames: 0, walBytes: Connection.fileSize(atPath: walPath))
                }
                let busy = statement.int(at: 0) != 0
                let frames = Int(statement.int(at: 1))
                let done = Int(statement.int(at: 2))
                statement.reset()
                return CheckpointResult(
                    busy: busy, walFrames: frames, checkpointedFrames: done,
                    walBytes: Connection.fileSize(atPath: walPath))
            }
        }
    }
}

extension TelemetryStore {
    /// Caps the database file at about `bytes` (`PRAGMA max_page_count`; `database.max_size_mb`).
    ///
    /// The WAL is then checkpointed at a quarter of the cap (at least 100 pages), so that it
    /// adds at most about a quarter to the disk use. A write that would grow the file past the
    /// cap fails with `SQLITE_FULL` exactly as on a full disk: the poll's transaction is rolled back whole, the error names the cause, and
    /// the daemon retries that vehicle with backoff. Retention (or a larger cap) makes room again.
    ///
    /// - Returns: The cap in effect, in bytes (never below the current size).
    @discardableResult
    public func setMaximumSize(bytes: Int64) throws -> Int64 {
        try withConnection { connection in
            let pageSize = try connection.scalarInt("PRAGMA page_size") ?? 4096
            let pages = max(1, bytes / pageSize)
            let effective = try connection.scalarInt("PRAGMA max_page_count = \(pages)") ?? pages
            // The WAL comes on top of the file: checkpoint it at a quarter of the cap, so that the
            // disk use stays near the cap rather than at the 64 MiB of the default.
            let checkpointPages = max(100, min(16_000, effective / 4))
            try connection.execute(
                "PRAGMA wal_autocheckpoint = \(checkpointPages); PRAGMA journal_size_limit = \(checkpointPages * pageSize)"
            )
            return effective * pageSize
        }
    }
}
