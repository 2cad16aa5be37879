import CSQLite
import Dispatch
import Foundation
import Synchronization

/// `SQLITE_TRANSIENT`: Swift does not import the macro, so it is rebuilt from its value (-1).
let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite database connection, opened through the C API and closed in `deinit`.
///
/// Internal to FleetStore, and not `Sendable`: exactly one owner (the ``TelemetryStore`` actor,
/// on its ``DatabaseExecutor`` thread) uses it; other modules go through the store's methods.
/// Every result code is checked and turned into a ``SQLiteError``; statements prepared with
/// ``cachedStatement(_:)`` are compiled once and reused.
final class Connection {
    let handle: OpaquePointer
    /// The file path given to ``init(path:busyTimeout:)``.
    let path: String
    private var statementCache: [String: Statement] = [:]
    /// The busy timeout given at opening, in milliseconds.
    let busyTimeoutMilliseconds: Int32
    /// How this connection waits for another connection's lock (``BusyWait``).
    let busyWait: BusyWait

    /// Opens (creating if needed) the database at `path`, in WAL mode with `synchronous=NORMAL`,
    /// foreign keys on and a busy timeout.
    ///
    /// - Parameters:
    ///   - path: A file path, or `:memory:`.
    ///   - busyTimeout: How long to wait for a lock held by another connection (e.g. a `sqlite3`
    ///     shell) before failing with `SQLITE_BUSY`.
    ///   - readOnly: Open without write access (an existing file only; its journal mode is left
    ///     as it is): for a reader who may not write the file, such as a member of the database's
    ///     group while the daemon runs.
    /// - Throws: ``SQLiteError`` when the file cannot be opened or is not a database.
    init(path: String, busyTimeout: Duration = .seconds(30), readOnly: Bool = false) throws(SQLiteError) {
        var db: OpaquePointer?
        if !readOnly && path != ":memory:" && !path.hasPrefix("file:") {
            // A new database holds where the vehicles were: readable by its owner and group
            // only (SQLite's own default is 0644), and its -wal and -shm files take its mode.
            let created = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
            if created >= 0 { close(created) }
        }
        let (name, flags) =
            readOnly
            ? Self.readOnlyName(path)
            : (path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX)
        let code = sqlite3_open_v2(name, &db, flags, nil)
        guard code == SQLITE_OK, let db else {
            let error = SQLiteError(connection: db, code: code, sql: nil)
            sqlite3_close_v2(db)
            var hint = ""
            let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            var isDirectory: ObjCBool = false
            if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
                hint = " (the folder \(folder) does not exist)"
            } else if !folder.isEmpty, !FileManager.default.isWritableFile(atPath: folder) {
                hint = " (the folder \(folder) is not writable)"
            }
            throw SQLiteError(
                extendedResultCode: error.extendedResultCode,
                message: "cannot open database at \(path): \(error.message)\(hint)")
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        busyTimeoutMilliseconds = Int32(
            clamping: busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000
        )
        busyWait = BusyWait(timeoutMilliseconds: Int64(busyTimeoutMilliseconds))
        sqlite3_busy_handler(db, busyHandler, Unmanaged.passUnretained(busyWait).toOpaque())
        if path != ":memory:" && !readOnly {
            // Switched only when needed: a reader of a read-only file cannot write the mode.
            var mode = try scalarText("PRAGMA journal_mode")
            if mode?.lowercased() != "wal" { mode = try scalarText("PRAGMA journal_mode = WAL") }
            guard mode?.lowercased() == "wal" else {
                throw SQLiteError(
                    code: .error, message: "could not switch \(path) to WAL (journal_mode is \(mode ?? "unknown"))")
            }
        }
        // wal_autocheckpoint = 16000 (64 MiB): the pages every poll writes again are copied into
        // the database once per checkpoint, not four times as at 4,000 pages (7 % less CPU per poll).
        // temp_store = MEMORY: the savepoint of each poll keeps its page copies (the statement
        // journal) in memory; with files SQLite created and deleted a temporary file per poll.
        try execute(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 16000; PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY;"
        )
    }

