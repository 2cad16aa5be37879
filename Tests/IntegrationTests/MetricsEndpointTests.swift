import AsyncHTTPClient
import FleetDaemon
import FleetEmulator
import FleetModel
@testable import FleetStore
import Foundation
import NIOCore
import Testing

extension CommandLineTests {
    /// `metrics.listen`: `/metrics` is Prometheus text whose series count the polls; `/healthz`
    /// is 200 while the daemon is healthy and 503 with the reason while the database cannot be
    /// written (another process holds its write lock), then 200 again.
    @Test func metricsAndHealthEndpoints() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2)) { h in
            let port = Int.random(in: 20_000...60_000)
            let daemon = try DaemonProcess(
                h, vehicles: h.emulator.configuration.vins, extra: "metrics:\n  listen: 127.0.0.1:\(port)")
            let (process, database) = (daemon.process, daemon.database)
            defer { withExtendedLifetime(daemon) {} }
            func get(_ path: String) async -> (Int, String)? {
                let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
                guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)),
                    let body = try? await response.body.collect(upTo: 4 << 20)
                else { return nil }
                return (Int(response.status.code), String(buffer: body))
            }
            func polls(_ text: String) -> Double {
                text.split(separator: "\n").filter {
                    $0.hasPrefix("fleet_telemetry_polls_total{") && $0.contains("\"200\"")
                }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
            }
            var first = 0.0
            let deadline = ContinuousClock.now + .seconds(30)
            while first < 2 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                first = polls(await get("/metrics")?.1 ?? "")
            }
            #expect(first >= 2, "polls are counted")
            // The scheduler's gauges are set when the schedule is saved, a second after a poll.
            try await Task.sleep(for: .seconds(2))
            let text = try #require(await get("/metrics")).1
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                #expect(line.split(separator: " ").count == 2, "a sample line is `name{labels} value`: \(line)")
            }
            for series in [
                "# TYPE fleet_telemetry_polls_total counter", "fleet_telemetry_vehicles{health=\"ok\"}",
                "fleet_telemetry_samples_written_total", "fleet_telemetry_request_rate",
                "fleet_telemetry_poll_duration_seconds_bucket", "fleet_telemetry_database_write_seconds_count",
                "fleet_telemetry_token_requests_total{result=\"ok\"} 1", "fleet_telemetry_wal_bytes",
                "fleet_telemetry_build_info{version=\"\(FleetTelemetryVersion.current)\"} 1",
            ] {
                #expect(text.contains(series), "\(series) in \(text.prefix(2000))")
            }
            #expect(polls(text) > first, "and keep counting")
            let healthy = await get("/healthz")
            #expect(
                healthy?.0 == 200 && healthy?.1 == "ok\nfleet-telemetry \(FleetTelemetryVersion.current)\n",
                "\(String(describing: healthy))")
            let shell = try Connection(path: database)
            try shell.execute("BEGIN IMMEDIATE")
            let locked = await get("/healthz")
            try shell.execute("ROLLBACK")
            #expect(locked?.0 == 503, "\(String(describing: locked))")
            #expect(locked?.1.contains("database") == true, "\(String(describing: locked))")
            let again = await get("/healthz")
            #expect(again?.0 == 200)
            process.terminate()
            _ = try await daemon.exited()
            #expect(process.terminationStatus == 0)
        }
    }
}
