import FleetModel
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How the process logs, to standard error:
/// - under systemd with standard error connected to the journal (`JOURNAL_STREAM` names the
///   device and inode of file descriptor 2), each line starts with its syslog priority (`<3>` for
///   an error) and carries no timestamp of its own: the journal stamps it and filters by priority;
/// - otherwise each line starts with its UTC time (milliseconds) and level.
///
/// Either way the level is ``LogLevelControl/current`` (a reloaded `log_level` applies at once),
/// and a warning or error logged again with the same text within a minute is counted instead of
/// printed (``RepeatFilter``): the next different line, or the first after the minute, is
/// preceded by `(the previous message was repeated N times)`.
enum LogOutput {
    /// True when standard error is the journal stream systemd set up for this process.
    static func standardErrorIsJournal(environment: [String: String]) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}

/// Holds back identical warnings and errors repeated within a minute.
final class RepeatFilter: Sendable {
    private struct State {
        var last: String?
        var since: ContinuousClock.Instant = .now
        var suppressed = 0
    }
    private let state = Mutex(State())
    static let shared = RepeatFilter()
    static let window: Duration = .seconds(60)

    /// Whether to print `line` (of `level`), and the repeat note to print before it, if any.
    /// Lines that differ only in the API's `[request_id …]` are the same line.
    func admit(_ text: String, level: Logger.Level) -> (print: Bool, note: String?) {
        var line = text
        if let start = line.range(of: " [request_id ") {
            line = String(line[..<start.lowerBound]) + String(line[start.upperBound...].drop { $0 != "]" }.dropFirst())
        }
        return state.withLock { state in
            let now = ContinuousClock.now
            if level >= .warning, state.last == line, now - state.since < Self.window {
                state.suppressed += 1
                return (false, nil)
            }
            let note =
                state.suppressed > 0 ? "(the previous message was repeated \(counted(state.suppressed, "time")))" : nil
            state.suppressed = 0
            state.last = level >= .warning ? line : nil
            state.since = now
            return (true, note)
        }
    }
}

/// One log line: on the journal `<priority>[source] message key=value…` (no timestamp: the
/// journal stamps it), elsewhere `2026-12-01T16:49:42.123Z info [source] message key=value…`
/// (UTC, milliseconds). Metadata follows the message, sorted by key.
struct LineLogHandler: LogHandler {
    let label: String
    /// Journal lines (priority prefix, no timestamp), or plain ones.
    let journal: Bool
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level {
        get { LogLevelControl.current }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Whether a line comes from fleet-telemetry's own modules.
    static func isOwn(_ source: String) -> Bool { source.hasPrefix("Fleet") || source == "fleet_telemetry" }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    func log(event: LogEvent) {
        // At `debug` the daemon's own lines (one per poll); the libraries' debug lines (whole
        // configurations, connection pools) only at `trace`.
        if event.level == .debug && !Self.isOwn(event.source) && LogLevelControl.current != .trace { return }
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let details =
            all.isEmpty
            ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = "[\(event.source)] \(event.message)\(details)"
        let (show, note) = RepeatFilter.shared.admit(text, level: event.level)
        guard show else { return }
        let prefix =
            journal ? "<\(Self.priority(event.level))>" : "\(SystemWallClock().now().iso8601) \(event.level.rawValue) "
        var out = ""
        if let note { out += prefix + note + "\n" }
        out += prefix + text.replacingOccurrences(of: "\n", with: " ") + "\n"
        writeStandardError(out)
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

/// Sends log lines to standard error at `level` (journal lines under systemd), so that standard
/// output carries only events.
func bootstrapLogging(level: String) {
    LogLevelControl.set(level)
    let journal = LogOutput.standardErrorIsJournal(environment: ProcessInfo.processInfo.environment)
    LoggingSystem.bootstrap { label in LineLogHandler(label: label, journal: journal) }
}
