import FleetEmulator
import FleetModel
import FleetStore
import Foundation
import Testing

extension CommandLineTests {
    /// `fleet-telemetry schedule --json` shows what the daemon saved: the learned rate, the
    /// fleet-wide pause and, per vehicle, the polls of the day and the next due time.
    @Test func scheduleShowsTheLearnedRateThePauseAndEachVehicle() async throws {
        let emulator = EmulatorConfiguration(vehicleCount: 6, rateLimit: .init(requests: 2, per: .seconds(1)))
        // On the wall clock's day: the command compares the saved pause with the time now.
        try await withHarness(
            emulator: emulator, policy: .init(interval: .seconds(1), maxBackoff: .seconds(8)),
            start: SystemWallClock().now()
        ) { h in
            for _ in 0..<300 { await h.stepToNextWakeUp() }
            h.emulator.inject(.rateLimited(retryAfterSeconds: 3600), vin: nil, count: 3)
            for _ in 0..<50 { await h.stepToNextWakeUp() }
            await h.step(by: .seconds(2))  // the schedule save
            let schedule = await h.service.currentSchedule
            let pause = try #require(schedule.globalPauseUntil)
            let result = try CLI.execute(["schedule", "--database", h.databasePath, "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = try result.stdout.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
            let application = try #require(lines.first)
            #expect(application["scope"]?.stringValue == "application")
            #expect(application["learned_rate_per_second"]?.numberValue == schedule.rate.learned)
            #expect(application["pause_reason"]?.stringValue == "rate_limited")
            #expect(application["paused_until"]?.stringValue == pause.iso8601)
            let vehicles = lines.dropFirst()
            #expect(vehicles.count == 6)
            #expect(vehicles.allSatisfy { $0["scope"]?.stringValue == "vehicle" && $0["next_due"]?.stringValue != nil })
            let polls = try await h.store.summary().pollsByStatus.values.reduce(0, +)
            #expect(polls > 0)
        }
    }
}
