import ArgumentParser
import FleetConfiguration
import FleetDaemon
import FleetEvents
import FleetIngestion
import Logging
import FleetModel
import FleetStore
import Foundation
import UnixSignals

/// `--config`/`--database` of the commands that read or change the database.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The config file (for database.path).")
    var config: String = "/etc/fleet-telemetry/config.yaml"

    @Option(name: .long, help: "The SQLite database file (overrides database.path).")
    var database: String?

    /// The config file's settings: when `--database` is not given, or the file exists; `nil` for
    /// `--database` without a config file. Exits 78 for a bad config.
    func loadConfiguration() throws -> DaemonConfiguration? {
        guard database == nil || FileManager.default.fileExists(atPath: config) else { return nil }
        if database == nil && !FileManager.default.fileExists(atPath: config) {
            printError(
                "fleet-telemetry: no config file at \(config) (for database.path): give --config PATH, or --database PATH"
            )
            throw ExitStatus.config
        }
        do {
            return try ConfigLoader.load(path: config)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.config
        }
    }

    /// Opens the store: exits 78 for a bad config, 74 for a database that cannot be opened.
    func openStore() throws -> TelemetryStore {
        try openStore(configuration: database == nil ? loadConfiguration() : nil)
    }

    /// Opens the store at `--database`, else at `database.path` of `configuration` (a config
    /// read already); exits 74 for a database that is missing, unreadable or not ours, naming
    /// the path and the cause.
    func openStore(configuration: DaemonConfiguration?) throws -> TelemetryStore {
        guard let path = database ?? configuration?.databasePath else {
            printError("fleet-telemetry: give --database PATH or --config with database.path")
            throw ExitStatus.ioError
        }
        var status = stat()
        if stat(path, &status) != 0 && errno == ENOENT {
            let source = database == nil ? "database.path in \(config)" : "--database"
            printError("fleet-telemetry: no database at \(path) (\(source)); the daemon creates it on its first start")
            throw ExitStatus.ioError
        }
        guard access(path, R_OK) == 0, status.st_mode & S_IFMT != S_IFDIR else {
            printError("fleet-telemetry: cannot read the database \(path): \(FileProblem.describe(path))")
            throw ExitStatus.ioError
        }
        do {
            // A reader who may not write the file (a member of the database's group) reads it
            // read-only; a write it tries (`purge`) then fails as read-only.
            return try TelemetryStore(existingPath: path, readOnly: access(path, W_OK) != 0)
        } catch {
            printError("fleet-telemetry: cannot open the database \(path): \(DatabaseOptions.describe(error, path))")
            throw ExitStatus.ioError
        }
    }

    /// Opens the store and runs `body` on it; a database error ends the command with one line
    /// naming the database and exit 74 (`EX_IOERR`).
    func withStore<T>(
        configuration: DaemonConfiguration? = nil, store: TelemetryStore? = nil,
        _ body: (TelemetryStore) async throws -> T
    ) async throws -> T {
        let store = try store ?? configuration.map(openStore(configuration:)) ?? openStore()
        do {
            return try await body(store)
        } catch let error as SQLiteError {
            let path = database ?? configuration?.databasePath ?? "the database"
            printError("fleet-telemetry: \(path): \(DatabaseOptions.describe(error, path))")
            throw ExitStatus.ioError
        }
    }

    /// A database error as a sentence; a read-only database says whose it is.
    static func describe(_ error: any Error, _ path: String) -> String {
        guard let sqlite = error as? SQLiteError else { return "\(error)" }
        if sqlite.code == .readonly || sqlite.code == .perm || (sqlite.code == .cantopen && access(path, W_OK) != 0) {
            let found = FileProblem.ownership(of: path)
            let owner = found?.owner ?? "its owner"
            return "the database is read-only for this user (permission denied; owner \(owner), mode "
                + "\(found?.mode ?? "?")): run the command as \(owner == "root" ? "root" : owner + " or root")"
        }
        if sqlite.isLocked {
            return "the database stayed locked by another process (a long write in a sqlite3 shell?); try again"
        }
        if sqlite.isFull { return "the disk is full or database.max_size_mb is reached" }
        return sqlite.message
    }
}

