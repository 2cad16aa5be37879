import AsyncHTTPClient
import FleetClient
import FleetDaemon
import FleetEmulator
import FleetModel
import FleetScheduling
import FleetStore
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// Issue 15 through the real loop, the real client and the emulator over loopback HTTP, on the
/// manual clock (simulated time): a shared quota learned and respected, paced releases, state
/// kept across a restart, a token outage at start.
@Suite struct GoodCitizenTests {
    /// Against an application limit of R requests/s with a fleet that wants 3R: after the first
    /// minute fewer than 5 % of the requests are refused and at least 80 % of R is admitted.
    @Test(arguments: [1, 5, 50])
    func learnsTheApplicationLimit(limit: Int) async throws {
        let emulator = EmulatorConfiguration(
            vehicleCount: max(10, 3 * limit), rateLimit: .init(requests: limit, per: .seconds(1)))
        try await withHarness(
            emulator: emulator, maxConcurrentRequests: 8,
            policy: .init(interval: .seconds(1), maxBackoff: .seconds(8))
        ) { h in
            let settle = harnessStart.adding(.seconds(60))
            let end = harnessStart.adding(.seconds(limit >= 50 ? 120 : 240))
            while h.clock.now() < end { await h.stepToNextWakeUp() }
            let measured = h.emulator.requestLog.filter { $0.at >= settle }
            let refused = measured.filter { $0.status == 429 }.count
            let admitted = measured.filter { $0.status == 200 }.count
            let seconds = end.duration(since: settle).seconds
            let refusedShare = Double(refused) / Double(max(1, measured.count))
            let admittedShare = Double(admitted) / seconds / Double(limit)
            #expect(refusedShare < 0.05, "R=\(limit): \(refused) of \(measured.count) refused")
            #expect(admittedShare >= 0.8, "R=\(limit): \(Int(admittedShare * 100)) % of the limit admitted")
            let rate = await h.service.currentSchedule.rate.learned
            #expect(rate != nil, "a rate was learned")
        }
    }

    /// A 24 h `Retry-After` for the whole application, and the learned rate, survive a restart:
    /// the restarted daemon sends nothing for the day and paces at the rate it had learned.
    @Test func pauseAndLearnedRateSurviveARestart() async throws {
        let emulator = EmulatorConfiguration(vehicleCount: 10, rateLimit: .init(requests: 2, per: .seconds(1)))
        try await withHarness(emulator: emulator, policy: .init(interval: .seconds(1), maxBackoff: .seconds(8))) { h in
            for _ in 0..<600 { await h.stepToNextWakeUp() }
            let learned = try #require(await h.service.currentSchedule.rate.learned)
            h.emulator.inject(.rateLimited(retryAfterSeconds: 86_400), vin: nil, count: 3)
            for _ in 0..<100 { await h.stepToNextWakeUp() }
            let pause = try #require(await h.service.currentSchedule.globalPauseUntil)
            #expect(pause >= h.clock.now().adding(.seconds(86_000)))
            let rateAtStop = await h.service.currentSchedule.rate.learned
            await h.restart(seed: 9)
            let before = h.emulator.requestLog.count
            await h.step(by: .seconds(1))
            let restored = await h.service.currentSchedule
            #expect(restored.globalPauseUntil == pause)
            #expect(restored.rate.learned == rateAtStop)
            #expect(rateAtStop.map { $0 <= learned } ?? false)
            for _ in 0..<60 { await h.step(by: .seconds(60)) }
            #expect(h.emulator.requestLog.count == before, "nothing is sent during the saved pause")
        }
    }

    /// The token endpoint down at start (503 for its first 4 requests): 20 vehicles cause one
    /// token request per backoff step, no vehicle is marked failed, no `polls` row is written for
    /// an unsent request, one log line per step, and polling starts within a second of the
    /// endpoint's recovery.
    @Test func tokenOutageAtStart() async throws {
        let logs = LogCapture()
        try await withHarness(emulator: .init(vehicleCount: 20), logs: logs, policy: .init(interval: .seconds(1))) {
            h in
            h.emulator.injectTokenFault(.init(status: 503), count: 4)
            for _ in 0..<300 { await h.step(by: .milliseconds(100)) }
            let tokenRequests = h.emulator.tokenRequestCount
            #expect(tokenRequests == 5, "4 failed token requests and the one that succeeded: \(tokenRequests)")
            let first = try #require(h.emulator.requestLog.first)
            #expect(first.status == 200)
            let failedSteps = logs.text.components(separatedBy: "no access token, polling paused").count - 1
            #expect(failedSteps == 4, "one line per backoff step, not per vehicle: \(failedSteps)")
            let summary = try await h.store.summary()
            #expect(summary.pollsByStatus[nil] == nil, "no polls row for a request never sent")
            let schedule = try await h.store.loadSchedule()
            #expect(schedule.values.allSatisfy { $0.health == "ok" }, "a token failure is no vehicle failure")
            #expect(Set(h.emulator.requestLog.map(\.vin)).count == 20, "every vehicle polled after the outage")
        }
    }

