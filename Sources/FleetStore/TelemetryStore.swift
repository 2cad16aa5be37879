import FleetModel

/// The telemetry database: the only owner of SQLite in fleet-telemetry.
///
/// FleetStore is the one module that talks to SQLite: its `Connection`, `Statement` and SQL are
/// internal, and every other module (the daemon, the commands, the benchmarks) reads and writes
/// through the methods of this actor, in the domain's words (VIN, sample, event, poll). What it
/// must never do: hand out its connection, a statement or a row cursor; let SQL be written outside
/// it; leave a transaction open across an `await`; or run SQLite on a thread of Swift's cooperative
/// pool. Its jobs run on a ``DatabaseExecutor`` of its own, a dedicated thread, because SQLite
/// blocks the thread it runs on (a busy wait for another process's write lock lasts up to 30 s).
/// The initializers and the static methods open the file on the caller's thread.
///
/// Every poll is written atomically: its samples (history), the `latest` values, the change
/// events, the `polls` row and the raw response, in a transaction of its own or, through
/// ``recordGrouped(_:detector:)``, in a savepoint of a transaction shared with the polls that
/// arrive together. Either all of a poll is stored or none of it, so a killed process or a full
/// disk never leaves half a poll behind and never loses rows already committed.
public actor TelemetryStore {
    /// The store's connection; used on its executor only.
    let connection: Connection
    /// The connection's lock waits, bounded from outside at shutdown (``giveUpLockWaits(after:)``).
    private let busyWait: BusyWait
    /// The thread this store's jobs, and so all its SQLite calls, run on; stopped in `deinit`.
    private let executor: DatabaseExecutor
    /// Polls waiting for the group commit being gathered (see ``recordGrouped(_:detector:)``).
    private var queued: [(write: PollWrite, continuation: CheckedContinuation<PollWriteResult, any Error>)] = []
    /// True while a poll gathers a group commit.
    private var groupOpen = false
    /// Multi-row statements by kind and row count, so that their SQL is built once.
    private var rowWrites: [RowWriteKey: Statement] = [:]
    /// The `latest` rows of recently written vehicles, as committed (see ``LatestCache``).
    var latestCache: LatestCache
    /// `database.repeat_heartbeat` in ms: how often a value that keeps repeating is stored again
    /// (0 stores every repeat). Read from `settings` (`repeat_heartbeat_seconds`) at open.
    var repeatHeartbeatMilliseconds: Int64 = 3_600_000
    /// The raw archive's compression and dictionaries (``RawArchive``).
    let rawArchive = RawArchive()
    /// The sinks every newly stored event is queued for (``setOutboxSinks(_:)``).
    var outboxSinks: [OutboxSink] = []
    struct RowWriteKey: Hashable {
        var write: RowWrite
        var rows: Int
    }

    /// How many vehicles' `latest` rows a store keeps in memory unless told otherwise: 1,024
    /// (about 5 MB with 25 series per vehicle).
    public static let defaultLatestCacheVehicles = 1_024

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// - Parameters:
    ///   - path: The database file.
    ///   - latestCacheVehicles: How many vehicles' `latest` rows are kept in memory between polls
    ///     (about 5 KB for a vehicle of 25 series), so that a poll is compared with its vehicle's stored
    ///     values without reading them back; 0 reads them from SQLite at every poll.
    /// - Throws: ``SQLiteError`` when the file cannot be opened or migrated;
    ///   ``StoreError/newerSchema(found:supported:path:)`` for a database of a newer release.
    public init(path: String, latestCacheVehicles: Int = TelemetryStore.defaultLatestCacheVehicles) throws {
        // A database of another program is refused before anything (even the WAL switch) touches it.
        if let found = try Connection.inspect(path: path), found.userVersion == 0, let table = found.someTable {
            throw StoreError.foreignDatabase(path: path, table: table)
        }
        let connection = try Connection(path: path)
        try Schema.migrate(connection)
        self.connection = connection
        repeatHeartbeatMilliseconds = try Self.repeatHeartbeat(connection)
        busyWait = connection.busyWait
        latestCache = LatestCache(capacity: latestCacheVehicles)
        // Started last: a store that fails to open leaves no thread behind.
        executor = DatabaseExecutor(name: Self.threadName)
    }

    /// Opens an existing fleet-telemetry database for the query commands: an empty file, or one
    /// without the fleet-telemetry schema, is refused instead of being given one. `readOnly`
    /// opens it without write access (a reader who may not write the file); its schema must be
    /// this build's then, and every write fails with `SQLITE_READONLY`.
    ///
    /// - Throws: ``StoreError/notAFleetDatabase(path:)``, ``StoreError/foreignDatabase(path:table:)``,
    ///   ``StoreError/newerSchema(found:supported:path:)``,
    ///   ``StoreError/olderSchemaReadOnly(found:supported:path:)`` or ``SQLiteError``.
    public init(existingPath path: String, readOnly: Bool = false) throws {
        // Checked without changing the file: no WAL switch, no schema, for a file that is not ours.
        let found = try Connection.inspect(path: path)
        guard let found, found.userVersion > 0 else {
            if let table = found?.someTable { throw StoreError.foreignDatabase(path: path, table: table) }
            throw StoreError.notAFleetDatabase(path: path)
        }
        let connection = try Connection(path: path, readOnly: readOnly)
        if readOnly {
            if found.userVersion > Schema.currentVersion {
                throw StoreError.newerSchema(found: found.userVersion, supported: Schema.currentVersion, path: path)
            }
            if found.userVersion < Schema.currentVersion {
                throw StoreError.olderSchemaReadOnly(
                    found: found.userVersion, supported: Schema.currentVersion, path: path)
            }
        } else {
            try Schema.migrate(connection)
        }
        self.connection = connection
        repeatHeartbeatMilliseconds = try Self.repeatHeartbeat(connection)
        busyWait = connection.busyWait
        latestCache = LatestCache(capacity: Self.defaultLatestCacheVehicles)
        executor = DatabaseExecutor(name: Self.threadName)
    }

    deinit {
        executor.shutdown()
    }

    /// The `repeat_heartbeat_seconds` setting in ms (1 h unless set).
    private static func repeatHeartbeat(_ connection: Connection) throws -> Int64 {
        max(0, try connection.scalarInt("SELECT value FROM settings WHERE key = 'repeat_heartbeat_seconds'") ?? 3600)
            * 1000
    }

    /// Bounds every wait for another process's lock to end at most `duration` from now, also a
    /// wait in progress: the daemon calls it when it starts stopping, so that a `sqlite3` shell
    /// holding the write lock cannot hold the shutdown (a write that gives up fails with
    /// `SQLITE_BUSY` and loses nothing committed). Callable from any thread.
    public nonisolated func giveUpLockWaits(after duration: Duration) {
        busyWait.giveUp(after: duration)
    }

    /// The name of every store's executor thread (Linux keeps 15 characters of a thread name).
    static let threadName = "fleet-sqlite"

    /// The store's own serial executor (``DatabaseExecutor``): a dedicated thread per store, so
    /// that SQLite's work and its busy waits never block a thread of the cooperative pool.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.asUnownedSerialExecutor()
    }

    /// True when called on this store's executor thread (for the tests).
    func isOnExecutorThread() -> Bool {
        executor.isCurrentThread
    }

    /// Writes one poll and everything it produced, atomically.
    ///
    /// A sample is stored when no row exists yet for its VIN, property, instance and observation
    /// time; a sample whose time is not the vehicle's own (``ObservationTimeSource``) is stored
    /// only when its value differs from the latest one. `latest` moves forward only (an older
    /// observation never replaces a newer one). An event already stored (same VIN, type, instance
    /// and `occurred_at`) is not stored or returned again.
    ///
    /// - Parameters:
    ///   - poll: The request and its outcome.
    ///   - samples: The normalized samples of the response (all of `poll.vin`); empty for a failed poll.
    ///   - detector: Turns the change from the stored latest values into events.
    /// - Returns: How many sample rows were written and the events stored, with their ids.
    /// - Throws: ``SQLiteError``; the transaction is then rolled back and nothing of this poll is kept.
    @discardableResult
    public func record(
        _ poll: PollRecord, samples: [Sample], failures: [PropertyFailure] = [], detector: some ChangeDetecting
    ) throws -> PollWriteResult {
        try writeTransaction {
            try write(poll, samples: samples, failures: failures, detector: detector)
        }
    }

    /// Runs `body` in a transaction of the poll writes: the ``LatestCache`` is checked against
    /// commits of other connections first, and emptied when the transaction does not commit.
    private func writeTransaction<T>(_ body: () throws -> T) throws -> T {
        do {
            return try connection.transaction {
                let version = try connection.cachedStatement("PRAGMA data_version")
                try version.bind([])
                // Another connection committed (a `purge`, an import): the cached rows and the
                // archive's dictionaries may have changed under us.
                if try version.step(), latestCache.validate(dataVersion: version.int(at: 0)) {
                    rawArchive.invalidate()
                }
                version.reset()
                return try body()
            }
        } catch {
            latestCache.removeAll()
            rawArchive.invalidate()
            throw error
        }
    }

    /// Writes one poll like ``record(_:samples:failures:detector:)``, in a transaction shared with
    /// the other polls that reach the store at the same moment (group commit).
    ///
    /// The first poll to arrive yields once, so that polls already waiting for the store join
    /// it, then commits them all (with the first poll's `detector`); each has its own savepoint, so one failing write is rolled back
    /// alone. A poll that arrives alone is written alone, without delay. Returns once the
    /// transaction holding the poll has committed.
    ///
    /// - Throws: ``SQLiteError`` when this poll's write failed or the shared transaction could
    ///   not commit; nothing of the poll is kept then.
    public func recordGrouped(_ write: PollWrite, detector: some ChangeDetecting) async throws -> PollWriteResult {
        if groupOpen {
            // A transaction is being gathered: join it, and wait for its commit.
            return try await withCheckedThrowingContinuation { queued.append((write, $0)) }
        }
        groupOpen = true
        defer { groupOpen = false }
        // Let the polls already waiting to enter the store join this transaction.
        await Task.yield()
        let followers = queued
        queued.removeAll(keepingCapacity: true)
        let outcomes: [BatchOutcome]
        do {
            outcomes = try record(batch: [write] + followers.map(\.write), detector: detector)
        } catch {
            for follower in followers { follower.continuation.resume(throwing: error) }
            throw error
        }
        for (follower, outcome) in zip(followers, outcomes.dropFirst()) {
            switch outcome {
            case .written(let result): follower.continuation.resume(returning: result)
            case .failed(let error): follower.continuation.resume(throwing: error)
            case .duplicate: follower.continuation.resume(returning: PollWriteResult(samplesWritten: 0, events: []))
            }
        }
        switch outcomes[0] {
        case .written(let result): return result
        case .failed(let error): throw error
        case .duplicate: return PollWriteResult(samplesWritten: 0, events: [])
        }
    }

    /// Writes many polls (or imported documents) in one transaction: the group commit of
    /// `fleet-telemetry import`, where one commit per document would cost more than the document.
    ///
    /// Each entry is written as ``record(_:samples:failures:detector:)`` would, inside a savepoint
    /// of its own: an entry whose write fails is rolled back alone and reported in its place,
    /// the others are kept. An entry with a `messageID` imported before is skipped
    /// (``BatchOutcome/duplicate``). Events are stored exactly as by single writes.
    ///
    /// - Returns: One outcome per entry, in order.
    /// - Throws: ``SQLiteError`` when the transaction itself cannot begin or commit (`SQLITE_FULL`,
    ///   a read-only file); nothing of the batch is then kept.
    public func record(batch: [PollWrite], detector: some ChangeDetecting) throws -> [BatchOutcome] {
        try writeTransaction {
            let savepoint = try connection.cachedStatement("SAVEPOINT poll")
            let release = try connection.cachedStatement("RELEASE poll")
            let rollback = try connection.cachedStatement("ROLLBACK TO poll")
            return try batch.map { entry in
                try savepoint.run([])
                do {
                    if let messageID = entry.messageID,
                        !(try markImported(messageID: messageID, vin: entry.poll.vin, at: entry.poll.receivedAt))
                    {
                        try release.run([])
                        return .duplicate
                    }
                    let result = try write(
                        entry.poll, samples: entry.samples, failures: entry.failures, detector: detector)
                    try release.run([])
                    return .written(result)
                } catch let error as SQLiteError {
                    // After a full disk SQLite may have rolled the whole transaction back: then
                    // the batch fails as a whole, with the real cause.
                    guard connection.isInTransaction else { throw error }
                    // The savepoint may have held a new archive dictionary.
                    rawArchive.invalidate()
                    try rollback.run([])
                    try release.run([])
                    return .failed(error)
                }
            }
        }
    }

    private func write(
        _ poll: PollRecord, samples: [Sample], failures: [PropertyFailure], detector: some ChangeDetecting
    ) throws -> PollWriteResult {
        let vin = SQLiteValue.text(poll.vin.rawValue)
        let newest = samples.lazy.map(\.observedAt.millisecondsSince1970).max().map(SQLiteValue.integer) ?? .null
        let brand = poll.brand.map { SQLiteValue.text(Brand.canonical($0)) } ?? .null
        if poll.imported {
            try connection.cachedStatement(
                """
                INSERT INTO vehicles (vin, first_seen_at, brand, last_observed_at) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT (vin) DO UPDATE SET brand = coalesce(excluded.brand, vehicles.brand),
                    last_observed_at = coalesce(max(vehicles.last_observed_at, excluded.last_observed_at), vehicles.last_observed_at, excluded.last_observed_at)
                """
            ).run([vin, .integer(poll.receivedAt.millisecondsSince1970), brand, newest])
        } else {
            try connection.cachedStatement(
                """
                INSERT INTO vehicles (vin, first_seen_at, last_polled_at, last_http_status, last_error, brand, last_observed_at)
                VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6)
                ON CONFLICT (vin) DO UPDATE SET last_polled_at = excluded.last_polled_at,
                    last_http_status = excluded.last_http_status, last_error = excluded.last_error,
                    brand = coalesce(excluded.brand, vehicles.brand),
                    last_observed_at = coalesce(max(vehicles.last_observed_at, excluded.last_observed_at), vehicles.last_observed_at, excluded.last_observed_at)
                """
            ).run([
                vin, .integer(poll.requestedAt.millisecondsSince1970),
                poll.httpStatus.map { .integer(Int64($0)) } ?? .null, poll.error.map(SQLiteValue.text) ?? .null, brand,
                newest,
            ])
        }

        if let body = poll.rawBody {
            try rawArchive.archive(
                body, vin: poll.vin, receivedAt: poll.receivedAt.millisecondsSince1970, httpStatus: poll.httpStatus,
                success: poll.httpStatus.map { (200..<300).contains($0) } ?? false, connection: connection)
        }
        var written = 0
        var stored: [Event] = []
        // The vehicle's `latest` rows, taken out of the cache while the poll is written (so that
        // they are updated in place) and put back once it is: a poll that fails leaves none.
        let readsLatest = !(samples.isEmpty && failures.isEmpty)
        var (series, flagged) = readsLatest ? try takeLatestRows(vin: poll.vin) : (VehicleSeries(), false)
        let previous = series.values
        var flaggedNow = flagged
        if flagged {
            // Failure flags in `latest` tell what the newest response said: they are set again
            // below for the properties that failed this time.
            try connection.cachedStatement(
                """
                UPDATE series SET failure_reason = NULL, failed_at = NULL WHERE vin = ?1 AND failure_reason IS NOT NULL
                """
            ).run([vin])
            flaggedNow = false
        }
        let readsState = !samples.isEmpty || poll.privacyMode != nil
        var state = readsState ? try ruleState(vin: poll.vin) : [:]
        let stateBefore = state
        if !samples.isEmpty {
            let events = detector.events(
                previous: previous, observed: samples, detectedAt: poll.receivedAt, state: &state)
            written = try writeSamples(samples, state: &series, receivedAt: poll.receivedAt)
            stored = try insert(events, connection: connection)
            if stored.contains(where: {
                [.chargingStarted, .chargingCompleted, .chargingInterrupted, .chargingError].contains($0.type)
            }) {
                let level =
                    samples.first { $0.property == "charging.battery_level" }?.value.number
                    ?? previous[SeriesKey(vin: poll.vin, property: "charging.battery_level", instance: "")]?.value
                    .number
                try updateChargingSessions(
                    for: stored, levels: level.map { [poll.vin: $0] } ?? [:], connection: connection)
            }
        }
        if !failures.isEmpty {
            try write(failures, vin: poll.vin, receivedAt: poll.receivedAt)
            flaggedNow = true
        }
        if let privacy = poll.privacyMode {
            let events = detector.privacyEvents(vin: poll.vin, privacyMode: privacy, at: poll.receivedAt, state: &state)
            stored += try insert(events, connection: connection)
        }
        if state != stateBefore { try saveRuleState(state, replacing: stateBefore, vin: poll.vin, at: poll.receivedAt) }

        if !poll.imported {
            try connection.cachedStatement(
                """
                INSERT INTO poll_log (vehicle_id, requested_at, http_status, latency_ms, error, request_id,
                    samples_written, events_emitted, manual)
                VALUES ((SELECT id FROM vehicles WHERE vin = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                """
            ).run([
                vin, .integer(poll.requestedAt.millisecondsSince1970),
                poll.httpStatus.map { .integer(Int64($0)) } ?? .null,
                .integer(poll.latencyMilliseconds), poll.error.map(SQLiteValue.text) ?? .null,
                poll.requestID.map(Self.storedRequestID) ?? .null,
                .integer(Int64(written)), .integer(Int64(stored.count)), .integer(poll.manual ? 1 : 0),
            ])
        }
        // Last, once every statement of the poll succeeded: a poll that fails puts nothing back.
        if readsLatest {
            latestCache.store(
                LatestCache.Entry(values: series.values, rows: series.rows, flagged: flaggedNow), for: poll.vin)
        }
        return PollWriteResult(samplesWritten: written, events: stored)
    }

    /// A `request_id` as `poll_log` keeps it: 32 lowercase hex digits (the API's usual form) as
    /// their 16 bytes, which the `polls` view shows as the same digits; any other text as it is.
    static func storedRequestID(_ requestID: String) -> SQLiteValue {
        let digits = Array(requestID.utf8)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        guard digits.count == 32 else { return .text(requestID) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for pair in stride(from: 0, to: 32, by: 2) {
            guard let high = nibble(digits[pair]), let low = nibble(digits[pair + 1]) else { return .text(requestID) }
            bytes.append(high << 4 | low)
        }
        return .blob(bytes)
    }

    /// The prepared multi-row statement of `write` for `rows` rows (built once per connection).
    func rowWriteStatement(_ write: RowWrite, rows: Int) throws -> Statement {
        let key = RowWriteKey(write: write, rows: rows)
        if let cached = rowWrites[key] { return cached }
        let statement = try connection.cachedStatement(write.sql(rows: rows))
        rowWrites[key] = statement
        return statement
    }

    /// The rule state of `vin` (see ``ChangeDetecting``), by key.
    public func ruleState(vin: VIN) throws -> RuleState {
        let statement = try connection.cachedStatement("SELECT key, value FROM rule_state WHERE vin = ?1")
        try statement.bind([.text(vin.rawValue)])
        var state: RuleState = [:]
        while try statement.step() {
            state[RuleStateKey(rawValue: statement.text(at: 0) ?? "")] = statement.text(at: 1) ?? ""
        }
        return state
    }

    /// Writes the keys of `state` that differ from `old` and deletes those it no longer has.
    func saveRuleState(_ state: RuleState, replacing old: RuleState, vin: VIN, at now: Timestamp) throws {
        let upsert = try connection.cachedStatement(
            """
            INSERT INTO rule_state (vin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT (vin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
            """)
        let delete = try connection.cachedStatement("DELETE FROM rule_state WHERE vin = ?1 AND key = ?2")
        for (key, value) in state where old[key] != value {
            try upsert.run([
                .text(vin.rawValue), .text(key.rawValue), .text(value), .integer(now.millisecondsSince1970),
            ])
        }
        for key in old.keys where state[key] == nil {
            try delete.run([.text(vin.rawValue), .text(key.rawValue)])
        }
    }

    /// True when push message `messageID` was imported before.
    public func isImported(messageID: String, vin: VIN) throws -> Bool {
        let statement = try connection.cachedStatement(
            "SELECT 1 FROM imported_messages WHERE vin = ?2 AND message_id = ?1")
        try statement.bind([.text(messageID), .text(vin.rawValue)])
        defer { statement.reset() }
        return try statement.step()
    }

    /// Records that push message `messageID` was imported; `false` when it already was.
    public func markImported(messageID: String, vin: VIN, at now: Timestamp) throws -> Bool {
        try connection.cachedStatement(
            "INSERT OR IGNORE INTO imported_messages (vin, message_id, imported_at) VALUES (?2, ?1, ?3)"
        )
        .run([.text(messageID), .text(vin.rawValue), .integer(now.millisecondsSince1970)])
        return connection.changes == 1
    }

    /// Stores property failures: a row only when the reason differs from the series' last failure.
    private func write(_ failures: [PropertyFailure], vin: VIN, receivedAt: Timestamp) throws {
        let last = try connection.cachedStatement(
            """
            SELECT reason, observed_at, received_at FROM property_failures WHERE vin = ?1 AND property = ?2 AND instance = ?3
            ORDER BY observed_at DESC LIMIT 1
            """)
        let good = try connection.cachedStatement(
            """
            SELECT received_at FROM series INDEXED BY series_current
            WHERE vin = ?1 AND property = ?2 AND instance = ?3 AND current = 1
            """)
        let insert = try connection.cachedStatement(
            """
            INSERT OR IGNORE INTO property_failures (vin, property, instance, observed_at, reason, description, received_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """)
        let flag = try connection.cachedStatement(
            """
            UPDATE series INDEXED BY series_current SET failure_reason = ?4, failed_at = ?5
            WHERE vin = ?1 AND property = ?2 AND instance = ?3 AND current = 1
            """)
        for failure in failures {
            try flag.run([
                .text(vin.rawValue), .text(failure.property), .text(failure.instance), .text(failure.reason.rawValue),
                .integer(receivedAt.millisecondsSince1970),
            ])
            try last.bind([.text(vin.rawValue), .text(failure.property), .text(failure.instance)])
            let previous = try last.step() ? (last.text(at: 0), last.int(at: 2)) : nil
            last.reset()
            try good.bind([.text(vin.rawValue), .text(failure.property), .text(failure.instance)])
            let goodSince = try good.step() ? good.int(at: 0) : nil
            good.reset()
            // Same reason as the last failure, with no good value since: nothing new to record.
            if let previous, previous.0 == failure.reason.rawValue, (goodSince ?? .min) <= previous.1 { continue }
            try insert.run([
                .text(vin.rawValue), .text(failure.property), .text(failure.instance),
                .integer((failure.observedAt ?? receivedAt).millisecondsSince1970), .text(failure.reason.rawValue),
                failure.description.map(SQLiteValue.text) ?? .null, .integer(receivedAt.millisecondsSince1970),
            ])
        }
    }

    /// The stored failures of one series, oldest first.
    public func failures(vin: VIN, property: String, instance: String = "") throws -> [PropertyFailure] {
        let statement = try connection.cachedStatement(
            """
            SELECT observed_at, reason, description FROM property_failures
            WHERE vin = ?1 AND property = ?2 AND instance = ?3 ORDER BY observed_at, rowid
            """)
        try statement.bind([.text(vin.rawValue), .text(property), .text(instance)])
        var result: [PropertyFailure] = []
        while try statement.step() {
            result.append(
                PropertyFailure(
                    property: property, instance: instance,
                    reason: PropertyFailure.Reason(rawValue: statement.text(at: 1) ?? ""),
                    description: statement.text(at: 2),
                    observedAt: Timestamp(millisecondsSince1970: statement.int(at: 0))))
        }
        return result
    }

    /// Runs `body` with the connection (for extensions of the store in other files).
    func withConnection<T>(_ body: (Connection) throws -> T) rethrows -> T {
        try body(connection)
    }

    /// Stores events not stored yet; returns those newly stored, with their ids.
    ///
    /// An id is never given twice: when the newest events were deleted (`purge`, retention), the
    /// next one is numbered after the largest id ever deleted (`event_id_high_water`, kept by a
    /// trigger), not after the largest left.
    func insert(_ events: [Event], connection: Connection) throws -> [Event] {
        guard !events.isEmpty else { return [] }
        let statement = try connection.cachedStatement(
            """
            INSERT OR IGNORE INTO events (id, vin, type, instance, occurred_at, detected_at, previous_value, new_value)
            VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """)
        let newest = try connection.cachedStatement(
            """
            SELECT coalesce((SELECT max(id) FROM events), 0),
                coalesce((SELECT value FROM settings WHERE key = 'event_id_high_water'), 0)
            """)
        try newest.bind([])
        var nextID: Int64? = nil
        if try newest.step(), newest.int(at: 1) >= newest.int(at: 0) { nextID = newest.int(at: 1) + 1 }
        newest.reset()
        var stored: [Event] = []
        for var event in events {
            try statement.run([
                .text(event.vin.rawValue), .text(event.type.rawValue), .text(event.instance),
                .integer(event.occurredAt.millisecondsSince1970), .integer(event.detectedAt.millisecondsSince1970),
                event.previousValue.map(SQLiteValue.text) ?? .null, .text(event.newValue),
                nextID.map(SQLiteValue.integer) ?? .null,
            ])
            if connection.changes == 1 {
                event.id = connection.lastInsertRowID
                stored.append(event)
                nextID = nil
            }
        }
        // Queued in the same transaction: a committed event is never lost to a sink, an event
        // rolled back is never sent.
        try enqueue(stored, connection: connection)
        return stored
    }

    /// The newest stored value of every series of `vin`.
    public func latestValues(vin: VIN) throws -> [SeriesKey: LatestValue] {
        try latestRows(vin: vin).series.values
    }

    /// ``latestRows(vin:)``, taken out of the ``LatestCache`` when it holds `vin`, else read.
    private func takeLatestRows(vin: VIN) throws -> (series: VehicleSeries, flagged: Bool) {
        if let entry = latestCache.take(vin) {
            return (VehicleSeries(values: entry.values, rows: entry.rows), entry.flagged)
        }
        return try latestRows(vin: vin)
    }

    /// The stored history of one series, oldest first.
    public func samples(vin: VIN, property: String, instance: String = "") throws -> [Sample] {
        let statement = try connection.cachedStatement(
            """
            SELECT observed_at, value_num, value_text, unit FROM samples
            WHERE vin = ?1 AND property = ?2 AND instance = ?3 ORDER BY observed_at
            """)
        try statement.bind([.text(vin.rawValue), .text(property), .text(instance)])
        var result: [Sample] = []
        while try statement.step() {
            result.append(
                Sample(
                    vin: vin, property: property, instance: instance,
                    value: Self.value(statement, numberColumn: 1, textColumn: 2), unit: statement.text(at: 3),
                    observedAt: Timestamp(millisecondsSince1970: statement.int(at: 0))))
        }
        return result
    }

    /// Stored events, oldest first (by id).
    public func events(vin: VIN? = nil) throws -> [Event] {
        let statement = try connection.cachedStatement(
            """
            SELECT id, vin, type, instance, occurred_at, detected_at, previous_value, new_value FROM events
            WHERE ?1 IS NULL OR vin = ?1 ORDER BY id
            """)
        try statement.bind([vin.map { .text($0.rawValue) } ?? .null])
        var result: [Event] = []
        while try statement.step() {
            if let event = Self.event(statement) { result.append(event) }
        }
        return result
    }

    /// The event of the current row of a statement that selects `id, vin, type, instance,
    /// occurred_at, detected_at, previous_value, new_value`; `nil` for a row this release cannot read.
    static func event(_ statement: Statement) -> Event? {
        guard let vin = statement.text(at: 1).flatMap(VIN.init),
            let type = statement.text(at: 2).flatMap(EventType.init)
        else { return nil }
        return Event(
            id: statement.int(at: 0), vin: vin, type: type, instance: statement.text(at: 3) ?? "",
            occurredAt: Timestamp(millisecondsSince1970: statement.int(at: 4)),
            detectedAt: Timestamp(millisecondsSince1970: statement.int(at: 5)),
            previousValue: statement.text(at: 6), newValue: statement.text(at: 7) ?? "")
    }

    /// Row counts and poll outcomes since `since` (UTC; polls by `requested_at`, samples by
    /// `received_at`, events by `detected_at`), for the summary printed on exit.
    public func summary(since: Timestamp = Timestamp(millisecondsSince1970: 0)) throws -> StoreSummary {
        let t = SQLiteValue.integer(since.millisecondsSince1970)
        var summary = StoreSummary()
        summary.vehicles = Int(
            try connection.scalarInt("SELECT count(*) FROM vehicles WHERE last_polled_at >= ?1", [t]) ?? 0)
        summary.samples = Int(
            try connection.scalarInt("SELECT count(*) FROM samples WHERE received_at >= ?1", [t]) ?? 0)
        summary.vehiclesWithSamples = Int(
            try connection.scalarInt("SELECT count(DISTINCT vin) FROM samples WHERE received_at >= ?1", [t]) ?? 0)
        let polls = try connection.makeStatement(
            "SELECT http_status, count(*) FROM poll_log WHERE requested_at >= ?1 GROUP BY http_status ORDER BY http_status"
        )
        try polls.bind([t])
        while try polls.step() {
            summary.pollsByStatus[polls.isNull(at: 0) ? nil : Int(polls.int(at: 0)), default: 0] += Int(
                polls.int(at: 1))
        }
        let events = try connection.makeStatement(
            "SELECT type, count(*) FROM events WHERE detected_at >= ?1 GROUP BY type ORDER BY type")
        try events.bind([t])
        while try events.step() {
            summary.eventsByType[events.text(at: 0) ?? "", default: 0] += Int(events.int(at: 1))
        }
        return summary
    }

}