/// `--json`/`--csv` of the commands that print rows. One style for all: a table has one header
/// line of the column names in capitals (`OBSERVED_AT`), `-` for an empty cell and numbers with
/// at most 6 decimals; `--json` prints one JSON object per line (JSON lines) with the same keys
/// in the same order and `null` for an empty cell; `--csv` prints a header line of the keys, an
/// empty field for an empty cell and numbers in full.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON lines (one object per row) instead of a table.")
    var json = false

    @Flag(name: .long, help: "Print CSV (with a header line) instead of a table.")
    var csv = false

    func validate() throws {
        if json && csv { throw ValidationError("give --json or --csv, not both") }
    }

    /// Prints rows in the chosen format; `keys` name the columns.
    func output(_ keys: [String], _ rows: [[JSONValue]]) {
        if json {
            for row in rows { printJSON(.object(JSONObject(members: zip(keys, row).map { (key: $0, value: $1) }))) }
        } else if csv {
            var text = keys.joined(separator: ",") + "\n"
            for row in rows { text += row.map(Self.csvCell).joined(separator: ",") + "\n" }
            writeStandardOutput(text)
        } else {
            printTable(keys.map { $0.uppercased() }, rows.map { $0.map(Self.text) })
        }
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: return "-"
        case .string(let s): return s.isEmpty ? "-" : s
        case .number(let n): return tableNumber(n)
        case .bool(let b): return b ? "yes" : "no"
        default: return "?"
        }
    }

    static func csvCell(_ value: JSONValue) -> String {
        var text: String
        switch value {
        case .null: text = ""
        case .string(let s): text = s
        case .number(let n): text = SampleValue.number(n).description
        default: text = Self.text(value)
        }
        // Control characters (an escape sequence) are shown, not obeyed; --json keeps them exactly.
        if text.unicodeScalars.contains(where: {
            ($0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t") || $0.value == 0x7F
        }) {
            text = String(
                String.UnicodeScalarView(
                    text.unicodeScalars.map {
                        ($0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t") || $0.value == 0x7F
                            ? "\u{FFFD}" : $0
                    }))
        }
        return text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}

/// A number for a table: whole numbers as they are, others rounded to at most 6 decimals
/// (coordinates to about 10 cm) without trailing zeros.
func tableNumber(_ value: Double) -> String {
    guard value.isFinite, value != value.rounded() else { return SampleValue.number(value).description }
    var text = String(format: "%.6f", value)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
    return text
}

/// "1 event", "2 events".
func counted(_ count: Int, _ noun: String, plural: String? = nil) -> String {
    "\(count) \(count == 1 ? noun : plural ?? noun + "s")"
}

/// Parses `--since`/`--until`: RFC 3339 (`2026-11-28T06:00:00Z`) or a duration ago (`24h`).
func parseTime(_ text: String?, option: String) throws -> Timestamp? {
    guard let text else { return nil }
    if let time = Timestamp(iso8601: text) { return time }
    if let ago = DurationParser.parse(text) { return SystemWallClock().now().adding(milliseconds: -ago.milliseconds) }
    throw ValidationError(
        "\(option) takes an RFC 3339 time (2026-11-28T06:00:00Z) or a duration ago (24h), got \"\(text)\"")
}

extension Event {
    /// The event as a JSON object with the keys and order of ``jsonLine``.
    var json: JSONValue {
        .object(
            JSONObject(
                members: zip(
                    EventsListCommand.lineKeys,
                    [
                        id.map { .number(Double($0)) } ?? .null, .string(vin.rawValue), .string(type.rawValue),
                        .string(instance), .string(occurredAt.iso8601), .string(detectedAt.iso8601),
                        string(previousValue), .string(newValue),
                    ] as [JSONValue]
                ).map { (key: $0, value: $1) }))
    }
}

func number(_ value: Double?) -> JSONValue { value.map(JSONValue.number) ?? .null }
func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

/// `fleet-telemetry status`: one line per vehicle.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "One line per vehicle: last seen, battery, range, locks, charging, position, stale values, health and why, last polled, next due."
    )
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions

    func run() async throws {
        let statuses = try await options.withStore { try await $0.status() }
        let rows = statuses.map { s -> [JSONValue] in
            // The scheduler's health; else the polling status (`not_cleared`, …), and a vehicle
            // that is `active` but was never polled by the daemon (imported data) says so.
            let health = s.health ?? (s.status == "active" && s.lastPolled == nil ? "never polled" : s.status)
            return [
                .string(s.vin.rawValue), string(s.lastSeen?.iso8601), number(s.batteryPercent), number(s.rangeKm),
                string(s.locks), string(s.charging), number(s.latitude), number(s.longitude),
                .number(Double(s.staleValues)), string(health), string(s.reason), string(s.lastPolled?.iso8601),
                string(s.nextDue?.iso8601),
            ]
        }
        format.output(
            [
                "vin", "last_seen", "battery_percent", "range_km", "locks", "charging", "latitude", "longitude",
                "stale_values", "health", "reason", "last_polled", "next_due",
            ], rows)
        if statuses.isEmpty && !format.json && !format.csv {
            printError(
                "no vehicles in the database yet (the daemon adds them as it polls; `import` adds captured data)")
        }
    }
}

