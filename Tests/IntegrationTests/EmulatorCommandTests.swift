import FleetClient
import FleetEmulator
import FleetModel
import Foundation
import Testing

/// `fleet-telemetry emulator --config FILE`, run as a user runs it.
/// In `CommandLineTests` (serialized): these wait on child processes (see DurabilityIntegrationTests).
extension CommandLineTests {
    func writeEmulatorConfig(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "ft-emulator-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func badEmulatorConfigNamesTheKey() throws {
        let path = try writeEmulatorConfig("vehicles: 2\nfaults:\n  - vin: all\n    status: 700\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLI.execute(["emulator", "--port", "0", "--config", path])
        #expect(result.status == 78)
        #expect(result.stderr == "fleet-telemetry: \(path):4: faults[0].status: must be between 100 and 599, got 700\n")
    }

    /// Faults and the rate limit from the config file are served by the running emulator.
    @Test func configuredFaultsAreServed() async throws {
        let path = try writeEmulatorConfig(
            """
            vehicles: 2
            seed: 7
            faults:
              - vin: all
                status: 503
                count: 1
              - vin: 1HMEMU00000000002
                status: 429
                retry_after: "45"
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["emulator", "--port", "0", "--config", path, "--log-level", "error"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        // The emulator announces its address on standard error once it listens.
        var announced = ""
        while !announced.contains("\n"), process.isRunning {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            announced += String(decoding: chunk, as: UTF8.self)
        }
        let line = try #require(announced.split(separator: "\n").first { $0.contains("http://127.0.0.1:") })
        let base = String(line[line.range(of: "http://")!.lowerBound...])
        let client = HighMobilityClient(
            configuration: .init(
                baseURL: base, clientID: EmulatorConfiguration.defaultClientID,
                clientSecret: Secret(EmulatorConfiguration.defaultClientSecret)))
        do {
            await #expect { _ = try await client.vehicleData(vin: EmulatorConfiguration.vin(index: 1)) } throws: {
                ($0 as? APIError)?.status == 503
            }
            await #expect { _ = try await client.vehicleData(vin: EmulatorConfiguration.vin(index: 2)) } throws: {
                ($0 as? APIError)?.status == 429 && ($0 as? APIError)?.retryAfter == .seconds(45)
            }
            let data = try await client.vehicleData(vin: EmulatorConfiguration.vin(index: 1))
            #expect(!data.body.isEmpty)
        }
        try await client.shutdown()
    }
}
