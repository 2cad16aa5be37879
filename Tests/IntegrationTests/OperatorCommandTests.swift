import FleetDaemon
import FleetEmulator
import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The first hour of an operator, through the built binary: versions, paths, permissions,
/// events to resume and follow, explained empty answers, safe purges and backups.
@Suite(.serialized) struct OperatorCommandTests {
    /// A fresh folder (removed by the caller) that every user may enter.
    func workspace() throws -> String {
        let directory = NSTemporaryDirectory() + "ft-operator-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        return directory
    }

    func mode(_ path: String) -> mode_t {
        var status = stat()
        _ = stat(path, &status)
        return status.st_mode & 0o777
    }

    @Test func versionIsPrinted() throws {
        let result = try CLI.execute(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout == "fleet-telemetry \(FleetTelemetryVersion.current)\n")
    }

    /// `database.path` and `client_secret.file` are read from the config file's folder, whatever
    /// the current folder; a secret file readable by everyone is accepted with a warning.
    @Test func pathsInTheConfigAreRelativeToIt() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/conf/data", withIntermediateDirectories: true)
        _ = try await QueryCommandTests().knownDatabase(directory + "/conf/data/t.sqlite")
        try "s3cret\n".write(toFile: directory + "/conf/secret.txt", atomically: true, encoding: .utf8)
        chmod(directory + "/conf/secret.txt", 0o644)
        try """
        api:
          base_url: https://api.example
          client_id: id
          client_secret:
            file: secret.txt
        database:
          path: data/t.sqlite
        vehicles: [1HMFT000000000001]
        """.write(toFile: directory + "/conf/config.yaml", atomically: true, encoding: .utf8)

