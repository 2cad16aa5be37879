import FleetEmulator
import FleetModel
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension CommandLineTests {
    /// With standard error on the journal (JOURNAL_STREAM names its device and inode), lines
    /// carry the syslog priority and no timestamp, and one error repeated at every poll is
    /// printed once, then counted.
    @Test func journalLinesCarryThePriorityAndRepeatsAreCounted() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            h.emulator.inject(.init(status: 503), vin: nil, count: 1000)
            let daemon = try DaemonProcess(
                h, vehicles: [h.emulator.configuration.vins[0]], polling: "  max_backoff: 1s", journal: true)
            let process = daemon.process
            defer { withExtendedLifetime(daemon) {} }
            let deadline = ContinuousClock.now + .seconds(20)
            while h.emulator.requestLog.count < 4 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            process.terminate()
            let lines = try await daemon.exited().split(separator: "\n")
            #expect(lines.allSatisfy { $0.hasPrefix("<") }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("<6>[FleetDaemon] polling 1 vehicle: interval 1s;") }, "\(lines)")
            let failures = lines.filter { $0.hasPrefix("<4>") && $0.contains("HTTP 503") }
            #expect(failures.count == 1, "printed once: \(lines)")
            #expect(lines.contains { $0.contains("(the previous message was repeated") }, "\(lines)")
            #expect(!lines.contains { $0.contains("2026-") && $0.contains("+0000") }, "no timestamps of its own")
        }
    }
}