    deinit {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    /// The SQL of every statement compiled by ``cachedStatement(_:)`` so far.
    var cachedSQL: [String] { Array(statementCache.keys) }

    /// True while a transaction is open. SQLite ends one by itself after some errors
    /// (`SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`): then no savepoint is left to roll back to.
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// The size of the file at `path` in bytes; 0 when it does not exist.
    static func fileSize(atPath path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
    }

    /// The name and flags that open `path` read-only. When no writer has the file open (its WAL
    /// is checkpointed and gone), a reader who may not create the -shm file cannot open a WAL
    /// database at all: it is read as an unchanging file then (`immutable=1`).
    static func readOnlyName(_ path: String) -> (String, Int32) {
        let flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
        guard !FileManager.default.fileExists(atPath: path + "-wal"), access(path, W_OK) != 0 else {
            return (path, flags)
        }
        let escaped = path.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "?", with: "%3f")
            .replacingOccurrences(of: "#", with: "%23")
        return ("file:\(escaped)?immutable=1", flags | SQLITE_OPEN_URI)
    }

    /// What an existing file holds, read without changing it (no WAL switch, no schema):
    /// its `user_version` and the name of one of its tables, if any.
    ///
    /// - Returns: `nil` for a missing or empty file.
    /// - Throws: ``SQLiteError`` when the file is not an SQLite database.
    static func inspect(path: String) throws(SQLiteError) -> (userVersion: Int64, someTable: String?)? {
        guard fileSize(atPath: path) > 0 else { return nil }
        var db: OpaquePointer?
        let (name, flags) = readOnlyName(path)
        let code = sqlite3_open_v2(name, &db, flags, nil)
        defer { sqlite3_close_v2(db) }
        guard code == SQLITE_OK, let db else { throw SQLiteError(connection: db, code: code, sql: nil) }
        // Another connection may hold a lock for a moment (switching a new file to WAL, a
        // migration's commit): wait for it as every other connection does, rather than fail.
        sqlite3_busy_timeout(db, 5000)
        func scalar(_ sql: String) throws(SQLiteError) -> (Int64, String?)? {
            var statement: OpaquePointer?
            let prepared = sqlite3_prepare_v2(db, sql, -1, &statement, nil)
            defer { sqlite3_finalize(statement) }
            guard prepared == SQLITE_OK else { throw SQLiteError(connection: db, code: prepared, sql: sql) }
            let step = sqlite3_step(statement)
            guard step == SQLITE_ROW else {
                if step == SQLITE_DONE { return nil }
                throw SQLiteError(connection: db, code: step, sql: sql)
            }
            return (sqlite3_column_int64(statement, 0), sqlite3_column_text(statement, 0).map { String(cString: $0) })
        }
        let version = try scalar("PRAGMA user_version")?.0 ?? 0
        let table = try scalar("SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1")?.1
        return (version, table)
    }

    /// Runs `body` with a shorter busy timeout, for work that should give up rather than wait
    /// (a checkpoint while a reader holds the WAL).
    func withBusyTimeout<T>(milliseconds: Int32, _ body: () throws -> T) rethrows -> T {
        busyWait.timeoutMilliseconds = Int64(milliseconds)
        defer { busyWait.timeoutMilliseconds = Int64(busyTimeoutMilliseconds) }
        return try body()
    }

