import CSQLite

/// An error reported by SQLite, with everything needed to act on it.
///
/// Like GRDB's `DatabaseError`, it keeps the primary and extended result codes, SQLite's own
/// message and the SQL of the statement that failed.
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The extended result code (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_FULL`, …).
    public var extendedResultCode: Int32
    /// The message of `sqlite3_errmsg`, or a description of the misuse.
    public var message: String
    /// The SQL of the failing statement, when there was one.
    public var sql: String?

    /// The primary result code (`SQLITE_BUSY`, `SQLITE_FULL`, `SQLITE_CORRUPT`, …).
    public var resultCode: Int32 { extendedResultCode & 0xFF }

    /// `SQLITE_BUSY` or `SQLITE_LOCKED`: another connection holds the lock; trying again may work.
    public var isLocked: Bool { resultCode == SQLITE_BUSY || resultCode == SQLITE_LOCKED }

    /// `SQLITE_FULL`: the disk is full or the database reached its `max_page_count`
    /// (`database.max_size_mb`).
    public var isFull: Bool { resultCode == SQLITE_FULL }

    public init(extendedResultCode: Int32, message: String, sql: String? = nil) {
        self.extendedResultCode = extendedResultCode
        self.message = message
        self.sql = sql
    }

    init(connection: OpaquePointer?, code: Int32, sql: String?) {
        let extended = connection.map { sqlite3_extended_errcode($0) } ?? code
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        self.init(extendedResultCode: extended != 0 ? extended : code, message: message, sql: sql)
    }

    public var description: String {
        var text = "SQLite error \(extendedResultCode) (\(String(cString: sqlite3_errstr(resultCode)))): \(message)"
        if let sql {
            let oneLine = sql.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace }.joined(separator: " ")
            text += " — while executing `\(oneLine.count > 160 ? oneLine.prefix(160) + "…" : Substring(oneLine))`"
        }
        return text
    }
}

extension Substring {
    var trimmingWhitespace: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
