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

    /// - Parameter path: Where to bind; a fresh name in the temporary directory by default.
    init(path: String = NSTemporaryDirectory() + "ft-notify-\(UUID().uuidString.prefix(8)).sock") throws {
        self.path = path
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
            let daemon = try DaemonProcess(
                h, vehicles: h.emulator.configuration.vins,
                environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"])
            let process = daemon.process
            defer { withExtendedLifetime(daemon) {} }
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
            let daemon = try DaemonProcess(
                h, vehicles: Array(vins.prefix(2)), environment: ["NOTIFY_SOCKET": notify.path])
            let process = daemon.process
            defer { withExtendedLifetime(daemon) {} }
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
            try daemon.writeConfig(vehicles: vins)
            kill(process.processIdentifier, SIGHUP)
            try await wait { h.emulator.requestLog.contains { $0.vin == vins[2].rawValue } }
            #expect(h.emulator.requestLog.contains { $0.vin == vins[2].rawValue }, "the added vehicle is polled")
            #expect(messages.contains { $0.hasPrefix("RELOADING=1\nMONOTONIC_USEC=") }, "\(messages)")
            #expect(messages.filter { $0.hasPrefix("READY=1") }.count == 2)
            try daemon.writeConfig(vehicles: vins, extra: "log_level: loud")
            kill(process.processIdentifier, SIGHUP)
            try await wait { messages.filter { $0.hasPrefix("READY=1") }.count == 3 }
            let before = h.emulator.requestLog.count
            try await wait { h.emulator.requestLog.count > before + 3 }
            #expect(h.emulator.requestLog.count > before + 3, "polling goes on with the running config")
            process.terminate()
            let log = try await daemon.exited()
            #expect(log.contains("config reloaded from \(daemon.config): 1 vehicle added"), "\(log.suffix(800))")
            #expect(
                log.contains("config reload refused, the running config stays: \(daemon.config):15: log_level"),
                "\(log.suffix(800))")
            #expect(process.terminationStatus == 0)
            #expect(log.contains("polling 2 vehicles: interval 1s;"), "\(log)")
        }
    }
}
