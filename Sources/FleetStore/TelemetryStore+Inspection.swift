import Foundation

extension TelemetryStore {
    /// How many vehicles of the database at `path` have a VIN that does not start with `prefix`,
    /// read without an open store: what `fleet-telemetry demo` checks before it replaces a file
    /// (a database of an earlier demo holds only the emulator's VINs, `1HMEMU…`).
    ///
    /// The file is opened as a store opens it (WAL mode), but not given the schema. `prefix` is
    /// compared as SQL `LIKE` compares (ASCII letters in either case) and must not hold `%` or `_`.
    ///
    /// - Parameters:
    ///   - path: An existing, non-empty file.
    ///   - prefix: The start of the VINs not counted, e.g. `1HMEMU`.
    /// - Returns: The number of `vehicles` rows whose VIN does not start with `prefix`.
    /// - Throws: ``SQLiteError`` when the file cannot be opened, is not an SQLite database
    ///   (``SQLiteError/Code/notadb``) or has no `vehicles` table (``SQLiteError/Code/error``).
    public static func vehicleCount(
        inDatabaseAt path: String, vinsNotStartingWith prefix: String
    ) throws(SQLiteError)
        -> Int
    {
        let connection = try Connection(path: path)
        // The prefix is spelled into the SQL, not bound: the SQL is part of the error message
        // the demo prints for a foreign file.
        let literal = "'" + prefix.replacingOccurrences(of: "'", with: "''") + "%'"
        return Int(try connection.scalarInt("SELECT count(*) FROM vehicles WHERE vin NOT LIKE \(literal)") ?? 0)
    }
}

/// Which kind of command writes a database: the `written_by` setting.
public enum DatabaseRole: String, Sendable, Hashable {
    /// `run`, `poll --store`, `import`: data to keep.
    case daemon
    /// `fleet-telemetry demo`: replaced by the next demo.
    case demo
}

extension TelemetryStore {
    /// Records which kind of command writes this database (the `settings` row `written_by`); a
    /// database written by the daemon stays so, whatever writes it later.
    public func setRole(_ role: DatabaseRole) throws {
        try withConnection { connection in
            try connection.cachedStatement(
                """
                INSERT INTO settings (key, value) VALUES ('written_by', ?1)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE settings.value IS NOT 'daemon'
                """
            )
            .run([.text(role.rawValue)])
        }
    }

    /// The role recorded in the database at `path`, read without an open store; `nil` for a
    /// database of an earlier release (no `written_by` setting, or no `settings` table).
    ///
    /// - Throws: ``SQLiteError`` when the file cannot be opened or is not an SQLite database.
    public static func role(ofDatabaseAt path: String) throws(SQLiteError) -> DatabaseRole? {
        let connection = try Connection(path: path)
        let hasSettings =
            try connection.scalarInt("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'settings'")
            ?? 0
        guard hasSettings > 0 else { return nil }
        let statement = try connection.makeStatement("SELECT value FROM settings WHERE key = 'written_by'")
        try statement.bind([])
        guard try statement.step() else { return nil }
        return statement.text(at: 0).flatMap(DatabaseRole.init)
    }
}

extension TelemetryStore {
    /// Checks that the database takes a write now: takes the write lock (waiting at most a
    /// second) and lets it go, writing nothing. For the health endpoint.
    ///
    /// - Throws: ``SQLiteError``: `SQLITE_BUSY` while another process holds the lock,
    ///   `SQLITE_READONLY`, `SQLITE_IOERR`, … .
    public func probeWritable() throws {
        try withConnection { connection in
            try connection.withBusyTimeout(milliseconds: 1000) {
                try connection.execute("BEGIN IMMEDIATE; ROLLBACK")
            }
        }
    }
}