    /// `POST /emulator/limits` takes whole numbers and the two known fields only, and says why.
    @Test func emulatorLimitsEndpointChecksItsInput() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            func post(_ body: String) async throws -> (Int, String) {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(h.port)/emulator/limits")
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: body))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                let text = String(buffer: try await response.body.collect(upTo: 65_536))
                return (Int(response.status.code), text)
            }
            for bad in [
                #"{"rate_limit":{"requests":1.5,"per_ms":1000}}"#, #"{"rate_limit":{"requests":1,"per_ms":0}}"#,
                #"{"rate_limit":{"requests":1,"per_ms":1000,"extra":1}}"#, #"{"speed":null}"#, "not json",
            ] {
                let (status, text) = try await post(bad)
                #expect(status == 400, "\(bad)")
                #expect(text.contains("per_ms"), "the usage is given: \(text)")
            }
            #expect(h.emulator.limits == .init())
            let (status, text) = try await post(#"{"rate_limit":{"requests":3,"per_ms":1000}}"#)
            #expect(status == 200)
            #expect(text.contains(#""requests":3"#), "\(text)")
            #expect(h.emulator.limits.rateLimit == .init(requests: 3, per: .seconds(1)))
        }
    }

    /// `/emulator/faults`: a fault without a status is a 503, a bad VIN is named, the queue is
    /// listed and cleared.
    @Test func emulatorFaultsAreListedAndCleared() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            func call(_ method: NIOHTTP1.HTTPMethod, _ body: String? = nil) async throws -> (Int, String) {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(h.port)/emulator/faults")
                request.method = method
                if let body { request.body = .bytes(ByteBuffer(string: body)) }
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 65_536)))
            }
            let (badStatus, badText) = try await call(.POST, #"{"vin":"nope"}"#)
            #expect(badStatus == 400)
            #expect(badText.contains("must be a VIN or") && badText.contains("nope"), "\(badText)")
            #expect(try await call(.POST, #"{"vin":"all","count":2}"#).0 == 204)
            #expect(try await call(.POST, #"{"endpoint":"token","status":500}"#).0 == 204)
            let (listed, list) = try await call(.GET)
            #expect(listed == 200)
            #expect(list.contains(#""target":"token""#) && list.contains(#""status":500"#), "\(list)")
            #expect(list.contains(#""target":"all""#) && list.contains(#""status":503"#), "\(list)")
            #expect(list.contains(#""remaining":2"#), "\(list)")
            let (cleared, text) = try await call(.DELETE)
            #expect(cleared == 200 && text.contains(#""cleared":2"#), "\(text)")
            #expect(try await call(.GET).1 == "[]")
            #expect(h.emulator.queuedFaults.isEmpty)
        }
    }

    /// The emulator's limits change at run time: a per-vehicle quota answers 403 "Quota exceeded"
    /// with `Retry-After`; the vehicle backs off and resumes, keeps its clearance, and the others
    /// go on.
    @Test func vehicleQuotaAtRunTime() async throws {
        try await withHarness(emulator: .init(vehicleCount: 3), policy: .init(interval: .seconds(10))) { h in
            for _ in 0..<3 { await h.step(by: .seconds(10)) }
            h.emulator.setLimits(.init(vehicleQuota: .init(requests: 1, per: .seconds(60))))
            for _ in 0..<12 { await h.step(by: .seconds(10)) }
            let log = h.emulator.requestLog
            #expect(log.contains { $0.status == 403 })
            let schedule = try await h.store.loadSchedule()
            #expect(!schedule.values.contains { $0.health == "not_cleared" })
            let vehicles = try await h.store.vehicles()
            #expect(vehicles.allSatisfy { $0.status == .active })
            h.emulator.setLimits(.init())
            let before = log.count
            for _ in 0..<12 { await h.step(by: .seconds(10)) }
            #expect(h.emulator.requestLog.dropFirst(before).filter { $0.status == 200 }.count >= 6, "recovered")
        }
    }
}
