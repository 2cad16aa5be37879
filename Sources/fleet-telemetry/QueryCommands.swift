import ArgumentParser
import FleetConfiguration
import FleetDaemon
import FleetEvents
import FleetIngestion
import Logging
import FleetModel
import FleetStore
import Foundation

/// `--config`/`--database` and the output format of the commands that read the database.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The config file (for database.path).")
    var config: String = "/etc/fleet-telemetry/config.yaml"

    @Option(name: .long, help: "The SQLite database file (overrides database.path).")
    var database: String?

    @Flag(name: .long, help: "Print JSON lines instead of a table.")
    var json = false

    @Flag(name: .long, help: "Print CSV (with a header line) instead of a table.")
    var csv = false

    /// The config file's settings: when `--database` is not given, or the file exists; `nil` for
    /// `--database` without a config file. Exits 78 for a bad config.
    func loadConfiguration() throws -> DaemonConfiguration? {
        guard database == nil || FileManager.default.fileExists(atPath: config) else { return nil }
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
    /// read already); exits 74 for a database that cannot be opened.
    func openStore(configuration: DaemonConfiguration?) throws -> TelemetryStore {
        let path = database ?? configuration?.databasePath
        guard let path, FileManager.default.fileExists(atPath: path) else {
            printError("fleet-telemetry: no database at \(path ?? "?")")
            throw ExitStatus.ioError
        }
        do {
            return try TelemetryStore(existingPath: path)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
    }

    /// Prints rows in the chosen format; `keys` name the columns.
    func output(_ keys: [String], _ rows: [[JSONValue]]) {
        if json {
            for row in rows { printJSON(.object(JSONObject(members: zip(keys, row).map { (key: $0, value: $1) }))) }
        } else if csv {
            var text = keys.joined(separator: ",") + "\n"
            for row in rows { text += row.map(Self.csvCell).joined(separator: ",") + "\n" }
            FileHandle.standardOutput.write(Data(text.utf8))
        } else {
            printTable(keys.map { $0.uppercased() }, rows.map { $0.map(Self.text) })
        }
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: return "-"
        case .string(let s): return s
        case .number(let n): return SampleValue.number(n).description
        case .bool(let b): return b ? "yes" : "no"
        default: return "?"
        }
    }

    static func csvCell(_ value: JSONValue) -> String {
        var text = value == .null ? "" : Self.text(value)
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

/// Parses `--since`/`--until`: RFC 3339 (`2026-11-28T06:00:00Z`) or a duration ago (`24h`).
func parseTime(_ text: String?, option: String) throws -> Timestamp? {
    guard let text else { return nil }
    if let time = Timestamp(iso8601: text) { return time }
    if let ago = DurationParser.parse(text) { return SystemWallClock().now().adding(milliseconds: -ago.milliseconds) }
    throw ValidationError(
        "\(option) takes an RFC 3339 time (2026-11-28T06:00:00Z) or a duration ago (24h), got \"\(text)\"")
}

func number(_ value: Double?) -> JSONValue { value.map(JSONValue.number) ?? .null }
func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

/// `fleet-telemetry status`: one line per vehicle.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "One line per vehicle: last seen, battery, range, locks, charging, position, stale values, health.")
    @OptionGroup var options: DatabaseOptions

    func run() async throws {
        let store = try options.openStore()
        let rows = try await store.status().map { s -> [JSONValue] in
            [
                .string(s.vin.rawValue), string(s.lastSeen?.iso8601), number(s.batteryPercent), number(s.rangeKm),
                string(s.locks), string(s.charging),
                number(s.latitude), number(s.longitude), .number(Double(s.staleValues)), string(s.health ?? s.status),
            ]
        }
        options.output(
            [
                "vin", "last_seen", "battery_percent", "range_km", "locks", "charging", "latitude", "longitude",
                "stale_values", "health",
            ], rows)
    }
}

/// `fleet-telemetry history VIN PROPERTY`.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "The stored history of one property of one vehicle.")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "The VIN.") var vin: String
    @Argument(help: "The property path, e.g. charging.battery_level.") var property: String
    @Option(name: .long, help: "From this time (RFC 3339, or a duration ago such as 24h).") var since: String?
    @Option(name: .long, help: "Until this time (RFC 3339, or a duration ago).") var until: String?

    func validate() throws {
        _ = try parseVIN(vin)
        _ = try parseTime(since, option: "--since")
        _ = try parseTime(until, option: "--until")
    }

    func run() async throws {
        let store = try options.openStore()
        let samples = try await store.history(
            vin: try parseVIN(vin), property: property, since: try parseTime(since, option: "--since"),
            until: try parseTime(until, option: "--until"))
        options.output(
            ["observed_at", "instance", "value", "unit"],
            samples.map {
                [
                    .string($0.observedAt.iso8601), .string($0.instance),
                    $0.value.number.map(JSONValue.number) ?? .string($0.value.text ?? ""), string($0.unit),
                ]
            })
    }
}

/// `fleet-telemetry events`.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Stored change events, oldest first.")
    @OptionGroup var options: DatabaseOptions
    @Option(name: .long, help: "Only this VIN.") var vin: String?
    @Option(name: .long, help: "Only this event type (e.g. door_unlocked).") var type: String?
    @Option(name: .long, help: "From this time (RFC 3339, or a duration ago such as 24h).") var since: String?
    @Option(name: .long, help: "At most this many (the newest).") var limit: Int = 1000

    func validate() throws {
        if let vin { _ = try parseVIN(vin) }
        if let type, EventType(rawValue: type) == nil {
            throw ValidationError(
                "unknown event type \"\(type)\"; known: \(EventType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        _ = try parseTime(since, option: "--since")
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let store = try options.openStore()
        let events = try await store.events(
            vin: try vin.map(parseVIN), type: type.flatMap(EventType.init),
            since: try parseTime(since, option: "--since"), limit: limit)
        options.output(
            ["id", "vin", "type", "instance", "occurred_at", "detected_at", "previous_value", "new_value"],
            events.map {
                [
                    .number(Double($0.id ?? 0)), .string($0.vin.rawValue), .string($0.type.rawValue),
                    .string($0.instance), .string($0.occurredAt.iso8601),
                    .string($0.detectedAt.iso8601), string($0.previousValue), .string($0.newValue),
                ]
            })
    }
}

/// `fleet-telemetry backup DEST`.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Write a consistent copy of the live database (ingestion goes on).")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "The file to write; it must not exist.") var destination: String

    func run() async throws {
        guard !FileManager.default.fileExists(atPath: destination) else {
            printError("fleet-telemetry: \(destination) exists; choose a new file")
            throw ExitStatus.ioError
        }
        let store = try options.openStore()
        do {
            try await store.backup(to: destination)
        } catch {
            printError("fleet-telemetry: backup failed: \(error)")
            throw ExitStatus.ioError
        }
        printError("backup written to \(destination)")
    }
}

/// `fleet-telemetry purge VIN`.
struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge", abstract: "Remove every row of one vehicle from the database.")
    @OptionGroup var options: DatabaseOptions
    @Argument(help: "The VIN.") var vin: String

    func validate() throws { _ = try parseVIN(vin) }

    func run() async throws {
        let store = try options.openStore()
        let deleted = try await store.purge(vin: try parseVIN(vin))
        printError("removed \(deleted) rows of \(vin.uppercased())")
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
            printError("fleet-telemetry: reprocess stopped: \(error) (vehicles already done are kept)")
            throw ExitStatus.ioError
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
        if options.json || options.csv {
            options.output(
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
