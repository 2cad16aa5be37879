import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetIngestion
import FleetEvents
import FleetEmulator
import FleetModel
@testable import FleetStore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Every sample row, as comparable text, in primary-key order.
private func sampleRows(_ path: String) throws -> [String] {
    let connection = try Connection(path: path)
    let statement = try connection.makeStatement(
        """
        SELECT vin, property, instance, observed_at, coalesce(value_num, ''), coalesce(value_text, ''), coalesce(unit, ''), received_at
        FROM samples ORDER BY vin, observed_at, property, instance
        """)
    var rows: [String] = []
    while try statement.step() {
        rows.append((0..<8).map { statement.text(at: Int32($0)) ?? "" }.joined(separator: "|"))
    }
    return rows
}

/// In `CommandLineTests` (serialized): the kill test waits on a child process, which holds a
/// thread of the cooperative pool; two such at once starve every other suite on two cores.
extension CommandLineTests {
    /// Polls archive their raw responses; `reprocess` rebuilds exactly the samples they produced,
    /// through the library and through the command.
    @Test func reprocessRebuildsSamplesFromTheArchive() async throws {
        try await withHarness(emulator: .init(vehicleCount: 3)) { h in
            for _ in 0..<6 { await h.step(by: .seconds(60)) }
            let before = try sampleRows(h.databasePath)
            #expect(before.count > 30)
            let connection = try Connection(path: h.databasePath)
            #expect(try connection.scalarInt("SELECT count(*) FROM raw_responses") == 18)

            // A normalizer upgrade would change these rows; here they are simply lost.
            try connection.execute("DELETE FROM history")
            let summary = try await Reprocessor(ingestion: h.daemon.ingestion).run(since: nil)
            #expect(summary.vehicles == 3)
            #expect(summary.responses == 18)
            #expect(summary.unreadable == 0)
            #expect(try sampleRows(h.databasePath) == before)

            try connection.execute(
                "DELETE FROM history WHERE received_at >= \(harnessStart.adding(milliseconds: 180_000).millisecondsSince1970)"
            )
            let result = try CLI.execute([
                "reprocess", "--database", h.databasePath, "--since",
                harnessStart.adding(milliseconds: 150_000).iso8601,
            ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("reprocessed"), "\(result.stderr)")
            let after = try sampleRows(h.databasePath)
            #expect(
                after == before,
                "missing: \(Set(before).subtracting(after).sorted().prefix(3)), extra: \(Set(after).subtracting(before).sorted().prefix(3))"
            )
        }
    }

    /// `kill -9` of a daemon in the middle of ingesting: the database passes integrity_check,
    /// every event it printed (printed only after its poll committed) is stored, and every
    /// stored poll has all its samples and no more (no half-written poll).
    @Test(arguments: [5, 40, 120])
    func killNineLeavesEveryCommittedPoll(afterEvents: Int) throws {
        let directory = NSTemporaryDirectory() + "ft-kill-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = directory + "/demo.sqlite"
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = [
            "demo", "--vehicles", "20", "--interval", "50ms", "--time-scale", "1440", "--duration", "120", "--database",
            database, "--log-level", "critical",
        ]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var printed: [String] = []
        var buffer = ""
        let deadline = Date().addingTimeInterval(90)
        while printed.count < afterEvents, process.isRunning, Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer += String(decoding: chunk, as: UTF8.self)
            while let newline = buffer.firstIndex(of: "\n") {
                printed.append(String(buffer[..<newline]))
                buffer = String(buffer[buffer.index(after: newline)...])
            }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(printed.count >= afterEvents, "the demo printed events before it was killed")

        let connection = try Connection(path: database)
        #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
        for line in printed {
            let event = try JSONParser.parse(line)
            let id = try #require(event["id"]?.numberValue.map { Int64($0) })
            let statement = try connection.makeStatement("SELECT vin, type FROM events WHERE id = ?1")
            try statement.bind([.integer(id)])
            #expect(try statement.step(), "printed event \(id) is stored")
            #expect(
                statement.text(at: 0) == event["vin"]?.stringValue
                    && statement.text(at: 1) == event["type"]?.stringValue)
        }
        // Each poll wrote its samples and its polls row in one transaction.
        let written = try connection.scalarInt("SELECT coalesce(sum(samples_written), 0) FROM polls") ?? -1
        #expect(try connection.scalarInt("SELECT count(*) FROM samples") == written)
        #expect(written > 0)
        // And the database takes writes again.
        _ = try TelemetryStore(path: database)
    }
}

