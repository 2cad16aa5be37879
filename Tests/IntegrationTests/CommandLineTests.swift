import FleetClient
import FleetEmulator
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// Runs the built `fleet-telemetry` binary (next to the test bundle) and collects its output.
struct CLI {
    let config: String

    static var binary: URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundleDirectory.appendingPathComponent("fleet-telemetry")
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    func run(_ arguments: [String], secret: String = EmulatorConfiguration.defaultClientSecret) throws -> Result {
        try Self.execute(
            arguments + ["--config", config], environment: ["HM_SECRET": secret, "PATH": "/usr/bin:/bin"])
    }

    /// ``run(_:secret:)`` on a thread of its own: the test waits without holding a thread of the
    /// cooperative pool, which the in-process emulator needs to answer the command.
    func runAside(_ arguments: [String]) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Swift.Result { try self.run(arguments) }) }.start()
        }
    }

    /// Runs the binary with `arguments` and waits for it.
    /// - Parameters:
    ///   - directory: The working directory (the test's own by default).
    ///   - user: Run as this uid without supplementary groups (through `setpriv`), e.g. 65534.
    static func execute(
        _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil, user: UInt32? = nil
    ) throws -> Result {
        let process = Process()
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite(.serialized) struct CommandLineTests {
    func makeConfig(port: Int, family: PathFamily, database: String) throws -> String {
        let path = NSTemporaryDirectory() + "ft-cli-\(UUID().uuidString).yaml"
        try """
        api:
          base_url: http://127.0.0.1:\(port)
          client_id: \(EmulatorConfiguration.defaultClientID)
          client_secret:
            env: HM_SECRET
          paths: \(family.rawValue)
        database:
          path: \(database)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The whole clearance lifecycle as a user runs it: eligibility, add, list, show while
    /// pending and once approved, a poll stored in the database, remove, remove again.
    @Test(arguments: PathFamily.allCases)
    func clearanceLifecycleThroughTheCLI(family: PathFamily) async throws {
        #expect(
            FileManager.default.isExecutableFile(atPath: CLI.binary.path), "fleet-telemetry is built next to the tests")
        try await withHarness(emulator: .init(vehicleCount: 1, approvalDelay: .seconds(10)), family: family) { h in
            let cli = CLI(config: try makeConfig(port: h.port, family: family, database: h.databasePath))
            defer { try? FileManager.default.removeItem(atPath: cli.config) }
            let vin = newVIN.rawValue

            let eligibility = try cli.run(["eligibility", vin, "--brand", "sandbox", "--json"])
            #expect(eligibility.status == 0, "\(eligibility.stderr)")
            #expect(eligibility.stdout.contains(#""eligible":true"#))

            let add = try cli.run([
                "vehicles", "add", vin, "--brand", "sandbox", "--tag", "depot=north", "--license-plate", "B-HM 42",
            ])
            #expect(add.status == 0, "\(add.stderr)")
            #expect(add.stdout.contains(vin) && add.stdout.contains("pending"))

            let list = try cli.run(["vehicles", "list", "--json"])
            #expect(list.status == 0)
            #expect(list.stdout.contains(#""vin":"\#(vin)""#) && list.stdout.contains(#""status":"pending""#))

            let pending = try cli.run(["poll", vin])
            #expect(pending.status == 1)
            #expect(pending.stderr.contains("HTTP 403") && pending.stderr.contains("No active consent"))

            h.clock.advance(by: .seconds(10))
            let show = try cli.run(["vehicles", "show", vin])
            #expect(show.stdout.contains("approved"), "\(show.stdout)\(show.stderr)")

            let poll = try cli.run(["poll", vin, "--store"])
            #expect(poll.status == 0, "\(poll.stderr)")
            #expect(poll.stdout.contains("doors.locks.lock_state") && poll.stdout.contains("front_left"))
            #expect(poll.stderr.contains("stored"))
            #expect(try await h.store.latestValues(vin: newVIN).count > 10, "--store wrote the samples")

            let remove = try cli.run(["vehicles", "remove", vin, "--json"])
            #expect(remove.status == 0, "\(remove.stderr)")
            #expect(remove.stdout.contains(family == .platform ? "revoking" : "revoked"))
            let again = try cli.run(["vehicles", "remove", vin])
            #expect(again.status == 1)
            #expect(again.stderr.contains("HTTP 409"))
            #expect(again.stderr.split(separator: "\n").count == 1, "one line: \(again.stderr)")
        }
    }

    @Test func badInputGivesOneLineAndNonZeroExit() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let cli = CLI(config: try makeConfig(port: h.port, family: .platform, database: h.databasePath))
            defer { try? FileManager.default.removeItem(atPath: cli.config) }
            let badVIN = try cli.run(["vehicles", "show", "NOT-A-VIN"])
            #expect(badVIN.status == 64)
            #expect(badVIN.stderr.contains("invalid VIN"))
            let wrongSecret = try cli.run(["vehicles", "list"], secret: "wrong-secret")
            #expect(wrongSecret.status == 78)
            #expect(
                wrongSecret.stderr.contains("HTTP 401") && wrongSecret.stderr.contains("api.client_secret")
                    && !wrongSecret.stderr.contains("wrong-secret"))
            // The daemon itself: the fleet sync learns that the credentials are refused and stops it.
            let daemon = try cli.run(["run"], secret: "wrong-secret")
            #expect(daemon.status == 78, "\(daemon.stderr)")
            #expect(daemon.stderr.contains("api.client_secret") && !daemon.stderr.contains("wrong-secret"))
            let missing = try CLI(config: "/nonexistent.yaml").run(["vehicles", "list"])
            #expect(missing.status == 78)
            #expect(
                missing.stderr
                    == "fleet-telemetry: /nonexistent.yaml: cannot read the config file: does not exist\n"
            )
        }
    }

    /// The demo replaces only its own databases: a daemon database is refused and left as it was.
    @Test func demoNeverReplacesADaemonDatabase() async throws {
        // Only the emulator's VINs, but written by the daemon: data to keep.
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            let polls = try await h.store.summary().pollsByStatus.values.reduce(0, +)
            let result = try CLI(config: "/nonexistent.yaml").runDemo(database: h.databasePath)
            #expect(result.status == 74)
            #expect(result.stderr.contains("was written by fleet-telemetry run, poll --store or import"))
            #expect(try await h.store.summary().pollsByStatus.values.reduce(0, +) == polls, "left as it was")
        }
        // A database of an earlier release (no role recorded) with another vehicle.
        let path = NSTemporaryDirectory() + "ft-demo-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try TelemetryStore(path: path)
        try await store.setStatus(.active, reason: nil, vin: newVIN, at: harnessStart)
        let result = try CLI(config: "/nonexistent.yaml").runDemo(database: path)
        #expect(result.status == 74)
        #expect(result.stderr.contains("holds data of 1 vehicle that is not the emulator's"))
        #expect(try await store.vehicles().map(\.vin) == [newVIN])
    }
}

@Suite struct ImportCommandTests {
    @Test func importAsAUserRunsIt() throws {
        let directory = NSTemporaryDirectory() + "ft-import-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/capture.jsonl"
        try [
            try fixtureText("vehicle_data_autoapi13_full.json"), "{broken",
            try fixtureText("vehicle_data_autoapi13_minimal.json"),
        ]
        .joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let result = try CLI.execute(["import", file, "--database", directory + "/t.sqlite"])
        let stderr = result.stderr
        #expect(result.status == 0)
        #expect(
            stderr.hasPrefix(
                "imported 2 documents (0 duplicate push messages skipped), 57 samples, 0 events, 1 rejected"),
            "\(stderr)")
        #expect(stderr.contains("rejected \(file):2: not valid JSON"))
    }

    /// `database.max_size_mb` caps an import as it caps polling: the import stops at the cap with
    /// the cap named and the counts so far, and keeps every batch committed before.
    @Test func importStopsAtTheConfiguredSizeCap() throws {
        let directory = NSTemporaryDirectory() + "ft-import-cap-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // ~6 MB of the emulator's responses: 100 vehicles, one every 5 simulated minutes.
        let start = Timestamp(iso8601: "2026-11-28T00:00:00Z")!
        var simulations = (1...100).map {
            VehicleSimulation(vin: EmulatorConfiguration.vin(index: $0), seed: UInt64($0), start: start)
        }
        var lines: [String] = []
        for index in 0..<3_000 {
            let snapshot = simulations[index % 100].snapshot(
                at: start.adding(milliseconds: Int64(index / 100) * 300_000))
            lines.append(VehicleDataRenderer.render(snapshot, shape: .autoAPI, requestID: "r").serialized)
        }
        let file = directory + "/capture.jsonl"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let database = directory + "/t.sqlite"
        let config = directory + "/config.yaml"
        try """
        api:
          base_url: http://127.0.0.1:9
          client_id: x
          client_secret:
            env: HM_SECRET
        database:
          path: \(database)
          max_size_mb: 1
        vehicles: [\(EmulatorConfiguration.vin(index: 1))]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try CLI.execute(["import", file, "--config", config], environment: ["HM_SECRET": "s"])
        #expect(result.status == 74, "\(result.stderr)")
        #expect(result.stderr.contains("database or disk is full"), "\(result.stderr)")
        #expect(result.stderr.contains("database.max_size_mb is 1"), "\(result.stderr)")
        #expect(result.stderr.contains("imported "), "the counts so far are printed")
        #expect(((try FileManager.default.attributesOfItem(atPath: database))[.size] as? Int ?? .max) <= 1 << 20)
        let connection = try Connection(path: database)
        #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
        #expect(
            try connection.scalarInt("SELECT count(*) FROM samples") ?? 0 > 0,
            "batches committed before the cap are kept")
    }
}

extension CLI {
    func runDemo(database: String) throws -> Result {
        try Self.execute(["demo", "--duration", "1", "--database", database])
    }
}
