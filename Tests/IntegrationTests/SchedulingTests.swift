import FleetClient
import FleetDaemon
import FleetEmulator
import FleetModel
import FleetEvents
import FleetStore
import Logging
import MetricsTestKit
import Testing

/// The scheduler against the emulator's injected faults, on a manual clock.
@Suite(.serialized) struct SchedulingTests {
    func requests(_ h: Harness, _ vin: VIN) -> [Emulator.LoggedRequest] {
        h.emulator.requestLog.filter { $0.vin == vin.rawValue }
    }

    func gapAfterFirst(_ h: Harness, _ vin: VIN) throws -> Int64 {
        let log = requests(h, vin)
        let first = try #require(log.first)
        let second = try #require(log.dropFirst().first)
        return second.at.millisecondsSince1970 - first.at.millisecondsSince1970
    }

    @Test(arguments: [
        ("120", Int64(120_000)),
        ("Sat, 28 Nov 2026 06:03:00 GMT", 180_000),  // harness clock: 06:00:00 + a first poll under 10 s
    ])
    func retryAfterIsHonoured(header: String, approximately milliseconds: Int64) async throws {
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(10)) { h in
            let limited = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 429, retryAfter: header), vin: limited)
            for _ in 0..<300 { await h.step(by: .seconds(1)) }
            let gap = try gapAfterFirst(h, limited)
            if header.hasSuffix("GMT") {
                let second = try #require(requests(h, limited).dropFirst().first)
                #expect(second.at >= Timestamp(iso8601: "2026-11-28T06:03:00Z")!, "not before the HTTP-date")
                #expect(gap <= milliseconds + 1000)
            } else {
                #expect(gap >= milliseconds && gap <= milliseconds + 1000, "gap \(gap) ms")
            }
            #expect(requests(h, EmulatorConfiguration.vin(index: 2)).count >= 29, "the other VIN keeps its cadence")
        }
    }

    /// Garbage, negative or absent `Retry-After`: backoff (never faster than the interval), a
    /// warning for the unusable header, never a crash or a tight loop.
    @Test(arguments: ["abc", "-5", "99999999999999999999", nil] as [String?])
    func unusableRetryAfterFallsBackToBackoff(header: String?) async throws {
        let logs = LogCapture()
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(10), logs: logs) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 429, retryAfter: header), vin: vin, count: 3)
            for _ in 0..<200 { await h.step(by: .seconds(1)) }
            let log = requests(h, vin)
            let gaps = zip(log, log.dropFirst()).map { $1.at.millisecondsSince1970 - $0.at.millisecondsSince1970 }
            #expect(gaps.allSatisfy { $0 >= 10_000 }, "never faster than the interval: \(gaps)")
            #expect(log.prefix(3).allSatisfy { $0.status == 429 })
            #expect(log.count >= 4 && log.count <= 20, "\(log.count) requests")
        }
        if let header, header != "99999999999999999999" {
            #expect(logs.text.contains("ignoring an unusable Retry-After \"\(header)\""))
        }
    }

    @Test func threeServerErrorsInARowGrowTheWait() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(10)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 500), vin: vin, count: 3)
            for _ in 0..<400 { await h.step(by: .seconds(1)) }
            let log = requests(h, vin)
            #expect(log.prefix(3).map(\.status) == [500, 500, 500])
            #expect(log.dropFirst(3).first?.status == 200)
            let gaps = zip(log, log.dropFirst()).map { $1.at.millisecondsSince1970 - $0.at.millisecondsSince1970 }
            #expect(gaps[0] >= 10_000 && gaps[0] <= 11_000)
            #expect(gaps[1] >= 10_000 && gaps[1] <= 21_000)
            #expect(gaps[2] >= 10_000 && gaps[2] <= 41_000)
            let rows = try await h.store.loadSchedule()
            #expect(rows[vin]?.health == "ok", "a success resets the health")
        }
    }

    /// An OEM that answers a spent quota with 403 "quota exceeded": the vehicle backs off as for a
    /// 429 and is polled again, never marked not cleared.
    @Test func quotaSpentIn403BacksOffAndRecovers() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(10)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            let body = #"{"errors":[{"title":"Forbidden","detail":"Quota exceeded for this vehicle"}]}"#
            h.emulator.inject(.init(status: 403, retryAfter: "30", body: body), vin: vin)
            let first = await h.step(by: .seconds(10))
            #expect(first.map(\.outcome) == [.rateLimited(retryAfter: .seconds(30), applicationWide: false)])
            let row = try await h.store.loadSchedule()[vin]
            #expect(row?.health == "rate_limited")
            for _ in 0..<60 { await h.step(by: .seconds(1)) }
            let log = requests(h, vin)
            #expect(log.map(\.status).prefix(2) == [403, 200], "polled again after the wait")
            if log.count >= 2 { #expect(log[1].at.millisecondsSince1970 - log[0].at.millisecondsSince1970 >= 30_000) }
            let vehicle = try await h.store.vehicles().first { $0.vin == vin }
            #expect(vehicle?.status != .notCleared)
        }
    }

    @Test func asleepVehicleMovesToTheSlowCadence() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(10)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 408), vin: vin)
            for _ in 0..<30 { await h.step(by: .seconds(1)) }
            #expect(requests(h, vin).count == 1, "asleep: next poll at the slow cadence (60 s)")
            let row = try #require(try await h.store.loadSchedule()[vin])
            #expect(row.health == "asleep")
            #expect(row.reason?.contains("Vehicle is offline or asleep") == true)
        }
    }

    /// A restart during a long `Retry-After` still honours it.
    @Test func restartKeepsALongRetryAfter() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(10)) { h in
            let limited = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.rateLimited(retryAfterSeconds: 3600), vin: limited)
            for _ in 0..<20 { await h.step(by: .seconds(1)) }
            #expect(requests(h, limited).count == 1)
            // A new daemon process on the same database.
            await h.restart(seed: 99)
            for _ in 0..<600 { await h.step(by: .seconds(1)) }
            let log = requests(h, limited)
            #expect(log.count == 1, "no request within the hour, across the restart")
            #expect(requests(h, EmulatorConfiguration.vin(index: 2)).count >= 60)
            for _ in 0..<3000 { await h.step(by: .seconds(1)) }
            let after = requests(h, limited)
            #expect(after.count >= 2)
            if after.count >= 2 {
                #expect(after[1].at.millisecondsSince1970 - after[0].at.millisecondsSince1970 >= 3_600_000)
            }
        }
    }

    @Test func countersAreReported() async throws {
        let metrics = TestMetrics()
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(10), metrics: metrics) { h in
            h.emulator.inject(.rateLimited(retryAfterSeconds: 60), vin: EmulatorConfiguration.vin(index: 1))
            for _ in 0..<25 { await h.step(by: .seconds(1)) }
            #expect(try metrics.expectCounter("fleet_telemetry_polls_total", [("status", "429")]).totalValue == 1)
            #expect(try metrics.expectCounter("fleet_telemetry_polls_total", [("status", "200")]).totalValue == 3)
            let written = try await h.store.summary().samples
            #expect(try metrics.expectCounter("fleet_telemetry_samples_written_total").totalValue == Int64(written))
        }
    }

    /// Polls made by hand (`poll --store`, another process) count against the daily budget.
    @Test func manualPollsCountAgainstTheBudget() async throws {
        try await withHarness(
            emulator: .init(vehicleCount: 2), policy: .init(interval: .seconds(10), dailyBudgetPerVIN: 3)
        ) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            for _ in 0..<3 {
                var record = PollRecord(
                    vin: vin, requestedAt: h.clock.now(), receivedAt: h.clock.now(), httpStatus: 200,
                    latencyMilliseconds: 1)
                record.manual = true
                try await h.store.record(record, samples: [], detector: EventRules())
            }
            for _ in 0..<300 { await h.step(by: .seconds(1)) }
            #expect(requests(h, vin).isEmpty, "the budget was spent by hand")
            #expect(
                requests(h, EmulatorConfiguration.vin(index: 2)).count == 1,
                "the other VIN polls at its stretched interval")
        }
    }

    /// A dropped connection and an answer slower than the read timeout are recorded as polls
    /// without a status, and the VIN backs off.
    @Test func droppedConnectionsAndTimeoutsAreFaults() async throws {
        try await withHarness(
            emulator: .init(vehicleCount: 2), interval: .seconds(10), requestTimeout: .milliseconds(500)
        ) { h in
            let dropped = EmulatorConfiguration.vin(index: 1)
            let slow = EmulatorConfiguration.vin(index: 2)
            h.emulator.inject(.init(status: 200, drop: true), vin: dropped)
            h.emulator.inject(.init(status: 200, delay: .seconds(2)), vin: slow)
            let results = await h.step(by: .seconds(10))
            #expect(results.count == 2)
            #expect(results.allSatisfy { $0.outcome == .failed })
            let droppedResult = try #require(results.first { $0.vin == dropped })
            #expect(
                droppedResult.error?.contains("response interrupted after HTTP 200") == true,
                "\(droppedResult.error ?? "")")
            let slowResult = try #require(results.first { $0.vin == slow })
            #expect(slowResult.httpStatus == nil)
            #expect(slowResult.error?.contains("answer within 500ms") == true, "\(slowResult.error ?? "")")
            let rows = try await h.store.loadSchedule()
            #expect(rows[dropped]?.health == "backoff" && rows[slow]?.health == "backoff")
        }
    }

    /// A server that trickles its body cannot hold a poll longer than the request timeout.
    @Test func tricklingBodyIsCutAtTheRequestTimeout() async throws {
        try await withHarness(
            emulator: .init(vehicleCount: 1), interval: .seconds(10), requestTimeout: .milliseconds(500)
        ) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(
                .init(status: 200, body: String(repeating: " ", count: 200), drip: .milliseconds(50)), vin: vin)
            let results = await h.step(by: .seconds(10))
            // The whole-response deadline cut it (a read timeout alone resets on every byte).
            #expect(
                results.first?.error?.contains("no complete answer within 500ms") == true,
                "\(results.first?.error ?? "")")
            #expect(results.first?.httpStatus == nil)
        }
    }

    /// The emulator's application-wide rate limit answers 429 for every VIN: the daemon pauses
    /// the whole fleet instead of retrying each VIN.
    @Test func applicationRateLimitSlowsTheWholeFleet() async throws {
        let emulator = EmulatorConfiguration(vehicleCount: 10, rateLimit: .init(requests: 5, per: .seconds(60)))
        try await withHarness(emulator: emulator, interval: .seconds(10)) { h in
            for _ in 0..<120 { await h.step(by: .seconds(1)) }
            let log = h.emulator.requestLog
            let limited = log.filter { $0.status == 429 }
            #expect(limited.count >= 3)
            // The third 429 (three different VINs within a minute) pauses everyone.
            let third429 = limited[2].at
            let windowEnd = try #require(log.first).at.adding(.seconds(60))
            let duringPause = log.filter { $0.at > third429 && $0.at < windowEnd }
            #expect(duringPause.isEmpty, "nobody is polled while the quota is spent: \(duringPause.count) requests")
            #expect(log.contains { $0.at >= windowEnd && $0.status == 200 }, "polling resumes when the window resets")
            #expect(limited.count <= 2 * 10, "at most one 429 per VIN per window: \(limited.count)")
        }
    }

    @Test func faultsForAllVehicles() async throws {
        try await withHarness(emulator: .init(vehicleCount: 3), interval: .seconds(10)) { h in
            h.emulator.inject(.init(status: 503), vin: nil, count: 3)
            let results = await h.step(by: .seconds(10))
            #expect(results.map(\.httpStatus) == [503, 503, 503])
        }
    }

    /// A property-level `failure.reason = rate_limit` inside a 200 slows that VIN down.
    @Test func propertyLevelRateLimitSlowsTheVIN() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(10)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            let body =
                #"{"vin":"\#(vin)","diagnostics":{"odometer":{"failure":{"reason":"rate_limit","description":"Too many requests for this property"}}}}"#
            h.emulator.inject(.init(status: 200, body: body), vin: vin)
            for _ in 0..<40 { await h.step(by: .seconds(1)) }
            #expect(requests(h, vin).count == 1, "slow cadence (60 s) after a property rate limit")
            #expect(requests(h, EmulatorConfiguration.vin(index: 2)).count == 4)
            let health = try await h.store.loadSchedule()[vin]?.health
            #expect(health == "rate_limited")
        }
    }

    @Test func privacyModeBecomesEvents() async throws {
        try await withHarness(
            emulator: .init(vehicleCount: 1), interval: .seconds(10),
            policy: .init(interval: .seconds(10), privacyInterval: .seconds(30))
        ) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            for _ in 0..<12 { await h.step(by: .seconds(1)) }
            h.emulator.inject(
                .init(status: 403, body: #"{"errors":[{"title":"Forbidden","detail":"Privacy mode is active"}]}"#),
                vin: vin)
            for _ in 0..<60 { await h.step(by: .seconds(1)) }
            let types = await h.sink.events.map(\.type).filter { $0 == .privacyModeEntered || $0 == .privacyModeLeft }
            #expect(types == [.privacyModeEntered, .privacyModeLeft])
        }
    }
}
