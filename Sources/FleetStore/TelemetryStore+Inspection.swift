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