/// `fleet-telemetry history VIN PROPERTY`.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "The stored history of one property of one vehicle.",
        discussion:
            "Exit 0 with the samples (a note on standard error when the range holds none), or 1 when the vehicle or the property is not in the database (with the properties it has, and the nearest name)."
    )
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions
    @Argument(help: "The VIN.") var vin: String
    @Argument(help: "The property path, e.g. charging.battery_level.") var property: String
    @Option(name: .long, help: "From this observation time (RFC 3339, or a duration ago such as 24h).")
    var since: String?
    @Option(name: .long, help: "Until this observation time (RFC 3339, or a duration ago).") var until: String?

    func validate() throws {
        _ = try parseVIN(vin)
        if let since = try parseTime(since, option: "--since"), let until = try parseTime(until, option: "--until"),
            since > until
        {
            throw ValidationError("--since (\(since.iso8601)) is after --until (\(until.iso8601))")
        }
    }

    func run() async throws {
        let vin = try parseVIN(vin)
        let (since, until) = (try parseTime(since, option: "--since"), try parseTime(until, option: "--until"))
        let (samples, presence) = try await options.withStore { store in
            let samples = try await store.history(vin: vin, property: property, since: since, until: until)
            return (samples, samples.isEmpty ? try await store.presence(vin: vin, property: property) : nil)
        }
        if let presence {
            if !presence.vehicleKnown {
                printError("fleet-telemetry: no vehicle \(vin) in the database (`status` lists the vehicles)")
                throw ExitStatus.failure
            }
            if presence.newest == nil {
                let nearest = presence.knownProperties.min { editDistance($0, property) < editDistance($1, property) }
                let hint = nearest.map { editDistance($0, property) <= 4 ? "; did you mean \($0)?" : "" } ?? ""
                printError(
                    "fleet-telemetry: no property \(property) stored for \(vin)\(hint) (stored: "
                        + "\(presence.knownProperties.prefix(40).joined(separator: ", "))"
                        + "\(presence.knownProperties.count > 40 ? ", …" : ""))")
                throw ExitStatus.failure
            }
        }
        format.output(
            ["observed_at", "instance", "value", "unit"],
            samples.map {
                [
                    .string($0.observedAt.iso8601), .string($0.instance),
                    $0.value.number.map(JSONValue.number) ?? .string($0.value.text ?? ""), string($0.unit),
                ]
            })
        if let newest = presence?.newest {
            let range = [since.map { "from \($0.iso8601)" }, until.map { "until \($0.iso8601)" }].compactMap { $0 }
            printError(
                "no samples of \(property) for \(vin) \(range.isEmpty ? "" : range.joined(separator: " ") + " ")"
                    + "(the newest is from \(newest.iso8601))")
        }
    }
}

/// `fleet-telemetry events`: the event list (the default), and the outbox's deliveries.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Stored change events, and their deliveries to the sinks (webhooks, MQTT).",
        subcommands: [EventsListCommand.self, DeliveriesCommand.self, RedeliverCommand.self],
        defaultSubcommand: EventsListCommand.self)
}

