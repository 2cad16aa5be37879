import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// Every view and example query that README.md and docs/schema.md document, on a fixed input:
/// the names users query keep their columns and rows whatever the tables under them.
@Suite struct DocumentedQueryTests {
    static let a = VIN("1HMFT000000000001")!
    static let b = VIN("1HMFT000000000002")!

    /// Two vehicles polled 12 times a minute apart: one drives (position and odometer move), then
    /// parks and charges to completion; the other stays parked, its doors unlocked then locked.
    /// Several values repeat with a newer observation time.
    static func fixedInput(_ store: TelemetryStore) async throws {
        let start = Timestamp(iso8601: "2026-11-28T06:00:00Z")!
        for n in 0..<12 {
            let time = start.adding(milliseconds: Int64(n) * 60_000)
            let driving = n < 5
            let levelA = n < 6 ? 40.0 : min(40 + Double(n - 5) * 12, 100)
            let samplesA: [Sample] = [
                Sample(
                    vin: a, property: "charging.battery_level", value: .number(levelA), unit: "percent",
                    observedAt: time),
                Sample(
                    vin: a, property: "charging.status",
                    value: .text(n < 6 ? "not_charging" : levelA >= 100 ? "charging_complete" : "charging"),
                    observedAt: time),
                Sample(
                    vin: a, property: "diagnostics.odometer", value: .number(1000 + Double(min(n, 5)) * 1.5),
                    unit: "kilometers", observedAt: time),
                Sample(
                    vin: a, property: "vehicle_location.coordinates.latitude",
                    value: .number(52.5 + (driving ? Double(n) * 0.001 : 0.005)), observedAt: time),
                Sample(
                    vin: a, property: "vehicle_location.coordinates.longitude",
                    value: .number(13.4 + (driving ? Double(n) * 0.002 : 0.010)), observedAt: time),
            ]
            let samplesB: [Sample] = [
                Sample(
                    vin: b, property: "charging.battery_level", value: .number(77), unit: "percent",
                    observedAt: time),
                Sample(
                    vin: b, property: "doors.locks.lock_state", instance: "front_left",
                    value: .text(n >= 3 && n < 8 ? "unlocked" : "locked"), observedAt: time),
                Sample(
                    vin: b, property: "doors.locks.lock_state", instance: "front_right", value: .text("locked"),
                    observedAt: time),
                Sample(
                    vin: b, property: "diagnostics.tire_pressures.pressure", instance: "front_left",
                    value: .number(230 + Double(n % 2)), unit: "kilopascals", observedAt: time,
                    sourceUnit: "bars"),
            ]
            for (vin, samples) in [(a, samplesA), (b, samplesB)] {
                try await store.record(
                    PollRecord(
                        vin: vin, requestedAt: time, receivedAt: time.adding(milliseconds: 250), httpStatus: 200,
                        latencyMilliseconds: 250, requestID: "r\(n)"),
                    samples: samples, detector: EventRules())
            }
        }
    }

    /// The documented queries, with `now` fixed where an example reads the clock.
    static let queries: [String] = [
        "SELECT * FROM samples ORDER BY vin, property, instance, observed_at",
        "SELECT * FROM latest ORDER BY vin, property, instance",
        """
        SELECT vin, property, instance, value, unit, observed_at, failure_reason, failed_at FROM latest_view
        ORDER BY vin, property, instance
        """,
        "SELECT * FROM events_view ORDER BY id",
        "SELECT * FROM position_track ORDER BY vin, observed_at_ms",
        "SELECT * FROM battery_history ORDER BY vin, observed_at_ms",
        "SELECT id, vin, started_at, ended_at, minutes, start_level, end_level, end_reason FROM charging_sessions_view",
        """
        SELECT vin, value_num AS battery_percent, datetime(observed_at / 1000, 'unixepoch') AS at
        FROM latest WHERE property = 'charging.battery_level' ORDER BY vin
        """,
        """
        SELECT observed_at AS time, value_num AS km FROM samples
        WHERE vin = '1HMFT000000000001' AND property = 'diagnostics.odometer' ORDER BY observed_at
        """,
        """
        SELECT vin, instance FROM latest WHERE property = 'doors.locks.lock_state' AND value_text = 'unlocked'
        ORDER BY vin, instance
        """,
        """
        SELECT vin, datetime(occurred_at / 1000, 'unixepoch') FROM events
        WHERE type = 'charging_completed'
          AND occurred_at >= strftime('%s', '2026-11-28', 'start of day') * 1000
          AND occurred_at < strftime('%s', '2026-11-28', 'start of day', '+1 day') * 1000
        """,
        "SELECT http_status, count(*) FROM polls GROUP BY http_status",
        """
        SELECT vin, count(*), min(observed_at), max(observed_at) FROM samples
        WHERE observed_at >= 1795845780000 AND observed_at < 1795846200000 GROUP BY vin ORDER BY vin
        """,
    ]

    /// The rows of `sql`, one line each, columns as SQL literals.
    static func rows(_ connection: Connection, _ sql: String) throws -> [String] {
        let statement = try connection.makeStatement(sql)
        var lines: [String] = []
        while try statement.step() {
            var columns: [String] = []
            for column in 0..<statement.columnCount {
                switch statement.value(at: column) {
                case .null: columns.append("NULL")
                case .integer(let value): columns.append(String(value))
                case .real(let value): columns.append(String(value))
                case .text(let value): columns.append("'\(value)'")
                case .blob(let value): columns.append("x'\(value.map { String(format: "%02x", $0) }.joined())'")
                }
            }
            lines.append(columns.joined(separator: "|"))
        }
        return lines
    }

    /// With every repeat kept (`repeat_heartbeat: 0`), each documented query returns exactly the
    /// rows it returned before the history was narrowed (recorded from schema 11).
    @Test func everyDocumentedQueryReturnsTheRowsItDidBefore() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.setRepeatHeartbeat(seconds: 0)
        try await Self.fixedInput(store)
        let connection = try Connection(path: db.path)
        var output: [String] = []
        for query in Self.queries {
            output.append("-- " + query.split(separator: "\n").joined(separator: " "))
            output += try Self.rows(connection, query)
        }
        let text = output.joined(separator: "\n") + "\n"
        let expectedURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("DocumentedQueries.expected")
        if ProcessInfo.processInfo.environment["RECORD_DOCUMENTED_QUERIES"] != nil {
            try text.write(to: expectedURL, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        let (got, want) = (text.split(separator: "\n"), expected.split(separator: "\n"))
        for (index, line) in want.enumerated() where index >= got.count || got[index] != line {
            Issue.record(
                "line \(index + 1): expected \(line), got \(index < got.count ? String(got[index]) : "nothing")")
            break
        }
        #expect(got.count == want.count)
    }
}
