import ArgumentParser
import FleetDaemon
import Foundation
import Logging
import Synchronization

/// `fleet-telemetry`: keeps a fleet's connected-car data from the High Mobility API in SQLite.
@main
struct FleetTelemetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-telemetry",
        abstract: "Polls the High Mobility Vehicle Data API for a fleet and keeps every reading in one SQLite file.",
        subcommands: [
            RunCommand.self, DemoCommand.self, EmulatorCommand.self, VehiclesCommand.self, EligibilityCommand.self,
            PollCommand.self, ImportCommand.self, StatusCommand.self, HistoryCommand.self, EventsCommand.self,
            ScheduleCommand.self, CheckConfigCommand.self, BackupCommand.self, PurgeCommand.self, ReprocessCommand.self,
        ]
    )
}

/// Sends log lines to standard error at `level`, so that standard output carries only events.
/// The level can change while the process runs (``LogLevelControl``, a reloaded `log_level`).
func bootstrapLogging(level: String) {
    LogLevelControl.set(level)
    LoggingSystem.bootstrap { label in
        var base = StreamLogHandler.standardError(label: label)
        base.logLevel = .trace
        return ReloadableLevelLogHandler(base: base)
    }
}

/// The process-wide log level every handler reads: `log_level`, changed by a reload.
enum LogLevelControl {
    private static let level = Mutex<Logger.Level>(.info)
    static var current: Logger.Level { level.withLock { $0 } }
    static func set(_ text: String) {
        let parsed = Logger.Level(rawValue: text) ?? .info
        level.withLock { $0 = parsed }
    }
}

/// A standard-error handler whose level is ``LogLevelControl/current``.
struct ReloadableLevelLogHandler: LogHandler {
    var base: StreamLogHandler
    var logLevel: Logger.Level {
        get { LogLevelControl.current }
        set {}
    }
    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }
    func log(event: LogEvent) {
        base.log(event: event)
    }
}

/// Writes `text` and a newline to standard error; a closed standard error is ignored (the
/// message is lost, the command goes on).
func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    var offset = 0
    while offset < line.count {
        let written = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        offset += written
    }
}
