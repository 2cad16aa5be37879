import FleetClient
import FleetDaemon
import FleetEmulator
import FleetModel
import FleetStore
import Testing

@Suite(.serialized) struct DaemonAgainstEmulatorTests {
    /// A simulated day and a half (1 s of clock = 24 simulated minutes, polled every second):
    /// samples for every VIN and every event kind, each event stored and delivered once.
    @Test func pollsEveryVehicleAndEmitsEveryEventKindOnce() async throws {
        try await withHarness { h in
            for _ in 0..<90 { await h.step(by: .seconds(1)) }
            let summary = try await h.store.summary()
            #expect(summary.vehiclesWithSamples == 5)
            #expect(summary.pollsByStatus.keys.allSatisfy { $0 == 200 })
            #expect(summary.pollsByStatus[200, default: 0] >= 5 * 89)
            for type in [EventType.doorUnlocked, .doorLocked, .chargingStarted, .chargingCompleted] {
                #expect(summary.eventsByType[type.rawValue, default: 0] >= 1, "no \(type.rawValue) event")
            }
            let stored = try await h.store.events()
            let delivered = await h.sink.events
            #expect(
                delivered.sorted { $0.id! < $1.id! } == stored,
                "every stored event is delivered exactly once, with its id")
            #expect(Set(stored.map { "\($0.vin)|\($0.type)|\($0.instance)|\($0.occurredAt)" }).count == stored.count)
            for event in stored where event.type == .doorUnlocked {
                #expect(event.previousValue == "locked" && event.newValue == "unlocked")
                #expect(["front_left", "front_right", "rear_left", "rear_right"].contains(event.instance))
            }
            #expect(h.emulator.tokenRequestCount == 1, "one access token serves all concurrent requests for 90 s")
        }
    }

    @Test func storedValuesMatchTheSimulation() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2)) { h in
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            for vin in h.emulator.configuration.vins {
                let truth = try #require(h.emulator.snapshot(vin: vin))
                let latest = try await h.store.latestValues(vin: vin)
                let odometer = try #require(latest[SeriesKey(vin: vin, property: "diagnostics.odometer", instance: "")])
                #expect(odometer.unit == "kilometers")
                #expect(odometer.value.number! <= truth.odometerKm)
                let battery = try #require(
                    latest[SeriesKey(vin: vin, property: "charging.battery_level", instance: "")])
                #expect(battery.unit == "percent")
                #expect((0...100).contains(battery.value.number!))
                #expect(latest[SeriesKey(vin: vin, property: "doors.locks.lock_state", instance: "front_left")] != nil)
            }
        }
    }

    /// One VIN gets a 429 with `Retry-After: 30`; it is not asked again before 30 s have passed,
    /// while the other VIN keeps its 10 s cadence.
    @Test func rateLimitedVINWaitsForRetryAfterWhileOthersKeepCadence() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(10)) { h in
            let limited = EmulatorConfiguration.vin(index: 1)
            let other = EmulatorConfiguration.vin(index: 2)
            h.emulator.inject(.rateLimited(retryAfterSeconds: 30), vin: limited)
            for _ in 0..<600 { await h.step(by: .milliseconds(100)) }  // 60 s
            let log = h.emulator.requestLog
            let limitedRequests = log.filter { $0.vin == limited.rawValue }
            let otherRequests = log.filter { $0.vin == other.rawValue }
            let first = try #require(limitedRequests.first)
            #expect(first.status == 429)
            let second = try #require(limitedRequests.dropFirst().first)
            let waited = second.at.millisecondsSince1970 - first.at.millisecondsSince1970
            #expect(waited >= 30_000 && waited <= 30_100, "second request \(waited) ms after the 429")
            #expect(otherRequests.count == 6)
            let gaps = zip(otherRequests, otherRequests.dropFirst()).map {
                $1.at.millisecondsSince1970 - $0.at.millisecondsSince1970
            }
            #expect(gaps.allSatisfy { $0 == 10_000 }, "other VIN's gaps: \(gaps)")
            let summary = try await h.store.summary()
            #expect(summary.pollsByStatus[429] == 1)
        }
    }

    @Test func malformedBodyIsRecordedAndPollingGoesOn() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            await h.step(by: .seconds(1))
            let before = try await h.store.summary().samples
            #expect(before > 0)
            h.emulator.inject(.init(status: 200, body: "<html>proxy error</html>"), vin: vin)
            let results = await h.step(by: .seconds(1))
            #expect(results.map(\.httpStatus) == [200])
            #expect(results.first?.outcome == .failed)
            #expect(try await h.store.summary().samples == before, "accepted rows are kept")
            await h.step(by: .seconds(5))
            #expect(try await h.store.summary().samples > before, "polling resumes after the backoff")
        }
    }

    @Test func invalidTokenIsRenewedOnceAndTheRequestRetried() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            await h.step(by: .seconds(1))
            h.emulator.inject(.init(status: 401), vin: vin)
            let results = await h.step(by: .seconds(1))
            #expect(results.map(\.httpStatus) == [200])
            #expect(h.emulator.tokenRequestCount == 2)
        }
    }

    @Test func expiredTokenIsRenewedBeforeUse() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1, tokenLifetime: .seconds(120))) { h in
            await h.step(by: .seconds(1))
            #expect(h.emulator.tokenRequestCount == 1)
            await h.step(by: .seconds(61))  // 62 s: less than the 60 s margin remains
            #expect(h.emulator.tokenRequestCount == 2)
            #expect(h.emulator.requestLog.allSatisfy { $0.status == 200 })
        }
    }

    @Test func errorsCarryStatusTitleDetailAndRequestID() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 503), vin: vin)
            do {
                _ = try await h.client.vehicleData(vin: vin)
                Issue.record("expected an error")
            } catch let error as APIError {
                #expect(error.status == 503)
                #expect(error.title == "Service Unavailable")
                #expect(error.detail == "Failure when fetching data from OEM")
                #expect(error.requestID?.count == 32)
                #expect(error.vin == vin)
            }
            let unknown = VIN("1HMFT000000000009")!
            await #expect {
                _ = try await h.client.vehicleData(vin: unknown)
            } throws: { error in
                (error as? APIError)?.status == 403
                    && (error as? APIError)?.detail == "No active consent for this vehicle"
            }
        }
    }

    @Test func simplifiedShapeIsStoredUnderTheSamePaths() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1, timeScale: 1, shape: .simplified)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            await h.step(by: .seconds(1))
            let firstCount = try await h.store.summary().samples
            let latest = try await h.store.latestValues(vin: vin)
            #expect(
                latest[SeriesKey(vin: vin, property: "doors.locks.lock_state", instance: "front_left")]?.value
                    == .text("locked"))
            #expect(latest[SeriesKey(vin: vin, property: "diagnostics.odometer", instance: "")]?.unit == "kilometers")
            #expect(latest[SeriesKey(vin: vin, property: "charging.status", instance: "")] != nil)
            // In real time the parked car stays parked for minutes: nothing changes.
            await h.step(by: .milliseconds(200))
            await h.step(by: .seconds(1))
            #expect(try await h.store.summary().samples == firstCount, "an unchanged car adds no rows")
        }
    }

    @Test func rejectedClientCredentialsAreFatalAndNamed() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2), clientSecret: "wrong") { h in
            // The first refusal stops the loop (the other poll in flight is cancelled).
            let results = await h.step(by: .seconds(1))
            #expect(!results.isEmpty)
            #expect(results.allSatisfy { $0.outcome == .credentialsRejected })
            await #expect(throws: DaemonError.self) { try await h.runToEnd() }
            #expect(
                h.emulator.tokenRequestCount == 1, "concurrent requests share one token request, even a failing one")
            #expect(h.emulator.requestLog.isEmpty, "no vehicle data is requested without a token")
            let message = DaemonError.credentialsRejected(results[0].error ?? "").description
            #expect(message.contains("api.client_secret") && message.contains("HTTP 401") && !message.contains("wrong"))
        }
    }
}