        let check = try CLI.execute(["check-config", directory + "/conf/config.yaml"], directory: "/")
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("into \(directory)/conf/data/t.sqlite"), "\(check.stdout)")
        #expect(
            check.stderr.contains("warning: the secret file \(directory)/conf/secret.txt is readable by every user"))
        chmod(directory + "/conf/secret.txt", 0o600)
        #expect(try CLI.execute(["check-config", directory + "/conf/config.yaml"]).stderr.isEmpty)

        for (folder, config) in [("/", directory + "/conf/config.yaml"), (directory, "conf/config.yaml")] {
            let status = try CLI.execute(["status", "--config", config, "--csv"], directory: folder)
            #expect(status.status == 0, "from \(folder): \(status.stderr)")
            #expect(status.stdout.split(separator: "\n").count == 3, "header and two vehicles: \(status.stdout)")
        }
    }

    /// A database the user may not read is named as such (exit 74); one they may read but not
    /// write is read, and a write to it fails as read-only (exit 74), removing nothing.
    @Test func permissionErrorsNameTheCause() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try await QueryCommandTests().knownDatabase(path)
        _ = try await store.checkpoint()
        chmod(path, 0o600)
        let unreadable = try CLI.execute(["status", "--database", path], user: 65534)
        #expect(unreadable.status == 74)
        #expect(
            unreadable.stderr.contains("cannot read the database \(path): permission denied (owner root"),
            "\(unreadable.stderr)")

        for file in [path, path + "-wal", path + "-shm"] { chmod(file, 0o644) }
        let readable = try CLI.execute(["status", "--database", path, "--csv"], user: 65534)
        #expect(readable.status == 0, "\(readable.stderr)")
        #expect(readable.stdout.split(separator: "\n").count == 3, "\(readable.stdout)")

        let purge = try CLI.execute(["purge", "1HMFT000000000001", "--yes", "--database", path], user: 65534)
        #expect(purge.status == 74)
        #expect(purge.stderr.contains("the database is read-only for this user"), "\(purge.stderr)")
        #expect(try await store.status().count == 2, "nothing removed")
    }

    /// `--after-id` resumes in stored order in the daemon's JSON lines; a cut list says so.
    @Test func eventsResumeAfterAnIDAndSayWhenCut() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try await QueryCommandTests().knownDatabase(path)
        let all = try await store.events(matching: .init())
        #expect(all.events.count == 2)
        let first = try #require(all.events.map(\.id).compactMap { $0 }.min())

        let after = try CLI.execute(["events", "--database", path, "--after-id", String(first), "--json"])
        #expect(after.status == 0)
        let lines = after.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let expected = try #require(all.events.first { $0.id != first })
        #expect(lines.first.map(String.init) == expected.jsonLine, "the daemon's own line")

        let newest = try CLI.execute(["events", "--database", path, "--limit", "1"])
        #expect(newest.stdout.split(separator: "\n").count == 2, "header and one row")
        #expect(newest.stderr.contains("showing the newest 1 event; more matched"), "\(newest.stderr)")
        let page = try CLI.execute(["events", "--database", path, "--after-id", "0", "--limit", "1", "--json"])
        #expect(page.stdout.contains("\"id\":\(first),"), "\(page.stdout)")
        #expect(page.stderr.contains("more follow (continue with --after-id \(first))"), "\(page.stderr)")
    }

    /// `--since` is when the daemon learned of an event (a late report counts now);
    /// `--occurred-since` is the vehicle's time.
    @Test func eventsSinceIsTheDetectionTime() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try await QueryCommandTests().knownDatabase(path)
        try await Self.recordLateUnlock(store)
        let detected = try CLI.execute(["events", "--database", path, "--since", "1h", "--json"])
        #expect(detected.stdout.split(separator: "\n").count == 1, "\(detected.stdout)")
        #expect(detected.stdout.contains("\"type\":\"vehicle_locked\""), "\(detected.stdout)")
        let occurred = try CLI.execute(["events", "--database", path, "--occurred-since", "1h", "--json"])
        #expect(occurred.status == 0)
        #expect(occurred.stdout.isEmpty, "it happened days ago by the vehicle's clock: \(occurred.stdout)")
    }

    /// A lock change observed long ago and received now.
    static func recordLateUnlock(_ store: TelemetryStore) async throws {
        let vin = VIN("1HMFT000000000001")!
        let now = SystemWallClock().now()
        try await store.record(
            PollRecord(vin: vin, requestedAt: now, receivedAt: now, httpStatus: 200, latencyMilliseconds: 5),
            samples: [
                Sample(
                    vin: vin, property: "doors.locks_state", value: .text("locked"),
                    observedAt: harnessStart.adding(milliseconds: 20 * 60_000))
            ], detector: EventRules())
    }

    /// `--follow` prints events stored after it started, as JSON lines, and ends cleanly on SIGTERM.
    @Test func followPrintsNewEvents() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try await QueryCommandTests().knownDatabase(path)
        let output = directory + "/follow.out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["events", "--follow", "--database", path]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        try await Task.sleep(for: .milliseconds(1500))
        #expect((try String(contentsOfFile: output, encoding: .utf8)).isEmpty, "only events stored from now on")
        try await Self.recordLateUnlock(store)
        var text = ""
        let deadline = ContinuousClock.now + .seconds(15)
        while !text.contains("\n") && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            text = try String(contentsOfFile: output, encoding: .utf8)
        }
        #expect(text.hasPrefix("{\"id\":3,\"vin\":\"1HMFT000000000001\",\"type\":\"vehicle_locked\""), "\(text)")
        process.terminate()
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(process.terminationStatus == 0)
    }

    /// An unknown property gets the nearest name (exit 1), an unknown VIN says so, and an empty
    /// range says where the samples are (exit 0).
    @Test func historyExplainsEmptyAnswers() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        _ = try await QueryCommandTests().knownDatabase(path)
        let typo = try CLI.execute(["history", "1HMFT000000000001", "charging.battery_levl", "--database", path])
        #expect(typo.status == 1)
        #expect(typo.stderr.contains("did you mean charging.battery_level?"), "\(typo.stderr)")
        let stranger = try CLI.execute(["history", "1HMFT000000000009", "charging.battery_level", "--database", path])
        #expect(stranger.status == 1)
        #expect(stranger.stderr.contains("no vehicle 1HMFT000000000009"), "\(stranger.stderr)")
        let empty = try CLI.execute([
            "history", "1HMFT000000000001", "charging.battery_level", "--database", path, "--since",
            "2030-01-01T00:00:00Z",
        ])
        #expect(empty.status == 0)
        #expect(
            empty.stderr.contains("no samples of charging.battery_level for 1HMFT000000000001 from 2030-01-01"),
            "\(empty.stderr)")
    }

    /// A new database is readable by its owner and group only; output that cannot be written (a
    /// full disk) is an error (74), a reader that went away is not (0).
    @Test func newDatabasesAreGroupOnlyAndOutputFailuresAreErrors() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        _ = try await QueryCommandTests().knownDatabase(path)
        #expect(mode(path) == 0o640)
        func run(into output: FileHandle) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = CLI.binary
            process.arguments = ["events", "--database", path, "--after-id", "0"]
            process.standardOutput = output
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }
        let (full, message) = try run(into: try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full")))
        #expect(full == 74)
        #expect(message.contains("cannot write the output: No space left on device"), "\(message)")
        let closed = Pipe()
        try closed.fileHandleForReading.close()
        #expect(try run(into: closed.fileHandleForWriting).0 == 0, "a reader that exited is not an error")
    }

    /// `events deliveries` lists the outbox by status; `events redeliver --dead` queues the dead
    /// ones again (exit 1 when none matched; `--id` or `--dead` is required).
    @Test func deliveriesAreListedAndRedelivered() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try await QueryCommandTests().knownDatabase(path)
        await store.setOutboxSinks([OutboxSink(name: "ops")])
        try await Self.recordLateUnlock(store)
        let entry = try #require(try await store.deliveries(sink: "ops", status: nil, limit: 10).first)
        try await store.markFailed(
            sink: "ops", eventID: entry.event.id!, at: SystemWallClock().now(), httpStatus: 500, error: "HTTP 500",
            retryAt: nil)
        let dead = try CLI.execute(["events", "deliveries", "--database", path, "--status", "dead", "--csv"])
        #expect(dead.status == 0, "\(dead.stderr)")
        let rows = dead.stdout.split(separator: "\n")
        #expect(rows.count == 2 && rows[1].hasPrefix("ops,\(entry.event.id!),1HMFT000000000001,vehicle_locked,dead,1,"))
        #expect(rows[1].contains(",500,HTTP 500,"), "\(rows)")
        let again = try CLI.execute(["events", "redeliver", "--dead", "--database", path])
        #expect(again.status == 0 && again.stderr.contains("queued 1 delivery again"), "\(again.stderr)")
        #expect(try await store.dueDeliveries(sink: "ops", now: SystemWallClock().now(), limit: 10).count == 1)
        let failed = try CLI.execute(["events", "deliveries", "--database", path, "--status", "failed", "--json"])
        #expect(failed.stdout.contains("\"status\":\"failed\""), "\(failed.stdout)")
        #expect(try CLI.execute(["events", "redeliver", "--dead", "--database", path]).status == 1, "none dead now")
        #expect(try CLI.execute(["events", "redeliver", "--database", path]).status == 64)
        let list = try CLI.execute(["events", "--database", path, "--json"])
        #expect(list.stdout.split(separator: "\n").count == 3, "plain `events` still lists: \(list.stdout)")
    }

    /// A backup is never readable by more users than the database.
    @Test func backupKeepsTheDatabaseMode() async throws {
        let directory = try workspace()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        _ = try await QueryCommandTests().knownDatabase(path)
        for wanted: mode_t in [0o640, 0o600] {
            chmod(path, wanted)
            let copy = directory + "/copy-\(wanted).sqlite"
            let result = try CLI.execute(["backup", copy, "--database", path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(mode(copy) == wanted)
        }
        let unknownFlag = try CLI.execute(["backup", directory + "/x.sqlite", "--database", path, "--json"])
        #expect(unknownFlag.status == 64, "--json does nothing for a backup: refused")
    }
}

extension CommandLineTests {
    /// `poll --store` reports the samples the polls row counts: unchanged values are not stored
    /// again, so a second poll right after the first writes fewer.
    @Test func pollStoreCountsWhatThePollsRowCounts() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            let cli = CLI(config: try makeConfig(port: h.port, family: .platform, database: h.databasePath))
            defer { try? FileManager.default.removeItem(atPath: cli.config) }
            for _ in 0..<2 {
                let poll = try cli.run(["poll", vin.rawValue, "--store"])
                #expect(poll.status == 0, "\(poll.stderr)")
                let written = try Connection(path: h.databasePath).scalarInt(
                    "SELECT samples_written FROM polls ORDER BY id DESC LIMIT 1")
                let line = try #require(poll.stderr.split(separator: "\n").first { $0.hasPrefix("stored ") })
                let words = line.split(separator: " ")
                #expect(words.count > 1 && Int64(words[1]) == written, "\(line) against \(String(describing: written))")
            }
        }
    }
}
