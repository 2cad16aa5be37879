import ArgumentParser
import FleetConfiguration
import FleetDaemon
import FleetEvents
import FleetIngestion
import FleetModel
import FleetStore
import Foundation
import Logging

/// `fleet-telemetry import FILE...`: captured vehicle data into the database.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import captured vehicle data (REST bodies or push messages) into the database.",
        discussion: """
            Each FILE is JSON lines (one document per line), or a .json file holding one document \
            or an array of them. A document is a vehicle-data response body or a push message \
            ({version, message_id, vin, data}); push messages are imported once per message_id. \
            Events are printed as JSON lines on standard output; progress and the summary go to \
            standard error. A bad line is reported with its number and never stops the rest.
            """
    )

    @Argument(help: "Files to import.")
    var files: [String]

    /// `--config` (database.path, database.max_size_mb and the events rules; read when it exists
    /// with `--database`) and `--database`, as for the other database commands.
    @OptionGroup var options: DatabaseOptions

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one file to import") }
    }

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let databasePath = options.database ?? configuration?.databasePath ?? ""
        let maxSizeMegabytes = configuration?.maxSizeMegabytes
        let store: TelemetryStore
        do {
            // The cap of `database.max_size_mb` holds for imports as for polling.
            store = try await Daemon.openStore(path: databasePath, configuration: configuration)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
        var logger = Logger(label: "fleet-telemetry")
        logger.logLevel = .error
        let sink = StdoutEventSink(logger: logger)
        // Every event printed before the command ends, whatever way it ends.
        defer { sink.flush() }
        // The configured rules (geofences, disabled events, thresholds), as when polling.
        let ingestion = Daemon.ingestion(
            events: configuration?.events ?? EventRulesConfiguration(),
            archiveRawDays: configuration?.archiveRawDays ?? DaemonConfiguration.defaultArchiveRawDays,
            store: store, sink: sink, logger: logger)
        let importer = Importer(ingestion: ingestion)
        var summary = Importer.Summary()
        let interactive = isatty(STDERR_FILENO) == 1
        var lastShown = ContinuousClock.now
        for file in files {
            let progress: (Importer.Summary) -> Void = { running in
                guard interactive, ContinuousClock.now - lastShown > .milliseconds(200) else { return }
                lastShown = ContinuousClock.now
                FileHandle.standardError.write(
                    Data("\r\(file): \(running.responses) imported, \(running.rejected.count) rejected".utf8))
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue,
                let handle = FileHandle(forReadingAtPath: file)
            else {
                summary.rejected.append(.init(file: file, line: 0, reason: "cannot read the file"))
                continue
            }
            defer { try? handle.close() }
            do {
                if file.lowercased().hasSuffix(".json") {
                    // One document (or an array of them): parsed whole.
                    let data = try handle.readToEnd() ?? Data()
                    try await importer.importFile(
                        named: file, content: Array(data), wholeDocument: true, into: &summary, progress: progress)
                } else {
                    // JSON lines, read 4 MiB at a time: memory stays bounded whatever the file's size.
                    try await importer.importLines(
                        named: file, read: { try handle.read(upToCount: 4 << 20).map(Array.init) }, into: &summary,
                        progress: progress)
                }
            } catch let error as SQLiteError {
                let cap = error.isFull ? maxSizeMegabytes.map { "; database.max_size_mb is \($0)" } ?? "" : ""
                printError(
                    "\nfleet-telemetry: could not write to the database: \(error) (documents imported before are kept\(cap))"
                )
                Self.report(summary)
                throw ExitStatus.ioError
            } catch {
                summary.rejected.append(.init(file: file, line: 0, reason: "cannot read the file: \(error)"))
            }
        }
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        Self.report(summary)
        // 1 when nothing could be stored (no document at all, or every one rejected), or a named
        // file could not be read at all.
        if (summary.responses == 0 && summary.duplicates == 0)
            || summary.rejected.contains(where: { $0.line == 0 && $0.reason.hasPrefix("cannot read") })
        {
            throw ExitStatus.failure
        }
    }

    /// Prints the counts and the first 50 rejections on standard error.
    static func report(_ summary: Importer.Summary) {
        var text =
            "imported \(counted(summary.responses, "document")) (\(counted(summary.duplicates, "duplicate push message")) skipped), \(counted(summary.samples, "sample")), \(counted(summary.events, "event")), \(summary.rejected.count) rejected"
        for rejection in summary.rejected.prefix(50) { text += "\n  rejected \(rejection)" }
        if summary.rejected.count > 50 { text += "\n  … \(summary.rejected.count - 50) more" }
        printError(text)
    }
}
