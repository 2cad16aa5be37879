import FleetDaemon
import FleetEmulator
import FleetModel
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket standing in for systemd's notification socket.
final class NotifySocket {
    let path: String
    private let descriptor: Int32

    init() throws {
        path = NSTemporaryDirectory() + "ft-notify-\(UUID().uuidString.prefix(8)).sock"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard descriptor >= 0, bound == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// Every datagram waiting, oldest first.
    func receive() -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard count > 0 else { return messages }
            messages.append(String(decoding: buffer.prefix(count), as: UTF8.self))
        }
    }
}

extension CommandLineTests {
    /// `run` under a service manager: READY=1 once the schedule is loaded, STATUS= with the live
    /// summary, WATCHDOG=1 at half of WATCHDOG_USEC from the loop, STOPPING=1 on SIGTERM; and
    /// ServiceNotifier sends nothing without NOTIFY_SOCKET.
    @Test func runTellsSystemdItsState() async throws {
        #expect(!ServiceNotifier(environment: [:]).send("READY=1"))
        #expect(ServiceNotifier(environment: ["WATCHDOG_USEC": "1000000"]).watchdogInterval == nil)
        let notify = try NotifySocket()
        try await withHarness(emulator: .init(vehicleCount: 2)) { h in
            let database = NSTemporaryDirectory() + "ft-notify-\(UUID().uuidString).sqlite"
            let config = NSTemporaryDirectory() + "ft-notify-\(UUID().uuidString).yaml"
            try """
            api:
              base_url: http://127.0.0.1:\(h.port)
              client_id: \(EmulatorConfiguration.defaultClientID)
              client_secret:
                env: HM_SECRET
            database:
              path: \(database)
            polling:
              interval: 1s
            vehicles:
            \(h.emulator.configuration.vins.map { "  - \($0.rawValue)" }.joined(separator: "\n"))
            """.write(toFile: config, atomically: true, encoding: .utf8)
            defer {
                try? FileManager.default.removeItem(atPath: database)
                try? FileManager.default.removeItem(atPath: config)
            }
            let process = Process()
            process.executableURL = CLI.binary
            process.arguments = ["run", "--config", config]
            process.environment = [
                "HM_SECRET": EmulatorConfiguration.defaultClientSecret, "PATH": "/usr/bin:/bin",
                "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            var messages: [String] = []
            let deadline = ContinuousClock.now + .seconds(30)
            func counting(_ message: String) -> Bool {
                message.hasPrefix("STATUS=polling 2 vehicles; last minute") && !message.contains(" 0 polls")
            }
            while ContinuousClock.now < deadline
                && (messages.filter({ $0 == "WATCHDOG=1" }).count < 4 || !messages.contains(where: counting))
            {
                try await Task.sleep(for: .milliseconds(100))
                messages += notify.receive()
            }
            process.terminate()
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            messages += notify.receive()
            #expect(process.terminationStatus == 0)
            let ready = try #require(messages.firstIndex { $0.hasPrefix("READY=1") }, "\(messages)")
            #expect(messages[ready].contains("STATUS=polling 2 vehicles"), "\(messages[ready])")
            let watchdogs = messages.filter { $0 == "WATCHDOG=1" }.count
            #expect(watchdogs >= 4, "\(messages)")
            #expect(messages.contains(where: counting), "a STATUS= line counts the polls: \(messages)")
            #expect(messages.last?.hasPrefix("STOPPING=1") == true, "\(messages.suffix(3))")
        }
    }

    /// SIGHUP: the config is re-read and applied (a vehicle added to `vehicles` gets polled,
    /// systemd hears RELOADING=1 then READY=1); an invalid file is refused with its file, line and
    /// key, and the running config stays (polling goes on).
    @Test func sighupReloadsTheConfig() async throws {
        let notify = try NotifySocket()
        try await withHarness(emulator: .init(vehicleCount: 3)) { h in
            let vins = h.emulator.configuration.vins
            let database = NSTemporaryDirectory() + "ft-reload-\(UUID().uuidString).sqlite"
            let config = NSTemporaryDirectory() + "ft-reload-\(UUID().uuidString).yaml"
            let stderr = database + ".stderr"
            func write(_ vehicles: [VIN], extra: String = "") throws {
                try """
                api:
                  base_url: http://127.0.0.1:\(h.port)
                  client_id: \(EmulatorConfiguration.defaultClientID)
                  client_secret:
                    env: HM_SECRET
                database:
                  path: \(database)
                polling:
                  interval: 1s
                vehicles:
                \(vehicles.map { "  - \($0.rawValue)" }.joined(separator: "\n"))
                \(extra)
                """.write(toFile: config, atomically: true, encoding: .utf8)
            }
            try write(Array(vins.prefix(2)))
            defer {
                for path in [database, config, stderr] { try? FileManager.default.removeItem(atPath: path) }
            }
            _ = FileManager.default.createFile(atPath: stderr, contents: nil)
            let process = Process()
            process.executableURL = CLI.binary
            process.arguments = ["run", "--config", config]
            process.environment = [
                "HM_SECRET": EmulatorConfiguration.defaultClientSecret, "PATH": "/usr/bin:/bin",
                "NOTIFY_SOCKET": notify.path,
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            var messages: [String] = []
            func wait(until condition: () -> Bool) async throws {
                let deadline = ContinuousClock.now + .seconds(20)
                while !condition() && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                    messages += notify.receive()
                }
            }
            try await wait { messages.contains { $0.hasPrefix("READY=1") } }
            #expect(!h.emulator.requestLog.contains { $0.vin == vins[2].rawValue })
            try write(vins)
            kill(process.processIdentifier, SIGHUP)
            try await wait { h.emulator.requestLog.contains { $0.vin == vins[2].rawValue } }
            #expect(h.emulator.requestLog.contains { $0.vin == vins[2].rawValue }, "the added vehicle is polled")
            #expect(messages.contains { $0.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") }, "\(messages)")
            #expect(messages.filter { $0.hasPrefix("READY=1") }.count == 2)
            try write(vins, extra: "log_level: loud")
            kill(process.processIdentifier, SIGHUP)
            try await wait { messages.filter { $0.hasPrefix("READY=1") }.count == 3 }
            let before = h.emulator.requestLog.count
            try await wait { h.emulator.requestLog.count > before + 3 }
            #expect(h.emulator.requestLog.count > before + 3, "polling goes on with the running config")
            process.terminate()
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            let log = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
            #expect(log.contains("config reloaded from \(config): 1 vehicle added"), "\(log.suffix(800))")
            #expect(
                log.contains("config reload refused, the running config stays: \(config):14: log_level"),
                "\(log.suffix(800))")
            #expect(process.terminationStatus == 0)
            #expect(log.contains("polling 2 vehicles every 1s"), "\(log)")
        }
    }
}
