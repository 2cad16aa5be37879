import CSQLite

/// A value bound to a statement parameter.
enum SQLiteValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A compiled SQL statement of one ``Connection``.
///
/// Bind with ``bind(_:)``, read rows with ``step()`` and the column accessors; ``bind(_:)``
/// resets the statement first, so a cached statement is always reused from a clean state.
final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection
    /// The SQL this statement was compiled from.
    let sql: String

    init(connection: Connection, sql: String, persistent: Bool) throws(SQLiteError) {
        var statement: OpaquePointer?
        let flags: UInt32 = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let code = sqlite3_prepare_v3(connection.handle, sql, -1, flags, &statement, nil)
        guard code == SQLITE_OK, let statement else {
            throw SQLiteError(connection: connection.handle, code: code, sql: sql)
        }
        self.handle = statement
        self.connection = connection
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// Resets the statement and binds `values` to its parameters `?1…?n` in order.
    ///
    /// - Throws: ``SQLiteError`` when the count does not match or a bind fails.
    func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        sqlite3_reset(handle)
        // No sqlite3_clear_bindings: every parameter is bound again below (the count must match).
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard values.count == expected else {
            throw SQLiteError(
                code: .range, message: "statement takes \(expected) parameters, \(values.count) given", sql: sql)
        }
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(handle, index)
            case .integer(let i): code = sqlite3_bind_int64(handle, index, i)
            case .real(let d): code = sqlite3_bind_double(handle, index, d)
            case .text(let s):
                // With its byte length: a NUL inside the text is kept, not taken as its end.
                var text = s
                code = text.withUTF8 { bytes in
                    guard let base = bytes.baseAddress else {
                        return sqlite3_bind_text(handle, index, "", 0, SQLITE_TRANSIENT)
                    }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        sqlite3_bind_text(handle, index, $0, Int32(clamping: bytes.count), SQLITE_TRANSIENT)
                    }
                }
            case .blob(let bytes):
                code = bytes.withUnsafeBytes { buffer in
                    // A zero-length blob still needs a non-null pointer to be a blob, not NULL.
                    sqlite3_bind_blob(
                        handle, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                        Int32(clamping: buffer.count), SQLITE_TRANSIENT)
                }
            }
            guard code == SQLITE_OK else {
                throw SQLiteError(connection: connection.handle, code: code, sql: sql)
            }
        }
    }

    /// Ends the current execution: a statement left on a row keeps its read snapshot open, which
    /// would stop the WAL from being checkpointed. Call it after reading a single row.
    func reset() {
        sqlite3_reset(handle)
    }

    /// Advances to the next row.
    ///
    /// - Returns: `true` when a row is available, `false` when the statement is done.
    /// - Throws: ``SQLiteError`` with the statement's SQL (constraint violation, `SQLITE_FULL`, …).
    @discardableResult
    func step() throws(SQLiteError) -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = SQLiteError(connection: connection.handle, code: code, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Binds `values` and runs the statement to completion, ignoring any rows.
    func run(_ values: [SQLiteValue]) throws(SQLiteError) {
        try bind(values)
        while try step() {}
    }

    /// True when column `column` (0-based) of the current row is NULL.
    /// The number of columns of a row.
    var columnCount: Int32 { sqlite3_column_count(handle) }

    func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    /// Column `column` of the current row as a 64-bit integer (SQLite's conversion rules; 0 for NULL).
    func int(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    /// Column `column` of the current row as a double (0.0 for NULL).
    func double(at column: Int32) -> Double { sqlite3_column_double(handle, column) }
    /// The bytes of a BLOB (or TEXT) column; empty for NULL.
    func blob(at column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
    /// Column `column` of the current row in the storage class SQLite holds it in.
    func value(at column: Int32) -> SQLiteValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .integer(int(at: column))
        case SQLITE_FLOAT: return .real(double(at: column))
        case SQLITE_BLOB: return .blob(blob(at: column))
        default: return .text(text(at: column) ?? "")
        }
    }
    /// Column `column` of the current row as UTF-8 text; `nil` for NULL.
    func text(at column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }
}
