import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// The outbox: events queued per sink in the transaction that stores them, delivered in order
/// per vehicle, retried, given up and queued again.
@Suite struct OutboxTests {
    /// Locks, then unlocks, `vin`'s front-left door: two events (the first poll sets the baseline).
    func recordLockChanges(_ store: TelemetryStore, vin: VIN = vin, from start: Timestamp = t0) async throws {
        for (index, state) in ["locked", "unlocked", "locked"].enumerated() {
            let time = start.adding(milliseconds: Int64(index) * 60_000)
            let samples = lockSamples(state, at: time).map { sample -> Sample in
                var sample = sample
                sample.vin = vin
                return sample
            }
            var record = poll(at: time)
            record.vin = vin
            _ = try await store.record(record, samples: samples, detector: EventRules())
        }
    }

    /// Purging the vehicle that owns the newest events does not hand their ids out again: a
    /// receiver deduplicating by id (`evt_<id>`) never drops a new event. It holds after a reopen.
    @Test func eventIDsAreNeverReused() async throws {
        let db = TemporaryDatabase()
        let other = VIN("1HMFT000000000002")!
        do {
            let store = try TelemetryStore(path: db.path)
            try await recordLockChanges(store)
            try await recordLockChanges(store, vin: other)
            #expect(try await store.events().compactMap(\.id) == [1, 2, 3, 4])
            _ = try await store.purge(vin: other)
        }
        let reopened = try TelemetryStore(path: db.path)
        try await recordLockChanges(reopened, from: t0.adding(milliseconds: 3_600_000))
        let ids = try await reopened.events().compactMap(\.id)
        #expect(ids == [1, 2, 5, 6], "after the purged 3 and 4")
    }

    @Test func eventsAreQueuedForEachSinkThatTakesThem() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        await store.setOutboxSinks([
            OutboxSink(name: "all"), OutboxSink(name: "unlocks", types: [.doorUnlocked]),
            OutboxSink(name: "other-vehicle", vins: [VIN("1HMFT000000000002")!]),
        ])
        try await recordLockChanges(store)
        let stored = try await store.events()
        #expect(stored.map(\.type) == [.doorUnlocked, .doorLocked])
        let all = try await store.deliveries(sink: "all", status: nil, limit: 10)
        #expect(all.map(\.event.id) == stored.reversed().map(\.id), "newest first")
        #expect(all.allSatisfy { $0.status == .pending && $0.attempts == 0 })
        #expect(all.first?.createdAt == stored.last?.detectedAt)
        #expect(
            try await store.deliveries(sink: "unlocks", status: nil, limit: 10).map(\.event.type) == [.doorUnlocked])
        #expect(try await store.deliveries(sink: "other-vehicle", status: nil, limit: 10).isEmpty)
        #expect(try await store.outboxDepth() == ["all": 2, "unlocks": 1])
    }

    @Test func nothingIsQueuedWithoutSinks() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await recordLockChanges(store)
        #expect(try await store.events().count == 2)
        #expect(try await store.deliveries(sink: nil, status: nil, limit: 10).isEmpty)
    }

    /// A vehicle's events go out in order: while its first waits for a retry, its second is not
    /// due; another vehicle's are.
    @Test func aRetryHoldsBackTheVehiclesLaterEventsOnly() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        await store.setOutboxSinks([OutboxSink(name: "hook")])
        let other = VIN("1HMFT000000000002")!
        try await recordLockChanges(store)
        try await recordLockChanges(store, vin: other)
        let now = t0.adding(milliseconds: 3_600_000)
        let due = try await store.dueDeliveries(sink: "hook", now: now, limit: 10)
        #expect(due.count == 4)
        #expect(due.map(\.event.id) == due.map(\.event.id).sorted(by: { ($0 ?? 0) < ($1 ?? 0) }))
        let first = try #require(due.first { $0.event.vin == vin })
        try await store.markFailed(
            sink: "hook", eventID: first.event.id!, at: now, httpStatus: 503, error: "HTTP 503",
            retryAt: now.adding(milliseconds: 30_000))
        let held = try await store.dueDeliveries(sink: "hook", now: now, limit: 10)
        #expect(held.map(\.event.vin) == [other, other], "vehicle 1 waits behind its retry")
        let later = try await store.dueDeliveries(sink: "hook", now: now.adding(milliseconds: 30_000), limit: 10)
        #expect(later.count == 4)
        let retried = try #require(later.first { $0.event.id == first.event.id })
        #expect(retried.attempts == 1 && retried.lastHTTPStatus == 503 && retried.lastError == "HTTP 503")
    }

    @Test func deliveredDeadAndRedelivered() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        await store.setOutboxSinks([OutboxSink(name: "hook")])
        try await recordLockChanges(store)
        let now = t0.adding(milliseconds: 3_600_000)
        let due = try await store.dueDeliveries(sink: "hook", now: now, limit: 10)
        try await store.markDelivered(sink: "hook", eventID: due[0].event.id!, at: now, httpStatus: 204)
        try await store.markFailed(
            sink: "hook", eventID: due[1].event.id!, at: now, httpStatus: nil, error: "connection refused",
            retryAt: nil)
        #expect(try await store.dueDeliveries(sink: "hook", now: now, limit: 10).isEmpty)
        let delivered = try await store.deliveries(sink: "hook", status: .delivered, limit: 10)
        #expect(delivered.map(\.event.id) == [due[0].event.id] && delivered.first?.deliveredAt == now)
        let dead = try await store.deliveries(sink: "hook", status: .dead, limit: 10)
        #expect(dead.map(\.event.id) == [due[1].event.id] && dead.first?.lastError == "connection refused")
        #expect(try await store.outboxDepth().isEmpty)

        #expect(try await store.redeliver(eventID: nil, sink: "hook", now: now) == 1, "every dead entry")
        let again = try await store.dueDeliveries(sink: "hook", now: now, limit: 10)
        #expect(again.map(\.event.id) == [due[1].event.id] && again.first?.attempts == 1)
        #expect(try await store.redeliver(eventID: due[0].event.id, sink: nil, now: now) == 1, "a delivered one, by id")
        #expect(try await store.dueDeliveries(sink: "hook", now: now, limit: 10).count == 2)
    }

    /// The outbox is part of the poll's transaction: a purge takes a vehicle's entries with its
    /// events, and a fresh store (a restart) finds the pending ones where they were.
    @Test func entriesSurviveARestartAndGoWithAPurge() async throws {
        let db = TemporaryDatabase()
        do {
            let store = try TelemetryStore(path: db.path)
            await store.setOutboxSinks([OutboxSink(name: "hook")])
            try await recordLockChanges(store)
        }
        let reopened = try TelemetryStore(path: db.path)
        #expect(
            try await reopened.dueDeliveries(sink: "hook", now: t0.adding(milliseconds: 3_600_000), limit: 10).count
                == 2)
        _ = try await reopened.purge(vin: vin)
        #expect(try await reopened.deliveries(sink: nil, status: nil, limit: 10).isEmpty)
        let view = try Connection(path: db.path).scalarInt("SELECT count(*) FROM outbox_view")
        #expect(view == 0)
    }
}
