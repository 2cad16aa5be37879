import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// The in-memory `latest` rows (``LatestCache``) must never make a poll compare with values the
/// database does not hold.
@Suite struct LatestCacheTests {
    private static let lock = "doors.locks.lock_state"

    private func lockSample(_ state: String, at time: Timestamp) -> [Sample] {
        [Sample(vin: vin, property: Self.lock, instance: "front_left", value: .text(state), observedAt: time)]
    }

    /// The same random polls through a store with the cache and one without: the same events,
    /// sample rows and `latest` rows.
    @Test func cachedAndUncachedStoresAgree() async throws {
        let cachedDB = TemporaryDatabase()
        let plainDB = TemporaryDatabase()
        let cached = try TelemetryStore(path: cachedDB.path)
        let plain = try TelemetryStore(path: plainDB.path, latestCacheVehicles: 0)
        let vins = (1...3).map { VIN("1HMFT00000000000\($0)")! }
        var random = SplitMix64(seed: 42)
        var clock = t0
        for round in 0..<300 {
            clock = clock.adding(milliseconds: 60_000)
            let car = vins[Int.random(in: 0..<vins.count, using: &random)]
            // Observation times sometimes repeat or go back (a response older than the stored one).
            let observed = clock.adding(milliseconds: Int64.random(in: -180_000...0, using: &random))
            var samples = [
                Sample(
                    vin: car, property: Self.lock, instance: "front_left",
                    value: .text(Bool.random(using: &random) ? "locked" : "unlocked"), observedAt: observed),
                Sample(
                    vin: car, property: "charging.battery_level",
                    value: .number(Double(Int.random(in: 10...30, using: &random))), unit: "percent",
                    observedAt: observed),
                Sample(
                    vin: car, property: "charging.status",
                    value: .text(["charging", "charging_complete", "disconnected"].randomElement(using: &random)!),
                    observedAt: observed),
                // No timestamp of its own: stored only when the value changes.
                Sample(
                    vin: car, property: "diagnostics.odometer", value: .number(Double(round / 7)), unit: "km",
                    observedAt: clock, timeSource: .received),
            ]
            if Bool.random(using: &random) { samples.reverse() }
            let failures =
                round % 11 == 0
                ? [PropertyFailure(property: "charging.status", reason: .rateLimit, description: nil, observedAt: nil)]
                : []
            let record = PollRecord(
                vin: car, requestedAt: clock, receivedAt: clock, httpStatus: 200, latencyMilliseconds: 10)
            if round % 3 == 0 {
                // Through the group commit's batch path as well.
                let write = PollWrite(poll: record, samples: samples, failures: failures)
                _ = try await cached.record(batch: [write], detector: EventRules())
                _ = try await plain.record(batch: [write], detector: EventRules())
            } else {
                try await cached.record(record, samples: samples, failures: failures, detector: EventRules())
                try await plain.record(record, samples: samples, failures: failures, detector: EventRules())
            }
        }
        func strip(_ events: [Event]) -> [String] {
            events.map {
                "\($0.vin) \($0.type) \($0.instance) \($0.occurredAt) \($0.previousValue ?? "-") \($0.newValue)"
            }
        }
        let cachedEvents = try await cached.events()
        #expect(!cachedEvents.isEmpty)
        #expect(strip(cachedEvents) == strip(try await plain.events()))
        #expect(try await cached.summary().samples == (try await plain.summary().samples))
        for car in vins {
            #expect(try await cached.latestValues(vin: car) == (try await plain.latestValues(vin: car)))
            for property in [Self.lock, "charging.battery_level", "charging.status", "diagnostics.odometer"] {
                let instance = property == Self.lock ? "front_left" : ""
                #expect(
                    try await cached.samples(vin: car, property: property, instance: instance)
                        == (try await plain.samples(vin: car, property: property, instance: instance)))
            }
        }
    }

    /// A commit by another connection (here: `latest` changed as an import would change it) is
    /// seen by the next poll: the vehicle's rows are read again, not taken from memory.
    @Test func commitOfAnotherConnectionIsSeen() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: t0), samples: lockSample("locked", at: t0), detector: EventRules())

        let other = try Connection(path: db.path)
        try other.execute(
            "UPDATE series SET value_text = 'unlocked', observed_at = observed_at + 1000 WHERE current = 1")

        // Unlocked after unlocked: no change, so no event (the stale memory said "locked").
        let later = t0.adding(milliseconds: 120_000)
        let result = try await store.record(
            poll(at: later), samples: lockSample("unlocked", at: later), detector: EventRules())
        #expect(result.events.isEmpty)
    }

    /// A poll whose write is rolled back leaves nothing in memory: the next poll compares with
    /// what the database holds (the value before the rolled-back poll).
    @Test func rolledBackWritesAreForgotten() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: t0), samples: lockSample("locked", at: t0), detector: EventRules())
        // Any `door_unlocked` event fails its poll, after `latest` was written.
        try await store.withConnection {
            try $0.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.type = 'door_unlocked' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        }

        let t1 = t0.adding(milliseconds: 60_000)
        let batch = try await store.record(
            batch: [PollWrite(poll: poll(at: t1), samples: lockSample("unlocked", at: t1))], detector: EventRules())
        guard case .failed = batch[0] else {
            Issue.record("the batch entry should have failed, got \(batch[0])")
            return
        }
        let t2 = t0.adding(milliseconds: 120_000)
        await #expect(throws: SQLiteError.self) {
            try await store.record(poll(at: t2), samples: lockSample("unlocked", at: t2), detector: EventRules())
        }
        try await store.withConnection { try $0.execute("DROP TRIGGER refuse") }

        // Still "locked" in the database: unlocking now is a change, and its event is stored.
        let t3 = t0.adding(milliseconds: 180_000)
        let result = try await store.record(
            poll(at: t3), samples: lockSample("unlocked", at: t3), detector: EventRules())
        #expect(result.events.map(\.type) == [.doorUnlocked])
        #expect(try await store.latestValues(vin: vin).values.map(\.value) == [.text("unlocked")])
    }

    /// A full cache replaces a vehicle instead of growing.
    @Test func cacheHoldsAtMostItsCapacity() {
        var cache = LatestCache(capacity: 2)
        for index in 1...3 {
            cache.store(LatestCache.Entry(values: [:], flagged: false), for: VIN("1HMFT00000000000\(index)")!)
        }
        #expect(cache.count == 2)
        #expect(cache[VIN("1HMFT000000000003")!] != nil)
    }
}