    /// Runs one or more SQL statements that return no rows of interest.
    ///
    /// - Throws: ``SQLiteError`` carrying the SQL.
    func execute(_ sql: String) throws(SQLiteError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_free(errorMessage)
            throw SQLiteError(extendedResultCode: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    /// A statement compiled once for this connection and reused on every later call with the same SQL.
    func cachedStatement(_ sql: String) throws(SQLiteError) -> Statement {
        if let statement = statementCache[sql] {
            return statement
        }
        let statement = try Statement(connection: self, sql: sql, persistent: true)
        statementCache[sql] = statement
        return statement
    }

    /// A statement for one-off use.
    func makeStatement(_ sql: String) throws(SQLiteError) -> Statement {
        try Statement(connection: self, sql: sql, persistent: false)
    }

    /// The first column of the first row of `sql`, as text.
    func scalarText(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> String? {
        let statement = try makeStatement(sql)
        try statement.bind(bindings)
        guard try statement.step() else { return nil }
        return statement.text(at: 0)
    }

    /// The first column of the first row of `sql`, as an integer.
    func scalarInt(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> Int64? {
        let statement = try makeStatement(sql)
        try statement.bind(bindings)
        guard try statement.step() else { return nil }
        return statement.isNull(at: 0) ? nil : statement.int(at: 0)
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// The rowid of the last successful INSERT.
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction: committed when `body` returns, rolled back
    /// when it throws (or when the commit fails), so a transaction can never be left open.
    ///
    /// - Throws: What `body` throws, or ``SQLiteError`` from BEGIN/COMMIT (e.g. `SQLITE_FULL`).
    func transaction<T>(_ body: () throws -> T) throws -> T {
        // BEGIN and COMMIT are prepared once: a poll is a short transaction, run very often.
        try cachedStatement("BEGIN IMMEDIATE").run([])
        do {
            let result = try body()
            try cachedStatement("COMMIT").run([])
            return result
        } catch {
            if sqlite3_get_autocommit(handle) == 0 {
                try? execute("ROLLBACK")
            }
            throw error
        }
    }
}

/// How a connection waits for a lock held by another connection: SQLite's busy handler, which
/// retries for up to the busy timeout (sleeping 1 ms growing to 25 ms between tries), and gives
/// up at once after a deadline set from any thread (``giveUp(after:)``): a daemon that is
/// stopping must not wait 30 s for a `sqlite3` shell's write lock.
///
/// `@unchecked Sendable`: ``deadline`` is atomic; the other fields are used only by the
/// connection's owner, on its thread (the busy handler runs inside that thread's SQLite call).
final class BusyWait: @unchecked Sendable {
    /// `DispatchTime` uptime in nanoseconds after which every wait gives up; `UInt64.max`: never.
    private let deadline = Atomic<UInt64>(UInt64.max)
    /// The longest wait for one lock, in milliseconds (connection thread only).
    var timeoutMilliseconds: Int64
    /// When the current wait began (connection thread only).
    private var started: UInt64 = 0

    init(timeoutMilliseconds: Int64) {
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// From now on, lock waits end at most `duration` from now (also a wait in progress).
    func giveUp(after duration: Duration) {
        let nanoseconds = UInt64(max(0, duration.milliseconds)) * 1_000_000
        let at = DispatchTime.now().uptimeNanoseconds &+ nanoseconds
        deadline.store(at, ordering: .relaxed)
    }

    /// True to try the lock again (after a short sleep), false to fail with `SQLITE_BUSY`.
    fileprivate func retry(attempt: Int32) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        if attempt == 0 { started = now }
        let limit = min(deadline.load(ordering: .relaxed), started &+ UInt64(max(0, timeoutMilliseconds)) * 1_000_000)
        guard now < limit else { return false }
        let delays: [UInt64] = [1, 2, 5, 10, 15, 20, 25]
        let delay = min(delays[Int(min(max(attempt, 0), 6))] * 1_000_000, limit - now)
        usleep(UInt32(delay / 1000))
        return true
    }
}

/// SQLite's busy handler: asks the connection's ``BusyWait``.
private let busyHandler: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32 = { context, attempt in
    guard let context else { return 0 }
    return Unmanaged<BusyWait>.fromOpaque(context).takeUnretainedValue().retry(attempt: attempt) ? 1 : 0
}
