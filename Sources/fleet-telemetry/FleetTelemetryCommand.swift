import ArgumentParser
import FleetDaemon
import Foundation
import Logging

/// `fleet-telemetry`: keeps a fleet's connected-car data from the High Mobility API in SQLite.
@main
struct FleetTelemetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-telemetry",
        abstract: "Polls the High Mobility Vehicle Data API for a fleet and keeps every reading in one SQLite file.",
        version: "fleet-telemetry \(FleetTelemetryVersion.current)",
        subcommands: [
            RunCommand.self, DemoCommand.self, EmulatorCommand.self, VehiclesCommand.self, EligibilityCommand.self,
            PollCommand.self, ImportCommand.self, StatusCommand.self, HistoryCommand.self, EventsCommand.self,
            ScheduleCommand.self, CheckConfigCommand.self, BackupCommand.self, PurgeCommand.self, ReprocessCommand.self,
            RawCommand.self, ConsentCommand.self,
        ]
    )
}

/// Writes `text` and a newline to standard error; a closed standard error is ignored (the
/// message is lost, the command goes on). When standard error is the journal (under systemd),
/// an error line (`fleet-telemetry: …`) carries the `<3>` priority and any other `<6>`, as the
/// log lines do.
func printError(_ text: String) {
    var text = text
    if standardErrorIsJournal {
        let priority = text.hasPrefix("fleet-telemetry:") ? "<3>" : "<6>"
        text = text.split(separator: "\n", omittingEmptySubsequences: false).map { priority + $0 }
            .joined(separator: "\n")
    }
    writeStandardError(text + "\n")
}

/// Writes `text` to standard error as it is (the journal log handler's lines carry their own
/// priority); a closed standard error is ignored.
func writeStandardError(_ text: String) {
    let line = Array(text.utf8)
    var offset = 0
    while offset < line.count {
        let written = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        offset += written
    }
}

/// Writes `text` to standard output whole, unbuffered (every command's data goes through here).
/// A closed output (a reader that exited, as in `status | head -1`: `EPIPE`, with `SIGPIPE`
/// ignored) ends the command quietly with status 0; any other failure (a full disk) ends it with
/// one line on standard error and status 74, so that a cut file is never reported as a success.
func writeStandardOutput(_ text: String) {
    writeStandardOutput(bytes: Array(text.utf8))
}

/// Writes `bytes` to standard output whole, as ``writeStandardOutput(_:)`` writes text (an
/// archived body, which need not be UTF-8).
func writeStandardOutput(bytes: [UInt8]) {
    signal(SIGPIPE, SIG_IGN)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else {
            let code = errno
            if code == EPIPE { exit(0) }
            printError("fleet-telemetry: cannot write the output: \(String(cString: strerror(code)))")
            exit(74)
        }
        offset += written
    }
}

/// Ends the command quietly (status 0) when standard output is a pipe whose reader has gone:
/// for `events --follow`, which may wait long between writes.
func exitIfOutputClosed() {
    var descriptor = pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)
    if poll(&descriptor, 1, 0) > 0 && descriptor.revents & Int16(POLLERR | POLLHUP) != 0 { exit(0) }
}

/// Whether standard error is the journal stream systemd set up (`JOURNAL_STREAM`).
let standardErrorIsJournal = LogOutput.standardErrorIsJournal(environment: ProcessInfo.processInfo.environment)
