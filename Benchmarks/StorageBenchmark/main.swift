import BenchmarkSupport
import CSQLite
import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetEmulator
import FleetIngestion
import FleetModel
import FleetStore
import Foundation
import Logging

// storage-benchmark [vehicles (100)] [hours (5)]
//
// The daemon (the one assembly, the real client, the archive on with its default 7 days)
// against the emulator's realistic simulation (time scale 1, a simulated fleet driving,
// parking and charging) on a manual clock: every vehicle polled every 5 simulated minutes for
// `hours`. Then the file is measured: bytes per vehicle-day all in, bytes per history row
// (`samples` and its indexes, from `dbstat`), archive bytes per poll, and the share of stored
// samples that repeat their series' previous value. Issue 19's targets are printed beside them
// as the reference.

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count <= 2, let vehicleCount = Int(arguments.first ?? "100"), vehicleCount >= 1,
    let hours = Int(arguments.dropFirst().first ?? "5"), hours >= 1
else {
    FileHandle.standardError.write(Data("usage: storage-benchmark [vehicles ≥ 1 (100)] [hours ≥ 1 (5)]\n".utf8))
    exit(64)
}
let logger = quietLogger("storage-benchmark")

let clock = ManualWallClock(start: Timestamp(iso8601: "2026-11-28T06:00:00Z")!)
let emulatorConfiguration = EmulatorConfiguration(vehicleCount: vehicleCount, timeScale: 1)
let emulator = Emulator(configuration: emulatorConfiguration, wallClock: clock)
let directory = NSTemporaryDirectory() + "storage-benchmark-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
// STORAGE_BENCHMARK_KEEP=1 keeps the database (to look into it), and says where.
let keep = ProcessInfo.processInfo.environment["STORAGE_BENCHMARK_KEEP"] != nil
defer { if keep { print("kept \(directory)") } else { try? FileManager.default.removeItem(atPath: directory) } }
var configuration = daemonConfiguration(
    for: emulatorConfiguration, databasePath: directory + "/telemetry.sqlite")
configuration.polling = .init(policy: .init(interval: .seconds(300)), maxConcurrentRequests: 8)
// Every vehicle at the same cadence, asleep or not: the measurement.
configuration.polling.slowInterval = .seconds(300)
let store = try await Daemon.openStore(path: configuration.databasePath, configuration: configuration)
let began = ContinuousClock.now
try await withEmulatedAPI(emulator, clock: clock, logger: logger) { client in
    let daemon = Daemon(
        configuration: configuration, store: store, client: client, clock: clock, sink: DiscardingEventSink(),
        seed: 7, logger: logger)
    let polling = daemon.polling
    let loop = Task { try await polling.run() }
    let end = clock.now().adding(.seconds(Int64(hours) * 3600))
    while clock.now() < end {
        let now = clock.now()
        let next = await polling.nextWakeUp ?? now.adding(.seconds(1))
        clock.advance(by: min(max(next.duration(since: now), .milliseconds(1)), .seconds(60)))
        await polling.settled(at: clock.now())
    }
    loop.cancel()
    _ = try? await loop.value
}
let took = ContinuousClock.now - began

// Measured through the system SQLite's C API, after a checkpoint so that the main file holds
// everything.
nonisolated(unsafe) var database: OpaquePointer?
guard sqlite3_open_v2(configuration.databasePath, &database, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK else {
    FileHandle.standardError.write(Data("storage-benchmark: cannot open the database\n".utf8))
    exit(1)
}
/// The first column of the first row of `sql`, 0 without one.
func count(_ sql: String) throws -> Int64 {
    var statement: OpaquePointer?
    guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK else {
        throw CocoaError(
            .coderInvalidValue, userInfo: [NSDebugDescriptionErrorKey: String(cString: sqlite3_errmsg(database))])
    }
    defer { sqlite3_finalize(statement) }
    return sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : 0
}
_ = try count("PRAGMA wal_checkpoint(TRUNCATE)")
let polls = try count("SELECT count(*) FROM polls")
let samples = try count("SELECT count(*) FROM samples")
let fileBytes = try count("PRAGMA page_count") * count("PRAGMA page_size")
/// Bytes of a table and its indexes, from `dbstat`.
func bytes(_ table: String) throws -> Int64 {
    try count(
        """
        SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = '\(table)'
            OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '\(table)')
        """)
}
let samplesBytes = try bytes("history")
let archiveBytes = try bytes("raw_responses") + bytes("archive_dictionaries")
let latestBytes = try bytes("series")
let repeats = try count(
    """
    SELECT count(*) FROM (
        SELECT value IS lag(value) OVER w AND lag(observed_at) OVER w IS NOT NULL AS same
        FROM history WINDOW w AS (PARTITION BY series_id ORDER BY observed_at)
    ) WHERE same
    """)
let vehicleDays = Double(vehicleCount) * Double(hours) / 24

print(
    "\(vehicleCount) vehicles, every 5 min for \(hours) simulated h: \(polls) polls, \(samples) samples"
        + String(format: " (%.1f s)", Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18))
print(
    String(
        format: "  database        %10.1f KB per vehicle-day   (%.1f MB in all)       target ≤ 60 KB",
        Double(fileBytes) / vehicleDays / 1000, Double(fileBytes) / 1e6))
print(
    String(
        format: "  history rows    %10.1f bytes per row          (history + indexes)   target ≤ 32 B",
        Double(samplesBytes) / Double(max(samples, 1))))
print(
    String(
        format: "  archive         %10.0f bytes per poll         (raw_responses)       target ≤ 200 B",
        Double(archiveBytes) / Double(max(polls, 1))))
print(
    String(
        format: "  series (latest) %10.1f KB per vehicle", Double(latestBytes) / Double(vehicleCount) / 1000))
print(
    String(
        format: "  repeats         %10.1f %% of samples repeat their series' previous value",
        Double(repeats) / Double(max(samples, 1)) * 100))

// Where the bytes are: each table with its indexes, per vehicle-day.
var breakdown: OpaquePointer?
if sqlite3_prepare_v2(
    database,
    """
    SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name
    GROUP BY 1 ORDER BY 2 DESC LIMIT 8
    """, -1, &breakdown, nil) == SQLITE_OK
{
    print("  by table (with its indexes), per vehicle-day:")
    while sqlite3_step(breakdown) == SQLITE_ROW {
        let name = String(cString: sqlite3_column_text(breakdown, 0))
        let kilobytes = Double(sqlite3_column_int64(breakdown, 1)) / vehicleDays / 1000
        print("    " + name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%8.1f KB", kilobytes))
    }
}
sqlite3_finalize(breakdown)
