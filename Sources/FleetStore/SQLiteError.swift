import CSQLite

/// An error reported by SQLite, with everything needed to act on it.
///
/// Like GRDB's `DatabaseError`, it keeps the primary and extended result codes, SQLite's own
/// message and the SQL of the statement that failed. Match the codes by name, never by number:
///
/// ```swift
/// catch let error as SQLiteError where error.code == .full { … }
/// catch SQLiteError.Code.busy { … }            // any error whose primary code is SQLITE_BUSY
/// switch error.code { case .readonly: …; default: … }
/// ```
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The extended result code (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_FULL`, …).
    public var extendedResultCode: Int32
    /// The message of `sqlite3_errmsg`, or a description of the misuse.
    public var message: String
    /// The SQL of the failing statement, when there was one.
    public var sql: String?

    /// The primary result code as SQLite's integer (`SQLITE_BUSY`, `SQLITE_FULL`, …); compare
    /// ``code`` with a named ``Code`` instead.
    public var resultCode: Int32 { extendedResultCode & 0xFF }

    /// The primary result code (``Code/busy``, ``Code/full``, ``Code/corrupt``, …).
    public var code: Code { Code(rawValue: resultCode) }

    /// The extended result code (``Code/constraintUnique``, …; the primary code when SQLite gave
    /// no extended one). A primary ``Code`` matches it with `~=`.
    public var extendedCode: Code { Code(rawValue: extendedResultCode) }

    /// ``Code/busy`` or ``Code/locked``: another connection holds the lock; trying again may work.
    public var isLocked: Bool { code == .busy || code == .locked }

    /// ``Code/full``: the disk is full or the database reached its `max_page_count`
    /// (`database.max_size_mb`).
    public var isFull: Bool { code == .full }

    /// An error with SQLite's integer result code.
    ///
    /// - Parameters:
    ///   - extendedResultCode: The extended (or primary) result code.
    ///   - message: One readable line: what failed and why.
    ///   - sql: The statement that failed, if any.
    public init(extendedResultCode: Int32, message: String, sql: String? = nil) {
        self.extendedResultCode = extendedResultCode
        self.message = message
        self.sql = sql
    }

    /// An error with a named result code (``Code/error``, ``Code/range``, …).
    init(code: Code, message: String, sql: String? = nil) {
        self.init(extendedResultCode: code.rawValue, message: message, sql: sql)
    }

    init(connection: OpaquePointer?, code: Int32, sql: String?) {
        let extended = connection.map { sqlite3_extended_errcode($0) } ?? code
        let message =
            connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(code))
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

extension SQLiteError {
    /// An SQLite result code, primary (`SQLITE_FULL`) or extended (`SQLITE_CONSTRAINT_UNIQUE`),
    /// by name: GRDB's `ResultCode`.
    ///
    /// `~=` lets a primary code match every extended code of its family, so `case .constraint`
    /// matches a `SQLITE_CONSTRAINT_UNIQUE` error, and `catch SQLiteError.Code.full` catches an
    /// ``SQLiteError`` whose primary code is `SQLITE_FULL`. `==` compares the codes exactly.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// SQLite's integer value of the code.
        public var rawValue: Int32

        /// A code from SQLite's integer value.
        public init(rawValue: Int32) {
            self.rawValue = rawValue
        }

        /// The primary code of this code's family (the code itself for a primary code).
        public var primary: Code { Code(rawValue: rawValue & 0xFF) }

        /// `SQLITE_ERROR`: a generic error (an SQL error, a missing table, a misused setting).
        public static let error = Code(rawValue: SQLITE_ERROR)
        /// `SQLITE_INTERNAL`: a bug in SQLite.
        public static let `internal` = Code(rawValue: SQLITE_INTERNAL)
        /// `SQLITE_PERM`: the file's access mode refuses the operation.
        public static let perm = Code(rawValue: SQLITE_PERM)
        /// `SQLITE_ABORT`: the operation was aborted (e.g. by a `RAISE(ABORT)` trigger or rollback).
        public static let abort = Code(rawValue: SQLITE_ABORT)
        /// `SQLITE_BUSY`: another connection (another process) holds the lock, for longer than the
        /// busy timeout.
        public static let busy = Code(rawValue: SQLITE_BUSY)
        /// `SQLITE_LOCKED`: a conflict with another statement or connection of the same process.
        public static let locked = Code(rawValue: SQLITE_LOCKED)
        /// `SQLITE_NOMEM`: a memory allocation failed.
        public static let nomem = Code(rawValue: SQLITE_NOMEM)
        /// `SQLITE_READONLY`: the database refuses writes (read-only file or `query_only`).
        public static let readonly = Code(rawValue: SQLITE_READONLY)
        /// `SQLITE_INTERRUPT`: `sqlite3_interrupt` ended the operation.
        public static let interrupt = Code(rawValue: SQLITE_INTERRUPT)
        /// `SQLITE_IOERR`: the operating system reported an I/O error.
        public static let ioerr = Code(rawValue: SQLITE_IOERR)
        /// `SQLITE_CORRUPT`: the database file is damaged.
        public static let corrupt = Code(rawValue: SQLITE_CORRUPT)
        /// `SQLITE_FULL`: the disk is full or the database reached its `max_page_count`.
        public static let full = Code(rawValue: SQLITE_FULL)
        /// `SQLITE_CANTOPEN`: the file (or its folder, or a temporary file) cannot be opened.
        public static let cantopen = Code(rawValue: SQLITE_CANTOPEN)
        /// `SQLITE_PROTOCOL`: a problem with the file locking protocol.
        public static let `protocol` = Code(rawValue: SQLITE_PROTOCOL)
        /// `SQLITE_SCHEMA`: the schema changed under a prepared statement.
        public static let schema = Code(rawValue: SQLITE_SCHEMA)
        /// `SQLITE_TOOBIG`: a string or blob is larger than SQLite allows.
        public static let toobig = Code(rawValue: SQLITE_TOOBIG)
        /// `SQLITE_CONSTRAINT`: a constraint (unique, not null, foreign key, check) was violated.
        public static let constraint = Code(rawValue: SQLITE_CONSTRAINT)
        /// `SQLITE_MISMATCH`: a datatype mismatch (e.g. a non-integer rowid).
        public static let mismatch = Code(rawValue: SQLITE_MISMATCH)
        /// `SQLITE_MISUSE`: the C API was used against its rules.
        public static let misuse = Code(rawValue: SQLITE_MISUSE)
        /// `SQLITE_AUTH`: an authorizer refused the statement.
        public static let auth = Code(rawValue: SQLITE_AUTH)
        /// `SQLITE_RANGE`: a parameter index out of range (or the wrong number of bound values).
        public static let range = Code(rawValue: SQLITE_RANGE)
        /// `SQLITE_NOTADB`: the file is not an SQLite database.
        public static let notadb = Code(rawValue: SQLITE_NOTADB)

        // Swift does not import the extended codes' macros: they are rebuilt as sqlite3.h defines them.

        /// `SQLITE_CONSTRAINT_UNIQUE`: a `UNIQUE` constraint failed.
        public static let constraintUnique = Code(rawValue: SQLITE_CONSTRAINT | (8 << 8))
        /// `SQLITE_CONSTRAINT_PRIMARYKEY`: a `PRIMARY KEY` constraint failed.
        public static let constraintPrimaryKey = Code(rawValue: SQLITE_CONSTRAINT | (6 << 8))
        /// `SQLITE_CONSTRAINT_FOREIGNKEY`: a foreign key constraint failed.
        public static let constraintForeignKey = Code(rawValue: SQLITE_CONSTRAINT | (3 << 8))
        /// `SQLITE_CONSTRAINT_NOTNULL`: a `NOT NULL` constraint failed.
        public static let constraintNotNull = Code(rawValue: SQLITE_CONSTRAINT | (5 << 8))

        /// The integer and SQLite's English text for the code, e.g. `13 (database or disk is full)`.
        public var description: String { "\(rawValue) (\(String(cString: sqlite3_errstr(rawValue))))" }

        /// True when `value` is `pattern` or, for a primary `pattern`, of its family: `case .constraint`
        /// matches ``constraintUnique``.
        public static func ~= (pattern: Code, value: Code) -> Bool {
            pattern == value || (pattern == pattern.primary && pattern == value.primary)
        }

        /// True when `error` is an ``SQLiteError`` whose extended code `pattern` matches, so that
        /// `catch SQLiteError.Code.full` catches a full database.
        public static func ~= (pattern: Code, error: any Error) -> Bool {
            guard let error = error as? SQLiteError else { return false }
            return pattern ~= error.extendedCode
        }
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