/// `fleet-telemetry events [list]`.
struct EventsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Stored change events: list them, resume after an id, or follow new ones.",
        discussion: """
            Without --after-id: the newest --limit events (default 1000) matching the filters, \
            oldest first by the vehicle's time; a note on standard error says when more matched. \
            With --after-id N: the events stored after id N, in the order they were stored (a \
            consumer resumes from the last id it handled). --follow keeps printing new events as \
            JSON lines (the daemon's format) until interrupted, from --after-id N, else from now. \
            --since is the detection time (what the daemon learned since then, late reports \
            included); --occurred-since is the vehicle's own time.
            """
    )
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions
    @Option(name: .long, help: "Only this VIN.") var vin: String?
    @Option(name: .long, help: "Only this event type (e.g. door_unlocked).") var type: String?
    @Option(
        name: .long,
        help: "Detected at or after this time (RFC 3339, or a duration ago such as 24h): late reports included.")
    var since: String?
    @Option(name: .long, help: "Occurred (vehicle time) at or after this time (RFC 3339, or a duration ago).")
    var occurredSince: String?
    @Option(
        name: .long, parsing: .unconditional,
        help: "Only events with a larger id, in stored order (resume from the last id seen).")
    var afterID: Int64?
    @Flag(name: .long, help: "Keep printing new events as JSON lines until interrupted.") var follow = false
    @Option(name: .long, help: "At most this many per listing (the newest; with --after-id the first).")
    var limit: Int = 1000

    static let lineKeys = [
        "id", "vin", "type", "instance", "occurred_at", "detected_at", "previous_value", "new_value",
    ]

    func validate() throws {
        if let vin { _ = try parseVIN(vin) }
        if let type, EventType(rawValue: type) == nil {
            throw ValidationError(
                "unknown event type \"\(type)\"; known: \(EventType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        _ = try parseTime(since, option: "--since")
        _ = try parseTime(occurredSince, option: "--occurred-since")
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
        if let afterID, afterID < 0 { throw ValidationError("--after-id must be 0 or more") }
        if follow && format.csv { throw ValidationError("--follow prints JSON lines; --csv does not apply") }
    }

    func query() throws -> TelemetryStore.EventQuery {
        TelemetryStore.EventQuery(
            vin: try vin.map(parseVIN), type: type.flatMap(EventType.init),
            detectedSince: try parseTime(since, option: "--since"),
            occurredSince: try parseTime(occurredSince, option: "--occurred-since"), afterID: afterID, limit: limit)
    }

    func run() async throws {
        if follow {
            try await followEvents()
            return
        }
        let (events, truncated) = try await options.withStore { try await $0.events(matching: query()) }
        if format.json {
            // The daemon's own JSON lines, byte for byte.
            writeStandardOutput(events.map { $0.jsonLine + "\n" }.joined())
        } else {
            format.output(
                Self.lineKeys,
                events.map {
                    [
                        .number(Double($0.id ?? 0)), .string($0.vin.rawValue), .string($0.type.rawValue),
                        .string($0.instance), .string($0.occurredAt.iso8601),
                        .string($0.detectedAt.iso8601), string($0.previousValue), .string($0.newValue),
                    ]
                })
        }
        if truncated {
            let next = events.last?.id.map { " (continue with --after-id \($0))" } ?? ""
            printError(
                afterID == nil
                    ? "showing the newest \(counted(events.count, "event")); more matched: raise --limit or narrow --since"
                    : "showing the first \(counted(events.count, "event")) after id \(afterID ?? 0); more follow\(next)"
            )
        }
    }

    /// Prints new events as JSON lines, every second, until SIGINT/SIGTERM or a closed output.
    func followEvents() async throws {
        var query = try query()
        let store = try options.openStore()
        if query.afterID == nil {
            let newest = try await options.withStore(configuration: nil, store: store) { try await $0.newestEventID() }
            query.afterID = newest ?? 0
        }
        query.limit = min(query.limit, 1000)
        let start = query
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return }
            }
            group.addTask {
                var query = start
                while !Task.isCancelled {
                    let (events, truncated) = try await options.withStore(configuration: nil, store: store) {
                        try await $0.events(matching: query)
                    }
                    if !events.isEmpty {
                        writeStandardOutput(events.map { $0.jsonLine + "\n" }.joined())
                        query.afterID = events.last?.id ?? query.afterID
                    }
                    if !truncated {
                        for _ in 0..<5 {
                            exitIfOutputClosed()
                            do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
                        }
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

/// `fleet-telemetry events deliveries`: the outbox, newest event first.
struct DeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries",
        abstract: "Each event's delivery per sink: pending, failed (to be retried), delivered or dead.",
        discussion: "Newest event first, at most --limit (default 1000; a note says when more matched).")
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions
    @Option(name: .long, help: "Only this sink: a webhook's name, or mqtt.") var sink: String?
    @Option(name: .long, help: "Only pending, failed, delivered or dead deliveries.") var status: String?
    @Option(name: .long, help: "At most this many.") var limit: Int = 1000

    func validate() throws {
        if let status, !["pending", "failed", "delivered", "dead"].contains(status) {
            throw ValidationError("--status is pending, failed, delivered or dead, got \"\(status)\"")
        }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let stored = status.flatMap { $0 == "failed" ? .pending : OutboxEntry.Status(rawValue: $0) }
        var entries = try await options.withStore {
            try await $0.deliveries(
                sink: sink, status: stored, limit: status == "failed" || status == "pending" ? Int.max : limit + 1)
        }
        if status == "failed" { entries = entries.filter { $0.lastError != nil } }
        if status == "pending" { entries = entries.filter { $0.lastError == nil } }
        let cut = entries.count > limit
        entries = Array(entries.prefix(limit))
        format.output(
            [
                "sink", "event_id", "vin", "type", "status", "attempts", "next_attempt_at", "last_attempt_at",
                "last_http_status", "last_error", "delivered_at",
            ],
            entries.map { entry in
                let status = entry.status == .pending && entry.lastError != nil ? "failed" : entry.status.rawValue
                return [
                    .string(entry.sink), number(entry.event.id.map(Double.init)), .string(entry.event.vin.rawValue),
                    .string(entry.event.type.rawValue), .string(status), .number(Double(entry.attempts)),
                    entry.status == .pending ? .string(entry.nextAttemptAt.iso8601) : .null,
                    string(entry.lastAttemptAt?.iso8601), number(entry.lastHTTPStatus.map(Double.init)),
                    string(entry.lastError), string(entry.deliveredAt?.iso8601),
                ]
            })
        if cut { printError("showing the newest \(counted(limit, "delivery", plural: "deliveries")); more matched") }
    }
}

/// `fleet-telemetry events redeliver`: queues deliveries again.
struct RedeliverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redeliver",
        abstract: "Send an event again (--id), or every dead delivery (--dead), to one sink or all.",
        discussion:
            "The deliveries become pending and due now; a running daemon sends them within a second. Exit 1 when nothing matched."
    )
    @OptionGroup var options: DatabaseOptions
    @Option(name: .long, help: "The event's id.") var id: Int64?
    @Flag(name: .long, help: "Every dead delivery.") var dead = false
    @Option(name: .long, help: "Only this sink: a webhook's name, or mqtt.") var sink: String?

    func validate() throws {
        guard (id == nil) != !dead else { throw ValidationError("give --id ID or --dead (one of them)") }
    }

    func run() async throws {
        let queued = try await options.withStore {
            try await $0.redeliver(eventID: id, sink: sink, now: SystemWallClock().now())
        }
        guard queued > 0 else {
            printError(
                "fleet-telemetry: no delivery matched\(id.map { " for event \($0)" } ?? " that is dead")"
                    + "\(sink.map { " on sink \($0)" } ?? "") (`events deliveries` lists them)")
            throw ExitStatus.failure
        }
        printError("queued \(counted(queued, "delivery", plural: "deliveries")) again")
    }
}

