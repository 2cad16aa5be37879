import FleetEvents
import FleetModel
@testable import FleetStore
import Testing

func at(_ minute: Int64) -> Timestamp { t0.adding(milliseconds: minute * 60_000) }

func charging(_ status: String, battery: Double, minute: Int64, rate: Double? = nil) -> [Sample] {
    var samples = [
        Sample(vin: vin, property: "charging.status", value: .text(status), observedAt: at(minute)),
        Sample(
            vin: vin, property: "charging.battery_level", value: .number(battery), unit: "percent",
            observedAt: at(minute)),
    ]
    if let rate {
        samples.append(
            Sample(
                vin: vin, property: "charging.charging_rate", value: .number(rate), unit: "kilowatts",
                observedAt: at(minute)))
    }
    return samples
}

@Suite struct LifecycleEventTests {
    /// A charging session survives a restart in its middle: one session, no duplicate, no miss.
    @Test func chargingSessionAcrossARestart() async throws {
        let db = TemporaryDatabase()
        do {
            let store = try TelemetryStore(path: db.path)
            try await store.record(
                poll(at: at(0)), samples: charging("not_charging", battery: 40, minute: 0), detector: EventRules())
            let started = try await store.record(
                poll(at: at(1)), samples: charging("charging", battery: 41, minute: 1, rate: 11), detector: EventRules()
            )
            #expect(started.events.map(\.type) == [.chargingStarted])
        }
        let store = try TelemetryStore(path: db.path)
        let again = try await store.record(
            poll(at: at(1)), samples: charging("charging", battery: 41, minute: 1, rate: 11), detector: EventRules())
        try await store.record(
            poll(at: at(31)), samples: charging("charging", battery: 50, minute: 31, rate: 7), detector: EventRules())
        #expect(again.events.isEmpty, "the same observation after a restart is no new event")
        let done = try await store.record(
            poll(at: at(90)), samples: charging("charging_complete", battery: 80, minute: 90, rate: 0),
            detector: EventRules())
        #expect(done.events.map(\.type) == [.chargingCompleted])
        let sessions = try await store.chargingSessions()
        // 11 kW for 30 min, then 7 kW for 59 min.
        #expect(
            sessions == [
                ChargingSession(
                    vin: vin, startedAt: at(1), endedAt: at(90), startLevel: 41, endLevel: 80, endReason: "completed",
                    energyKWh: 12.383)
            ])
    }

    @Test func unobservedEndClosesTheSessionAtTheTimeout() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(
            poll(at: at(0)), samples: charging("not_charging", battery: 40, minute: 0), detector: EventRules())
        try await store.record(
            poll(at: at(1)), samples: charging("charging", battery: 41, minute: 1), detector: EventRules())
        #expect(try await store.closeStaleChargingSessions(now: at(60), timeout: .seconds(3600)) == 0)
        #expect(try await store.closeStaleChargingSessions(now: at(61), timeout: .seconds(3600)) == 1)
        let session = try #require(try await store.chargingSessions().first)
        #expect(session.endReason == "timeout" && session.endedAt == at(61))
    }

    @Test func silentThenReporting() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(
            poll(at: at(0)), samples: charging("not_charging", battery: 40, minute: 0), detector: EventRules())
        #expect(try await store.detectSilentVehicles(now: at(359), detector: EventRules()).isEmpty)
        let silent = try await store.detectSilentVehicles(now: at(400), detector: EventRules())
        #expect(silent.map(\.type) == [.vehicleSilent])
        #expect(silent.first?.occurredAt == at(360).adding(milliseconds: 40), "the last receive time + 6 h")
        #expect(try await store.detectSilentVehicles(now: at(500), detector: EventRules()).isEmpty, "once")
        let back = try await store.record(
            poll(at: at(510)), samples: charging("not_charging", battery: 40, minute: 510), detector: EventRules())
        #expect(back.events.map(\.type) == [.vehicleReporting])
        #expect(try await store.ruleState(vin: vin)[.silent] == nil)
    }

    @Test func privacyModeEnteredAndLeftOnce() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        #expect(
            try await store.setPrivacyMode(false, vin: vin, at: at(0), detector: EventRules()).isEmpty,
            "not in privacy mode: nothing to leave")
        #expect(
            try await store.setPrivacyMode(true, vin: vin, at: at(1), detector: EventRules()).map(\.type) == [
                .privacyModeEntered
            ])
        #expect(try await store.setPrivacyMode(true, vin: vin, at: at(2), detector: EventRules()).isEmpty)
        #expect(
            try await store.setPrivacyMode(false, vin: vin, at: at(3), detector: EventRules()).map(\.type) == [
                .privacyModeLeft
            ])
    }

    /// Privacy mode written with the poll: the event is in the poll's result and counted in its
    /// `polls.events_emitted`.
    @Test func privacyModeIsWrittenWithThePoll() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var denied = PollRecord(
            vin: vin, requestedAt: at(0), receivedAt: at(0), httpStatus: 403, latencyMilliseconds: 10,
            error: "privacy mode")
        denied.privacyMode = true
        #expect(
            try await store.record(denied, samples: [], detector: EventRules()).events.map(\.type) == [
                .privacyModeEntered
            ])
        denied.receivedAt = at(1)
        #expect(try await store.record(denied, samples: [], detector: EventRules()).events.isEmpty, "once")
        var back = poll(at: at(2))
        back.privacyMode = false
        let result = try await store.record(
            back, samples: charging("not_charging", battery: 40, minute: 2), detector: EventRules())
        #expect(result.events.map(\.type) == [.privacyModeLeft])
        let check = try Connection(path: db.path)
        #expect(try check.scalarInt("SELECT sum(events_emitted) FROM polls") == 2)
    }
}
