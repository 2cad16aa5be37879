import FleetClient
import FleetEmulator
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// The stop of the built binary (`fleet-telemetry run`) on SIGTERM, against the emulator: fast
/// whatever the API or another process holding the database does, and losing no answered poll.
extension CommandLineTests {
    /// Polls with HTTP 200 stored in `database` (0 while it does not exist yet).
    func storedPolls(_ database: String, vin: VIN? = nil) -> Int {
        // Not before the daemon created it: opening would create an empty file under it.
        guard FileManager.default.fileExists(atPath: database), let connection = try? Connection(path: database) else {
            return 0
        }
        let filter = vin.map { " AND vin = '\($0.rawValue)'" } ?? ""
        return Int((try? connection.scalarInt("SELECT count(*) FROM polls WHERE http_status = 200" + filter)) ?? 0)
    }

    /// Waits (wall clock, at most 30 s) until `condition` holds.
    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
    }

    /// SIGTERM while one vehicle's answer takes 20 s: exit 0 in well under the 20 s, the
    /// request cancelled (no `polls` row, no backoff), every answered poll stored.
    @Test func sigtermWithARequestInFlightStopsAtOnce() async throws {
        try await withHarness(emulator: .init(vehicleCount: 3)) { h in
            let slow = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 200, delay: .seconds(20)), vin: slow, count: 1000)
            let daemon = try DaemonProcess(h, vehicles: h.emulator.configuration.vins)
            let (process, database) = (daemon.process, daemon.database)
            defer { withExtendedLifetime(daemon) {} }
            try await waitUntil {
                storedPolls(database) >= 4 && h.emulator.requestLog.contains { $0.vin == slow.rawValue }
            }
            #expect(storedPolls(database) >= 4, "the other vehicles were polled")
            let sent = ContinuousClock.now
            process.terminate()
            let log = try await daemon.exited()
            let took = ContinuousClock.now - sent
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(log.suffix(400))")
            #expect(took < .seconds(10), "stopped in \(took), not after the 20 s answer")
            #expect(log.contains("1 request cancelled"), "\(log.suffix(400))")
            #expect(!log.contains("CancellationError"))
            let answered = h.emulator.requestLog.filter { $0.vin != slow.rawValue && $0.status == 200 }.count
            // An answer on the wire at the very instant of the signal may be cancelled: at most one.
            #expect(storedPolls(database) >= answered - 1, "every answered poll is stored")
            let connection = try Connection(path: database)
            #expect(
                try connection.scalarInt("SELECT count(*) FROM polls WHERE vin = '\(slow.rawValue)'") == 0,
                "no polls row for the cancelled request")
            let health = try connection.scalarText("SELECT health FROM schedule WHERE vin = '\(slow.rawValue)'")
            #expect(health == nil || health == "ok", "the cancelled vehicle is not backing off: \(health ?? "")")
        }
    }

    /// SIGTERM while another process (a `sqlite3` shell) holds the write lock: the daemon gives
    /// up waiting after a second instead of the 30 s busy timeout (times retries), says so in one
    /// line, and exits 0; the unstored vehicles are polled again after the restart.
    @Test func sigtermWithTheDatabaseLockedStopsAtOnce() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2)) { h in
            let daemon = try DaemonProcess(h, vehicles: h.emulator.configuration.vins)
            let (process, database) = (daemon.process, daemon.database)
            defer { withExtendedLifetime(daemon) {} }
            try await waitUntil { storedPolls(database) >= 2 }
            let shell = try Connection(path: database)
            try shell.execute("BEGIN IMMEDIATE")
            // Polls go on meanwhile; their writes wait for the lock.
            try await Task.sleep(for: .milliseconds(2500))
            let sent = ContinuousClock.now
            process.terminate()
            let log = try await daemon.exited()
            let took = ContinuousClock.now - sent
            try shell.execute("ROLLBACK")
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(log.suffix(400))")
            #expect(took < .seconds(10), "stopped in \(took) with the database locked")
            #expect(log.contains("could not be stored while stopping"), "\(log.suffix(600))")
            #expect(try shell.scalarText("PRAGMA integrity_check") == "ok")
        }
    }
}