/// `fleet-telemetry backup DEST`.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a consistent copy of the live database (ingestion goes on); it gets the database's mode.")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "The file to write; it must not exist.") var destination: String

    func validate() throws {
        guard !destination.isEmpty else { throw ValidationError("give the backup's file name") }
    }

    func run() async throws {
        guard !FileManager.default.fileExists(atPath: destination) else {
            printError("fleet-telemetry: \(destination) exists; choose a new file")
            throw ExitStatus.ioError
        }
        let configuration = options.database == nil ? try options.loadConfiguration() : nil
        let store = try options.openStore(configuration: configuration)
        let source = options.database ?? configuration?.databasePath ?? ""
        var status = stat()
        let mode = stat(source, &status) == 0 ? status.st_mode & 0o777 : 0o600
        // Created empty with the database's mode first, so the copy is never readable by more users.
        let descriptor = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else {
            printError("fleet-telemetry: cannot create \(destination): \(String(cString: strerror(errno)))")
            throw ExitStatus.ioError
        }
        fchmod(descriptor, mode)  // the umask may have narrowed it; never widen beyond the source's
        close(descriptor)
        do {
            try await store.backup(to: destination)
        } catch {
            try? FileManager.default.removeItem(atPath: destination)
            printError("fleet-telemetry: backup failed: \(DatabaseOptions.describe(error, destination))")
            throw ExitStatus.ioError
        }
        printError("backup written to \(destination) (mode \(String(mode, radix: 8)))")
    }
}

