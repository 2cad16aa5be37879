import BenchmarkSupport
import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetEmulator
import FleetIngestion
import FleetModel
import FleetScheduling
import FleetStore
import Foundation
import Logging

// quota-benchmark [real-seconds] [real-limit]
//
// The daemon (the one assembly, its one loop, the real client) against the emulator over
// loopback HTTP, with an application-wide limit of R requests per second and a fleet of 3R
// vehicles polled every second (a demand of 3R): how many requests are refused and how much
// of R is admitted after the first minute. The reference in the same run is R itself.
//
// 1. Simulated time (manual clock, the loop stepped to each wake-up) for R = 1, 5 and 50.
// 2. Real time (system clock) for one R, `real-seconds` long.

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count <= 2, let realSeconds = Int(arguments.first ?? "120"), realSeconds >= 70,
    let realLimit = Int(arguments.dropFirst().first ?? "10"), realLimit >= 1
else {
    FileHandle.standardError.write(Data("usage: quota-benchmark [real-seconds ≥ 70 (120)] [real-limit (10)]\n".utf8))
    exit(64)
}

struct Figures {
    var limit: Int
    var seconds: Double
    var requests: Int
    var refused: Int
    var admitted: Int
    var learned: Double?

    var line: String {
        let refusedShare = Double(refused) / Double(max(1, requests)) * 100
        let admittedShare = Double(admitted) / seconds / Double(limit) * 100
        return String(
            format: "R = %-3d  %6.0f s measured  %6d requests  refused %5.2f %%  admitted %5.1f %% of R  learned %@",
            limit, seconds, requests, refusedShare, admittedShare,
            learned.map { String(format: "%.3f/s", $0) } ?? "-")
    }
}

/// One run: the emulator and the daemon on `clock`; `drive` moves time until `end`.
func run(
    limit: Int, clock: any WallClock, seconds: Int,
    drive: @Sendable (PollingService, Timestamp) async -> Void
) async throws -> Figures {
    let logger = quietLogger("quota-benchmark")
    let emulatorConfiguration = EmulatorConfiguration(
        vehicleCount: max(10, 3 * limit), rateLimit: .init(requests: limit, per: .seconds(1)))
    let emulator = Emulator(configuration: emulatorConfiguration, wallClock: clock)
    let directory = NSTemporaryDirectory() + "quota-benchmark-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = daemonConfiguration(
        for: emulatorConfiguration, databasePath: directory + "/telemetry.sqlite")
    configuration.polling = .init(
        policy: .init(interval: .seconds(1), maxBackoff: .seconds(8)), maxConcurrentRequests: 8)
    let store = try await Daemon.openStore(path: configuration.databasePath, configuration: configuration)
    return try await withEmulatedAPI(emulator, clock: clock, logger: logger) { client in
        let daemon = Daemon(
            configuration: configuration, store: store, client: client, clock: clock, sink: DiscardingEventSink(),
            seed: 7, logger: logger)
        let start = clock.now()
        let polling = daemon.polling
        let loop = Task { try await polling.run() }
        await drive(polling, start.adding(.seconds(Int64(seconds))))
        let learned = await polling.currentSchedule.rate.learned
        loop.cancel()
        _ = try? await loop.value
        let settled = start.adding(.seconds(60))
        let measured = emulator.requestLog.filter { $0.at >= settled }
        return Figures(
            limit: limit, seconds: Double(seconds - 60), requests: measured.count,
            refused: measured.filter { $0.status == 429 }.count, admitted: measured.filter { $0.status == 200 }.count,
            learned: learned)
    }
}

print("Simulated time (manual clock), a fleet of 3R polled every second, after the first minute:")
for limit in [1, 5, 50] {
    let clock = ManualWallClock(start: Timestamp(iso8601: "2026-11-28T06:00:00Z")!)
    let figures = try await run(limit: limit, clock: clock, seconds: limit >= 50 ? 180 : 300) { polling, end in
        while clock.now() < end {
            let now = clock.now()
            let next = await polling.nextWakeUp ?? now.adding(.seconds(1))
            clock.advance(by: min(max(next.duration(since: now), .milliseconds(1)), .seconds(1)))
            await polling.settled(at: clock.now())
        }
    }
    print("  " + figures.line)
}
print("Real time (system clock), \(realSeconds) s:")
let real = try await run(limit: realLimit, clock: SystemWallClock(), seconds: realSeconds) { _, _ in
    try? await Task.sleep(for: .seconds(realSeconds))
}
print("  " + real.line)