@Suite struct FullDatabaseIntegrationTests {
    /// The daemon on a database at its size cap: the poll fails with a clear error, the VIN backs
    /// off and is polled again, nothing committed is lost, and storing resumes once there is room.
    @Test func fullDatabaseBacksOffAndRecovers() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            await h.step(by: .seconds(1))
            let connection = try Connection(path: h.databasePath)
            let storedBefore = try connection.scalarInt("SELECT count(*) FROM samples") ?? 0
            #expect(storedBefore > 0)
            let size = try #require(
                try FileManager.default.attributesOfItem(atPath: h.databasePath)[.size] as? NSNumber
            ).int64Value
            try await h.store.setMaximumSize(bytes: size)
            var failed: PollPipeline.Result?
            for _ in 0..<30 where failed == nil {
                failed = await h.step(by: .seconds(60)).first { $0.outcome == .failed }
            }
            let result = try #require(failed, "the capped database fills up")
            #expect(result.error?.contains("full") == true, "\(result.error ?? "")")
            #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
            let polls = try connection.scalarInt("SELECT count(*) FROM polls") ?? 0

            try await h.store.setMaximumSize(bytes: 1 << 30)
            var stored = false
            for _ in 0..<10 where !stored {
                stored = await h.step(by: .seconds(120)).contains { $0.outcome != .failed }
            }
            #expect(stored, "polling resumes")
            #expect(try connection.scalarInt("SELECT count(*) FROM polls") ?? 0 > polls)
            #expect(try connection.scalarInt("SELECT count(*) FROM samples") ?? 0 >= storedBefore)
        }
    }
}

@Suite struct MaintenanceTests {
    /// Once a minute the daemon purges vehicles whose clearance ended `purge_revoked_days` ago,
    /// prunes the raw archive, and truncates a WAL past its threshold.
    @Test func maintenancePurgesRevokedVehiclesPrunesTheArchiveAndTruncatesTheWAL() async throws {
        let directory = NSTemporaryDirectory() + "ft-maintenance-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try TelemetryStore(path: directory + "/t.sqlite")
        let revoked = VIN("1HMFT000000000001")!, approved = VIN("1HMFT000000000002")!
        let day: Int64 = 86_400_000
        let start = Timestamp(iso8601: "2026-11-01T00:00:00Z")!
        _ = try await store.recordClearance(
            [
                FleetVehicle(vin: revoked, brand: "sandbox", status: .approved),
                FleetVehicle(vin: approved, brand: "sandbox", status: .approved),
            ], at: start, detector: EventRules())
        for (index, vin) in [revoked, approved].enumerated() {
            var record = PollRecord(
                vin: vin, requestedAt: start.adding(milliseconds: Int64(index)),
                receivedAt: start.adding(milliseconds: Int64(index) + 1), httpStatus: 200, latencyMilliseconds: 1)
            record.rawBody = Array("{}".utf8)
            try await store.record(
                record,
                samples: [
                    Sample(
                        vin: vin, property: "charging.battery_level", value: .number(50), unit: "percent",
                        observedAt: start)
                ], detector: EventRules())
        }
        _ = try await store.recordClearance(
            [
                FleetVehicle(vin: revoked, brand: "sandbox", status: .revoked),
                FleetVehicle(vin: approved, brand: "sandbox", status: .approved),
            ], at: start.adding(milliseconds: day), detector: EventRules())

        let logs = LogCapture()
        let logger = logs.logger(label: "t")
        let ingestion = Daemon.ingestion(
            events: .init(), archiveRawDays: 3, store: store, sink: CollectingSink(), logger: logger)
        var retention = DaemonConfiguration.Retention()
        retention.purgeRevoked = .days(7)
        var maintenance = Maintenance(ingestion: ingestion, retention: retention, logger: logger)
        maintenance.walCheckpointBytes = 0

        await maintenance.run(now: start.adding(milliseconds: 5 * day))
        #expect(try await store.vehicles().map(\.vin) == [revoked, approved], "revoked 4 days ago: kept")
        #expect(try await store.archivedVINs(since: start).isEmpty, "responses older than 3 days pruned")
        #expect(await store.walSize() == 0, "the WAL was truncated")

        await maintenance.run(now: start.adding(milliseconds: 9 * day))
        #expect(try await store.vehicles().map(\.vin) == [approved], "revoked 8 days ago: purged")
        #expect(try await store.samples(vin: revoked, property: "charging.battery_level").isEmpty)
        #expect(try await store.samples(vin: approved, property: "charging.battery_level").count == 1)
        #expect(logs.text.contains("purged 1HMFT000000000001"), "\(logs.text)")
    }
}