/// `fleet-telemetry purge VIN`.
struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge", abstract: "Remove every row of one vehicle from the database.",
        discussion:
            "Asks for confirmation on a terminal; elsewhere (a script) it needs --yes and exits 64 without it."
    )
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "The VIN.") var vin: String
    @Flag(name: .long, help: "Do not ask for confirmation.") var yes = false

    func validate() throws { _ = try parseVIN(vin) }

    func run() async throws {
        let vin = try parseVIN(vin)
        let store = try options.openStore()
        if !yes {
            guard isatty(STDIN_FILENO) == 1 else {
                printError("fleet-telemetry: purge removes every row of \(vin); run it with --yes to confirm")
                throw ExitCode(64)
            }
            printError("Remove every sample, event and poll of \(vin) from the database? Type the VIN to confirm: ")
            guard readLine()?.trimmingCharacters(in: .whitespaces).uppercased() == vin.rawValue else {
                printError("not confirmed; nothing removed")
                throw ExitStatus.failure
            }
        }
        let deleted = try await options.withStore { _ in try await store.purge(vin: vin) }
        guard deleted > 0 else {
            printError(
                "fleet-telemetry: no rows of \(vin) in the database (`status` lists the vehicles); nothing removed")
            throw ExitStatus.failure
        }
        printError("removed \(counted(deleted, "row")) of \(vin)")
    }
}

/// `fleet-telemetry reprocess [--since]`: samples rebuilt from the raw-response archive.
struct ReprocessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reprocess",
        abstract: "Rebuild samples from the raw-response archive (after an upgrade of the normalizer).",
        discussion: """
            Every response kept in raw_responses (archive.raw_days, default 7) received at or \
            after --since is normalized again; the sample rows it had produced are replaced, one \
            vehicle per transaction. Rows from imports and from responses older than the archive \
            are kept. The event rules without memory (transitions such as door_unlocked, and \
            geofences) of the config file run again over the responses: events not stored yet \
            are added, none is removed. Without a config file (--database alone), no event is \
            added. Safe while the daemon runs.
            """
    )
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions
    @Option(
        name: .long,
        help: "From this receive time (RFC 3339, or a duration ago such as 24h); default: the whole archive.")
    var since: String?

    func validate() throws { _ = try parseTime(since, option: "--since") }

    func run() async throws {
        // Without a config file the operator's rules are unknown: no event is added then.
        let configuration = try options.loadConfiguration()
        let store = try options.openStore(configuration: configuration)
        var logger = Logger(label: "fleet-telemetry")
        logger.logLevel = .error
        let ingestion = Daemon.ingestion(
            events: configuration?.events ?? EventRulesConfiguration(), archiveRawDays: 0, store: store,
            sink: DiscardingEventSink(), logger: logger)
        let reprocessor = Reprocessor(ingestion: ingestion, detectsEvents: configuration != nil)
        let requested = try parseTime(since, option: "--since")
        let summary: Reprocessor.Summary
        do {
            summary = try await reprocessor.run(since: requested)
        } catch {
            let path = options.database ?? configuration?.databasePath ?? "the database"
            printError(
                "fleet-telemetry: reprocess stopped: \(DatabaseOptions.describe(error, path)) "
                    + "(vehicles already done are kept)")
            throw ExitStatus.ioError
        }
        for problem in summary.skipped {
            printError("note: left as it was: \(problem)")
        }
        guard let start = summary.since else {
            printError(
                "the raw-response archive is empty (archive.raw_days is 0, or nothing was polled yet): nothing to reprocess"
            )
            return
        }
        if let requested, requested < start {
            printError("note: the archive starts at \(start.iso8601); earlier samples are kept as they are")
        }
        let line =
            "reprocessed \(summary.responses) responses of \(summary.vehicles) vehicles since \(start.iso8601): "
            + "\(summary.samplesDeleted) sample rows replaced by \(summary.samplesWritten), "
            + "\(summary.unreadable) responses still unreadable, \(summary.eventsAdded) events added"
        if format.json || format.csv {
            format.output(
                ["since", "vehicles", "responses", "unreadable", "samples_deleted", "samples_written", "events_added"],
                [
                    [
                        .string(start.iso8601), .number(Double(summary.vehicles)), .number(Double(summary.responses)),
                        .number(Double(summary.unreadable)), .number(Double(summary.samplesDeleted)),
                        .number(Double(summary.samplesWritten)), .number(Double(summary.eventsAdded)),
                    ]
                ])
        } else {
            printError(line)
        }
    }
}

