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
            let base = NSTemporaryDirectory() + "ft-journal-\(UUID().uuidString)"
            let config = base + ".yaml"
            let stderr = base + ".stderr"
            try """
            api:
              base_url: http://127.0.0.1:\(h.port)
              client_id: \(EmulatorConfiguration.defaultClientID)
              client_secret:
                env: HM_SECRET
            database:
              path: \(base).sqlite
            polling:
              interval: 1s
              max_backoff: 1s
            vehicles:
              - \(h.emulator.configuration.vins[0].rawValue)
            """.write(toFile: config, atomically: true, encoding: .utf8)
            defer {
                for path in [config, stderr, base + ".sqlite"] { try? FileManager.default.removeItem(atPath: path) }
            }
            _ = FileManager.default.createFile(atPath: stderr, contents: nil)
            var status = stat()
            #expect(stat(stderr, &status) == 0)
            let process = Process()
            process.executableURL = CLI.binary
            process.arguments = ["run", "--config", config]
            process.environment = [
                "HM_SECRET": EmulatorConfiguration.defaultClientSecret, "PATH": "/usr/bin:/bin",
                "JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            let deadline = ContinuousClock.now + .seconds(20)
            while h.emulator.requestLog.count < 4 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            process.terminate()
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            let lines = ((try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "").split(separator: "\n")
            #expect(lines.allSatisfy { $0.hasPrefix("<") }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("<6>[FleetDaemon] polling 1 vehicle every 1s") }, "\(lines)")
            let failures = lines.filter { $0.hasPrefix("<4>") && $0.contains("HTTP 503") }
            #expect(failures.count == 1, "printed once: \(lines)")
            #expect(lines.contains { $0.contains("(the previous message was repeated") }, "\(lines)")
            #expect(!lines.contains { $0.contains("2026-") && $0.contains("+0000") }, "no timestamps of its own")
        }
    }
}
