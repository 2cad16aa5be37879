import FleetDaemon
import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// The query commands against a known database, as a user runs them.
@Suite(.serialized) struct QueryCommandTests {
    /// A database with two vehicles: a battery series, locks, a position and two events.
    func knownDatabase(_ path: String) async throws -> TelemetryStore {
        let store = try TelemetryStore(path: path)
        let a = VIN("1HMFT000000000001")!, b = VIN("1HMFT000000000002")!
        func record(_ vin: VIN, minute: Int64, _ samples: [(String, String, SampleValue, String?)]) async throws {
            let time = harnessStart.adding(milliseconds: minute * 60_000)
            try await store.record(
                PollRecord(vin: vin, requestedAt: time, receivedAt: time, httpStatus: 200, latencyMilliseconds: 5),
                samples: samples.map {
                    Sample(vin: vin, property: $0.0, instance: $0.1, value: $0.2, unit: $0.3, observedAt: time)
                }, detector: EventRules())
        }
        try await record(
            a, minute: 0,
            [
                ("charging.battery_level", "", .number(60), "percent"), ("doors.locks_state", "", .text("locked"), nil),
                ("vehicle_location.coordinates.latitude", "", .number(52.520008), nil),
                ("vehicle_location.coordinates.longitude", "", .number(13.404954), nil),
            ])
        try await record(
            a, minute: 10,
            [
                ("charging.battery_level", "", .number(55.5), "percent"),
                ("doors.locks_state", "", .text("unlocked"), nil),
            ])
        try await record(
            b, minute: 5,
            [
                ("charging.battery_level", "", .number(30), "percent"),
                ("charging.status", "", .text("not_charging"), nil),
            ])
        try await record(b, minute: 15, [("charging.status", "", .text("charging"), nil)])
        return store
    }