/// `fleet-telemetry raw VIN [--at T]`: an archived response body as it arrived.
struct RawCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raw", abstract: "Print an archived vehicle-data response body exactly as it arrived.",
        discussion: """
            Prints the body of the response received for VIN at --at (or the newest one before \
            it; default: the newest) to standard output, byte for byte, and what it was (receive \
            time, HTTP status, size) on standard error. With --list, lists the archived responses \
            instead (newest first). The archive keeps archive.raw_days days (default 7). Exit 1 \
            when the archive holds no such response.
            """
    )
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions
    @Argument(help: "The VIN.") var vin: String
    @Option(
        name: .long, help: "The response received at this time, or the newest before it (RFC 3339, or a duration ago).")
    var at: String?
    @Flag(name: .long, help: "List the archived responses (receive time, HTTP status, bytes) instead of printing one.")
    var list = false
    @Option(name: .long, help: "With --list, at most this many (the newest; default 100).") var limit: Int?

    func validate() throws {
        _ = try parseVIN(vin)
        _ = try parseTime(at, option: "--at")
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        if (format.json || format.csv || limit != nil) && !list {
            throw ValidationError("--json, --csv and --limit go with --list (the body itself is printed as it arrived)")
        }
    }

    func run() async throws {
        let vin = try parseVIN(vin)
        let at = try parseTime(at, option: "--at")
        let limit = list ? self.limit ?? 100 : 1
        // One more than listed, to say when the listing is cut; a listing decodes nothing.
        var found = try await options.withStore { store in
            try await store.archivedResponses(vin: vin, upTo: at, limit: list ? limit + 1 : 1, decode: !list)
        }
        let cut = found.count > limit
        if cut { found.removeLast() }
        guard let newest = found.first else {
            let when = at.map { " received at or before \($0.iso8601)" } ?? ""
            printError(
                "fleet-telemetry: no archived response of \(vin)\(when) (the archive keeps archive.raw_days days; "
                    + "`raw \(vin) --list` shows what it holds)")
            throw ExitStatus.failure
        }
        if list {
            format.output(
                ["received_at", "http_status", "bytes", "stored_bytes"],
                found.map {
                    [
                        .string($0.receivedAt.iso8601), $0.httpStatus.map { .number(Double($0)) } ?? .null,
                        .number(Double($0.size)), .number(Double($0.storedBytes)),
                    ]
                })
            if cut { printError("showing the newest \(limit); more are archived (--limit, --at)") }
            return
        }
        if let problem = newest.problem {
            printError("fleet-telemetry: \(problem)")
            throw ExitStatus.failure
        }
        printError(
            "response of \(vin) received \(newest.receivedAt.iso8601), HTTP "
                + "\(newest.httpStatus.map(String.init) ?? "-"), \(counted(newest.body.count, "byte")) "
                + "(\(newest.storedBytes) archived)")
        writeStandardOutput(bytes: newest.body)
    }
}