/// One request for vehicle data and its outcome: a row of the `polls` table.
public struct PollRecord: Sendable, Hashable {
    public var vin: VIN
    /// When the request was sent, UTC.
    public var requestedAt: Timestamp
    /// When the response (or the failure) arrived, UTC; the `detected_at` of its events.
    public var receivedAt: Timestamp
    /// The HTTP status, or `nil` when no response came (timeout, connection refused).
    public var httpStatus: Int?
    /// Time from request to response, in milliseconds.
    public var latencyMilliseconds: Int64
    /// What went wrong, as one readable line; `nil` for a good poll.
    public var error: String?
    /// The API's `request_id`, when known.
    public var requestID: String?
    /// The vehicle-data `brand` (any form; stored canonical), when the response named one.
    public var brand: String?
    /// True for data read from a file by `fleet-telemetry import`: no request was made, so no
    /// `polls` row is written.
    public var imported = false
    /// True for a poll made by hand (`fleet-telemetry poll --store`), outside the schedule.
    public var manual = false
    /// Whether the response says the vehicle is in privacy mode (a 403 `privacy_mode_active`, or
    /// properties failed for it), `false` for a response with data, `nil` when it tells nothing.
    /// A change stores `privacy_mode_entered` or `privacy_mode_left` with the poll.
    public var privacyMode: Bool?
    /// The response body as received, kept in `raw_responses` (the `archive.raw_days` archive
    /// that `fleet-telemetry reprocess` reads); `nil` archives nothing.
    public var rawBody: [UInt8]?