    @Test func statusHistoryEventsBackupAndPurge() async throws {
        let directory = NSTemporaryDirectory() + "ft-query-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try await knownDatabase(path)

        let status = try CLI.execute(["status", "--database", path, "--csv"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(
            status.stdout == """
                vin,last_seen,battery_percent,range_km,locks,charging,latitude,longitude,stale_values,health,reason,last_polled,next_due
                1HMFT000000000001,2026-11-28T06:10:00.000Z,55.5,,unlocked,,52.520008,13.404954,4,active,,2026-11-28T06:10:00.000Z,
                1HMFT000000000002,2026-11-28T06:15:00.000Z,30,,,charging,,,2,active,,2026-11-28T06:15:00.000Z,

                """)

        let history = try CLI.execute([
            "history", "1HMFT000000000001", "charging.battery_level", "--database", path, "--json",
        ])
        #expect(history.stdout.split(separator: "\n").count == 2)
        #expect(history.stdout.contains(#""value":55.5"#))
        let since = try CLI.execute([
            "history", "1HMFT000000000001", "charging.battery_level", "--database", path, "--since",
            "2026-11-28T06:05:00Z",
        ])
        #expect(since.stdout.split(separator: "\n").count == 2, "header and one row")

        let events = try CLI.execute(["events", "--database", path, "--csv"])
        #expect(
            events.stdout.split(separator: "\n").map { $0.split(separator: ",")[2] } == [
                "type", "vehicle_unlocked", "charging_started",
            ])
        let filtered = try CLI.execute(["events", "--database", path, "--vin", "1HMFT000000000002", "--json"])
        #expect(filtered.stdout.split(separator: "\n").count == 1)
        let badType = try CLI.execute(["events", "--database", path, "--type", "door_exploded"])
        #expect(badType.status == 64)

        // Backup while the store is open and writing.
        let copy = directory + "/copy.sqlite"
        async let backup = CLI.execute(["backup", copy, "--database", path])
        for minute in 20..<40 {
            let time = harnessStart.adding(milliseconds: Int64(minute) * 60_000)
            try await store.record(
                PollRecord(
                    vin: VIN("1HMFT000000000001")!, requestedAt: time, receivedAt: time, httpStatus: 200,
                    latencyMilliseconds: 1),
                samples: [
                    Sample(
                        vin: VIN("1HMFT000000000001")!, property: "charging.battery_level",
                        value: .number(Double(minute)), unit: "percent", observedAt: time)
                ], detector: EventRules())
        }
        #expect(try await backup.status == 0)
        let copied = try Connection(path: copy)
        #expect(try copied.scalarText("PRAGMA integrity_check") == "ok")
        #expect((try copied.scalarInt("SELECT count(*) FROM samples") ?? 0) >= 9)

        // Off a terminal, purge needs --yes: nothing is removed without it.
        let unconfirmed = try CLI.execute(["purge", "1HMFT000000000001", "--database", path])
        #expect(unconfirmed.status == 64, "\(unconfirmed.stderr)")
        #expect(unconfirmed.stderr.contains("--yes"), "\(unconfirmed.stderr)")
        #expect(try await store.status().count == 2)
        let purge = try CLI.execute(["purge", "1HMFT000000000001", "--database", path, "--yes"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(
            try await store.history(
                vin: VIN("1HMFT000000000001")!, property: "charging.battery_level", since: nil, until: nil
            ).isEmpty)
        #expect(try await store.status().map(\.vin.rawValue) == ["1HMFT000000000002"])
    }

    /// `raw VIN [--at T]` prints an archived body byte for byte; `--list` shows what is kept.
    @Test func rawPrintsTheArchivedBodyAsItArrived() async throws {
        let directory = NSTemporaryDirectory() + "ft-raw-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/t.sqlite"
        let store = try TelemetryStore(path: path)
        let vin = VIN("1HMFT000000000001")!
        var bodies: [String] = []
        for minute in 0..<12 {
            let time = harnessStart.adding(milliseconds: Int64(minute) * 60_000)
            var record = PollRecord(
                vin: vin, requestedAt: time, receivedAt: time, httpStatus: minute == 5 ? 503 : 200,
                latencyMilliseconds: 1)
            let body = #"{"charging":{"battery_level":{"data":0.\#(50 + minute)}},"note":"Straße 🚗","n":\#(minute)}"#
            record.rawBody = Array(body.utf8)
            bodies.append(body)
            try await store.record(record, samples: [], detector: EventRules())
        }
        let newest = try CLI.execute(["raw", vin.rawValue, "--database", path])
        #expect(newest.status == 0, "\(newest.stderr)")
        #expect(newest.stdout == bodies[11])
        #expect(newest.stderr.contains("HTTP 200"), "\(newest.stderr)")
        let at = try CLI.execute([
            "raw", vin.rawValue, "--database", path, "--at",
            harnessStart.adding(milliseconds: 5 * 60_000 + 30_000).iso8601,
        ])
        #expect(at.status == 0, "\(at.stderr)")
        #expect(at.stdout == bodies[5])
        #expect(at.stderr.contains("HTTP 503"), "\(at.stderr)")
        let list = try CLI.execute(["raw", vin.rawValue, "--database", path, "--list", "--limit", "2", "--csv"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.hasPrefix("received_at,http_status,bytes,stored_bytes\n"), "\(list.stdout)")
        #expect(list.stdout.split(separator: "\n").count == 3, "\(list.stdout)")
        let before = try CLI.execute([
            "raw", vin.rawValue, "--database", path, "--at", harnessStart.adding(milliseconds: -1).iso8601,
        ])
        #expect(before.status == 1)
        #expect(before.stdout.isEmpty)
        #expect(before.stderr.contains("no archived response"), "\(before.stderr)")
        let unknown = try CLI.execute(["raw", "NOTAVIN", "--database", path])
        #expect(unknown.status == 64, "\(unknown.stderr)")

        // A damaged body: named when asked for, still listed, and `reprocess` leaves its vehicle
        // (and the rows it produced) as they were.
        let damagedAt = harnessStart.adding(milliseconds: 5 * 60_000)
        try Connection(path: path).execute(
            "UPDATE raw_responses SET body = x'00ff00ff' WHERE received_at = \(damagedAt.millisecondsSince1970)")
        let damaged = try CLI.execute(["raw", vin.rawValue, "--database", path, "--at", damagedAt.iso8601])
        #expect(damaged.status == 1)
        #expect(
            damaged.stderr.contains("does not decode") && damaged.stderr.contains(vin.rawValue), "\(damaged.stderr)")
        let listed = try CLI.execute(["raw", vin.rawValue, "--database", path, "--list", "--csv"])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.split(separator: "\n").count == 13, "\(listed.stdout)")
        let reprocess = try CLI.execute(["reprocess", "--database", path])
        #expect(reprocess.status == 0, "\(reprocess.stderr)")
        #expect(reprocess.stderr.contains("left as it was"), "\(reprocess.stderr)")
    }
}
