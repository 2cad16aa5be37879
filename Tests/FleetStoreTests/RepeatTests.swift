import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// A value re-observed unchanged is not a new history row: it moves the series' newest
/// observation, and a heartbeat row is written at most every `repeat_heartbeat`.
@Suite struct RepeatTests {
    /// A parked vehicle: the same values every poll, each with a newer timestamp.
    static func parked(at time: Timestamp) -> [Sample] {
        [
            Sample(
                vin: vin, property: "diagnostics.odometer", value: .number(12_345.6), unit: "kilometers",
                observedAt: time),
            Sample(vin: vin, property: "charging.battery_level", value: .number(80), unit: "percent", observedAt: time),
            Sample(
                vin: vin, property: "doors.locks.lock_state", instance: "front_left", value: .text("locked"),
                observedAt: time),
        ]
    }

    static func minutes(_ n: Int) -> Timestamp { t0.adding(milliseconds: Int64(n) * 60_000) }

    /// Polled 100 times every 5 minutes (8 h 15 min): one row per series plus one heartbeat an
    /// hour; `latest` follows every poll, and `vehicle_silent` does not fire while it reports.
    @Test func parkedVehicleStoresOneRowPlusHeartbeats() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var written = 0
        for n in 0..<100 {
            let time = Self.minutes(n * 5)
            let result = try await store.record(poll(at: time), samples: Self.parked(at: time), detector: EventRules())
            written += result.samplesWritten
        }
        let hourly = stride(from: 0, through: 495, by: 60).map { Self.minutes($0) }
        let odometer = try await store.samples(vin: vin, property: "diagnostics.odometer")
        #expect(odometer.map(\.observedAt) == hourly, "the first row, then one every hour")
        #expect(odometer.allSatisfy { $0.value == .number(12_345.6) && $0.unit == "kilometers" })
        #expect(written == 3 * hourly.count)

        // The newest observation is the last poll's, so its age and staleness are right.
        let last = Self.minutes(99 * 5)
        let latest = try await store.latestValues(vin: vin)
        #expect(latest.values.allSatisfy { $0.observedAt == last })
        let connection = try Connection(path: db.path)
        #expect(
            try connection.scalarInt("SELECT min(observed_at) FROM latest WHERE vin = ?1", [.text(vin.rawValue)])
                == last.millisecondsSince1970)
        #expect(
            try await store.detectSilentVehicles(now: last.adding(milliseconds: 3_600_000), detector: EventRules())
                .isEmpty, "it kept reporting: not silent")
        // A range query inside the day still sees the value, from the heartbeat before it.
        let window = try await store.history(
            vin: vin, property: "charging.battery_level", since: Self.minutes(130), until: Self.minutes(200))
        #expect(window.map(\.observedAt) == [Self.minutes(180)])
    }

    /// A change is stored at once, however recent the last row; the heartbeat counts from it.
    @Test func aChangeIsStoredAndRestartsTheHeartbeat() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        for n in [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100] {
            let time = Self.minutes(n)
            let level = n >= 30 ? 79.0 : 80
            try await store.record(
                poll(at: time),
                samples: [
                    Sample(
                        vin: vin, property: "charging.battery_level", value: .number(level), unit: "percent",
                        observedAt: time)
                ], detector: EventRules())
        }
        let rows = try await store.samples(vin: vin, property: "charging.battery_level")
        #expect(rows.map(\.observedAt) == [Self.minutes(0), Self.minutes(30), Self.minutes(90)])
        #expect(rows.map(\.value) == [.number(80), .number(79), .number(79)])
    }

    /// `repeat_heartbeat: 0` keeps every observation with a new time, as before the setting; the
    /// setting is kept in the file for every later store.
    @Test func zeroHeartbeatKeepsEveryRepeat() async throws {
        let db = TemporaryDatabase()
        do {
            let store = try TelemetryStore(path: db.path)
            try await store.setRepeatHeartbeat(seconds: 0)
        }
        let store = try TelemetryStore(path: db.path)
        for n in 0..<10 {
            let time = Self.minutes(n * 5)
            try await store.record(poll(at: time), samples: Self.parked(at: time), detector: EventRules())
        }
        #expect(try await store.samples(vin: vin, property: "diagnostics.odometer").count == 10)
    }

    /// Repeats change no event: a door that stays locked fires nothing, a change fires once.
    @Test func eventsAreUnaffected() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var types: [EventType] = []
        for n in 0..<20 {
            let time = Self.minutes(n * 5)
            var samples = Self.parked(at: time)
            if n >= 12 { samples[2].value = .text("unlocked") }
            types += try await store.record(poll(at: time), samples: samples, detector: EventRules()).events.map(\.type)
        }
        #expect(types == [.doorUnlocked])
        #expect(try await store.events().count == 1)
    }
}