    public init(
        vin: VIN, requestedAt: Timestamp, receivedAt: Timestamp, httpStatus: Int?, latencyMilliseconds: Int64,
        error: String? = nil, requestID: String? = nil, brand: String? = nil
    ) {
        self.brand = brand
        self.vin = vin
        self.requestedAt = requestedAt
        self.receivedAt = receivedAt
        self.httpStatus = httpStatus
        self.latencyMilliseconds = latencyMilliseconds
        self.error = error
        self.requestID = requestID
    }
}

/// One entry of ``TelemetryStore/record(batch:detector:)``: a poll or an imported document.
public struct PollWrite: Sendable {
    /// The request and its outcome (`imported` for a document read from a file).
    public var poll: PollRecord
    /// Normalized samples, all of `poll.vin`.
    public var samples: [Sample]
    /// Properties the response reported as failed or that could not be read.
    public var failures: [PropertyFailure]
    /// The push message's `message_id`: the entry is stored at most once per VIN and id.
    public var messageID: String?

    public init(poll: PollRecord, samples: [Sample], failures: [PropertyFailure] = [], messageID: String? = nil) {
        self.poll = poll
        self.samples = samples
        self.failures = failures
        self.messageID = messageID
    }
}

/// What happened to one entry of a batch write.
public enum BatchOutcome: Sendable {
    case written(PollWriteResult)
    /// Its `message_id` was imported before; nothing written.
    case duplicate
    /// Its write failed and was rolled back alone.
    case failed(SQLiteError)
}

/// What ``TelemetryStore/record(_:samples:failures:detector:)`` wrote.
public struct PollWriteResult: Sendable, Hashable {
    /// New rows in `samples`.
    public var samplesWritten: Int
    /// Events newly stored, with their ids, in detection order.
    public var events: [Event]
}

/// Counts over the whole database.
public struct StoreSummary: Sendable, Hashable {
    /// Vehicles polled since the start of the summary.
    public var vehicles = 0
    /// Vehicles with at least one new sample row.
    public var vehiclesWithSamples = 0
    /// New rows in `samples`.
    public var samples = 0
    /// Polls by HTTP status; `nil` for polls that got no response.
    public var pollsByStatus: [Int?: Int] = [:]
    /// Events by `type`.
    public var eventsByType: [String: Int] = [:]
    public init() {}

    /// A few human-readable lines: vehicles, polls by HTTP status, samples, events by type.
    public var text: String {
        let polls = pollsByStatus.sorted { ($0.key ?? 0) < ($1.key ?? 0) }
            .map { "\($0.key.map(String.init) ?? "no response"): \($0.value)" }.joined(separator: ", ")
        let total = pollsByStatus.values.reduce(0, +)
        let eventTotal = eventsByType.values.reduce(0, +)
        let events = eventsByType.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        return """
            vehicles: \(vehicles) polled, \(vehiclesWithSamples) with new samples
            polls:    \(total)\(polls.isEmpty ? "" : " (\(polls))")
            samples:  \(samples)
            events:   \(eventTotal)\(events.isEmpty ? "" : " (\(events))")
            """
    }
}
