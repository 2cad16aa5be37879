import FleetClient
import FleetDaemon
import FleetEmulator
import FleetEvents
import FleetIngestion
import FleetModel
import FleetStore
import Foundation
import Logging
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A vehicle-data body with a position and the vehicle's lock state, observed at `time`.
private func document(vin: VIN, latitude: Double, longitude: Double, lock: String, at time: String) -> String {
    """
    {"vin":"\(vin)","doors":{"locks_state":{"data":"\(lock)","timestamp":"\(time)"}},\
    "trunk":{"lock":{"data":"\(lock)","timestamp":"\(time)"}},\
    "vehicle_location":{"coordinates":{"data":{"latitude":\(latitude),"longitude":\(longitude)},"timestamp":"\(time)"}}}
    """
}

/// The event types printed by a command, one JSON line each.
private func eventTypes(_ stdout: String) -> [String] {
    stdout.split(separator: "\n").compactMap { line in
        (try? JSONParser.parse(Array(line.utf8)))?["type"]?.stringValue
    }
}

// The suites that run the built binary are nested in the serialized `CommandLineTests`: a
// child process waited for blocks a thread of the 2-core machine's cooperative pool, and the
// emulator it talks to needs that pool.
extension CommandLineTests {
    /// The configured event rules hold on every path that writes: `import --config`, `poll --store`.
    @Suite struct ConfiguredRulesTests {
        /// A config with a geofence around the emulator's home area and `vehicle_moved` disabled.
        func config(port: Int, database: String) throws -> String {
            let path = try CommandLineTests().makeConfig(port: port, family: .platform, database: database)
            let events = """

                events:
                  disabled: [vehicle_moved]
                  geofences:
                    - {name: home, latitude: 52.52, longitude: 13.40, radius_m: 50000}

                """
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(events.utf8))
            return path
        }

        func temporaryFile(_ text: String, suffix: String) throws -> String {
            let path = NSTemporaryDirectory() + "ft-rules-\(UUID().uuidString)" + suffix
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test func importHonoursTheConfiguredGeofenceAndDisabledRules() throws {
            let vin = VIN("1HMFT000000000077")!
            let lines = [
                document(vin: vin, latitude: 48.14, longitude: 11.58, lock: "locked", at: "2026-11-01T08:00:00Z"),
                document(vin: vin, latitude: 52.52, longitude: 13.40, lock: "unlocked", at: "2026-11-01T14:00:00Z"),
            ].joined(separator: "\n")
            let file = try temporaryFile(lines, suffix: ".jsonl")
            let database = NSTemporaryDirectory() + "ft-rules-\(UUID().uuidString).sqlite"
            let configFile = try config(port: 9, database: database)
            defer {
                for path in [file, configFile, database, database + "-wal", database + "-shm"] {
                    try? FileManager.default.removeItem(atPath: path)
                }
            }
            let configured = try CLI.execute(["import", file, "--config", configFile], environment: ["HM_SECRET": "x"])
            #expect(configured.status == 0, "\(configured.stderr)")
            let types = eventTypes(configured.stdout)
            #expect(types.contains("geofence_entered"), "\(configured.stdout)")
            #expect(!types.contains("vehicle_moved"), "disabled in the config")
            #expect(types.contains("vehicle_unlocked"))

            // The same documents without the config: the default rules (no geofence, vehicle_moved on).
            let other = database + "-defaults.sqlite"
            defer {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: other + suffix) }
            }
            let defaults = try CLI.execute(["import", file, "--database", other])
            #expect(defaults.status == 0, "\(defaults.stderr)")
            #expect(!eventTypes(defaults.stdout).contains("geofence_entered"))
            #expect(eventTypes(defaults.stdout).contains("vehicle_moved"))
        }

        @Test func pollStoreHonoursTheConfiguredGeofenceAndDisabledRules() async throws {
            try await withHarness(emulator: .init(vehicleCount: 1)) { h in
                let vin = EmulatorConfiguration.vin(index: 1)
                let configFile = try config(port: h.port, database: h.databasePath)
                defer { try? FileManager.default.removeItem(atPath: configFile) }
                // Far outside the fence, long before the emulator's observations.
                let earlier = try temporaryFile(
                    document(vin: vin, latitude: 48.14, longitude: 11.58, lock: "locked", at: "2026-01-01T08:00:00Z"),
                    suffix: ".jsonl")
                defer { try? FileManager.default.removeItem(atPath: earlier) }
                let imported = try CLI.execute(
                    ["import", earlier, "--config", configFile], environment: ["HM_SECRET": "x"])
                #expect(imported.status == 0, "\(imported.stderr)")

                let cli = CLI(config: configFile)
                let poll = try cli.run(["poll", vin.rawValue, "--store", "--json"])
                #expect(poll.status == 0, "\(poll.stderr)")
                let stored = try await h.store.events(vin: vin).map(\.type)
                #expect(stored.contains(.geofenceEntered), "\(stored)")
                #expect(!stored.contains(.vehicleMoved), "disabled in the config")
                // The poll went through the one ingestion path: its raw response is archived.
                #expect(try await h.store.archivedVINs(since: Timestamp(millisecondsSince1970: 0)) == [vin])
            }
        }
    }

}

/// A transition rule added in one place (the configuration's `transitions`) is picked up by
/// polling, import and reprocess alike.
@Suite struct NewTransitionRuleTests {
    /// `trunk.lock` going to `unlocked`: a rule the standard set does not have.
    static let trunkUnlocked = TransitionRule(
        property: "trunk.lock", from: .oneOf(["locked"]), to: .oneOf(["unlocked"]), event: .trunkOpened)

    static var events: EventRulesConfiguration {
        var events = EventRulesConfiguration()
        events.transitions.append(trunkUnlocked)
        return events
    }

    func isFromTheNewRule(_ event: Event) -> Bool {
        event.type == .trunkOpened && event.previousValue == "locked" && event.newValue == "unlocked"
    }

    @Test func pollingPicksItUp() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(60), events: Self.events) { h in
            for _ in 0..<30 { await h.step(by: .seconds(60)) }
            let delivered = await h.sink.events
            let stored = try await h.store.events()
            #expect(delivered.contains(where: isFromTheNewRule))
            #expect(stored.contains(where: isFromTheNewRule))
        }
    }

    @Test func importPicksItUp() async throws {
        let vin = VIN("1HMFT000000000078")!
        try await withImporter(events: Self.events) { importer, store, sink in
            var summary = Importer.Summary()
            let lines = [
                document(vin: vin, latitude: 52.5, longitude: 13.4, lock: "locked", at: "2026-11-01T08:00:00Z"),
                document(vin: vin, latitude: 52.5, longitude: 13.4, lock: "unlocked", at: "2026-11-01T09:00:00Z"),
            ].joined(separator: "\n")
            try await importer.importFile(
                named: "t.jsonl", content: Array(lines.utf8), wholeDocument: false, into: &summary)
            let delivered = await sink.events
            let stored = try await store.events(vin: vin)
            #expect(delivered.contains(where: isFromTheNewRule))
            #expect(stored.contains(where: isFromTheNewRule))
        }
    }

    @Test func reprocessPicksItUp() async throws {
        // Polled with the standard rules; the archive is reprocessed with the new one.
        try await withHarness(emulator: .init(vehicleCount: 2), interval: .seconds(60)) { h in
            for _ in 0..<30 { await h.step(by: .seconds(60)) }
            let polled = try await h.store.events()
            #expect(!polled.contains(where: isFromTheNewRule))
            var logger = Logger(label: "reprocess")
            logger.logLevel = .critical
            let ingestion = Daemon.ingestion(
                events: Self.events, archiveRawDays: 0, store: h.store, sink: DiscardingEventSink(), logger: logger)
            let summary = try await Reprocessor(ingestion: ingestion).run(since: nil)
            #expect(summary.eventsAdded > 0)
            let events = try await h.store.events()
            #expect(events.contains(where: isFromTheNewRule))
            #expect(
                events.filter { !isFromTheNewRule($0) }.count == events.count - summary.eventsAdded,
                "only events of the new rule were added: the others were stored already")
        }
    }
}

/// The loop production runs: waiting for a free request slot costs no wake-ups, and a closed
/// or stalled event output leaves polling and storing going.
@Suite struct PollingLoopTests {
    @Test func everySlotBusyOnSlowAnswersDoesNotSpin() async throws {
        try await withHarness(
            emulator: .init(vehicleCount: 6, timeScale: 1), interval: .seconds(1), maxConcurrentRequests: 4
        ) { h in
            await h.step(by: .seconds(1))
            let before = await h.service.turns
            h.emulator.inject(.init(status: 503, delay: .milliseconds(400)), vin: nil, count: 1_000)
            // Every VIN falls due while 4 slots hold answers that take 400 ms of real time.
            let results = await h.step(by: .seconds(5))
            #expect(results.count == 6, "every vehicle polled once: the ones that waited for a slot too")
            let turns = await h.service.turns - before
            // A turn per poll that ends and one for the clock's step; a spinning loop makes thousands.
            #expect(turns <= 20, "the loop woke \(turns) times")
        }
    }

    @Test func aReaderThatStopsReadingNeverStallsDelivery() async throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        defer {
            close(descriptors[0])
            close(descriptors[1])
        }
        let logs = LogCapture()
        let sink = StdoutEventSink(fileDescriptor: descriptors[1], logger: logs.logger(label: "sink"))
        let event = Event(
            vin: VIN("1HMFT000000000079")!, type: .doorUnlocked, instance: "front_left", occurredAt: harnessStart,
            detectedAt: harnessStart, previousValue: "locked", newValue: "unlocked")
        // Far more than a pipe holds (64 KiB) and than the sink queues: nobody reads.
        let batch = [Event](repeating: event, count: 1_000)
        for _ in 0..<40 { await sink.deliver(batch) }
        #expect(!sink.flush(timeout: .milliseconds(200)), "the lines wait for a reader")
        #expect(logs.text.components(separatedBy: "event output is not being read").count == 2, "logged once")
    }

    @Test func closedEventOutputIsLoggedOnceAndNothingStops() async throws {
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        close(descriptors[0])  // the reader exited, as `head -1` does
        defer { close(descriptors[1]) }
        let logs = LogCapture()
        let sink = StdoutEventSink(fileDescriptor: descriptors[1], logger: logs.logger(label: "sink"))
        let event = Event(
            vin: VIN("1HMFT000000000079")!, type: .doorUnlocked, instance: "front_left", occurredAt: harnessStart,
            detectedAt: harnessStart, previousValue: "locked", newValue: "unlocked")
        await sink.deliver([event])
        #expect(sink.flush(timeout: .seconds(10)))
        await sink.deliver([event])
        #expect(sink.isBroken)
        #expect(logs.text.components(separatedBy: "event output closed").count == 2, "logged once: \(logs.text)")
    }
}

extension CommandLineTests {
    /// `fleet-telemetry run | head -1`: once the reader of standard output exits, the daemon logs
    /// it once and goes on polling and storing; SIGINT still ends it with status 0.
    @Suite struct ClosedStandardOutputTests {
        @Test func runGoesOnAfterTheReaderOfItsOutputExited() async throws {
            try await withHarness(emulator: .init(vehicleCount: 2)) { h in
                let config = NSTemporaryDirectory() + "ft-pipe-\(UUID().uuidString).yaml"
                let vins = h.emulator.configuration.vins.map { "  - \($0)" }.joined(separator: "\n")
                try """
                api:
                  base_url: http://127.0.0.1:\(h.port)
                  client_id: \(EmulatorConfiguration.defaultClientID)
                  client_secret:
                    env: HM_SECRET
                database:
                  path: \(h.databasePath)
                polling:
                  interval: 1s
                fleet:
                  sync: false
                vehicles:
                \(vins)
                """.write(toFile: config, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(atPath: config) }
                let process = Process()
                process.executableURL = CLI.binary
                process.arguments = ["run", "--config", config]
                process.environment = ["HM_SECRET": EmulatorConfiguration.defaultClientSecret, "PATH": "/usr/bin:/bin"]
                let out = Pipe(), err = Pipe()
                process.standardOutput = out
                process.standardError = err
                try process.run()
                defer { if process.isRunning { process.terminate() } }
                // Read up to the first event line, then close the pipe as `head -1` does.
                var received: [UInt8] = []
                let reader = out.fileHandleForReading
                let descriptor = reader.fileDescriptor
                _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
                let deadline = ContinuousClock.now + .seconds(20)
                while !received.contains(0x0A) && ContinuousClock.now < deadline {
                    h.clock.advance(by: .seconds(1800))  // the simulated vehicles move on
                    try await Task.sleep(for: .milliseconds(300))
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    let count = read(descriptor, &buffer, buffer.count)
                    if count > 0 { received += buffer.prefix(count) }
                }
                #expect(received.contains(0x0A), "an event line arrived")
                try reader.close()
                let pollsAtClose = try await h.store.summary().pollsByStatus.values.reduce(0, +)
                for _ in 0..<10 {
                    h.clock.advance(by: .seconds(1800))
                    try await Task.sleep(for: .milliseconds(300))
                }
                #expect(process.isRunning, "the daemon outlives the reader of its output")
                let pollsLater = try await h.store.summary().pollsByStatus.values.reduce(0, +)
                #expect(pollsLater > pollsAtClose, "polling and storing went on: \(pollsAtClose) → \(pollsLater)")
                process.interrupt()
                let stderr = err.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                #expect(process.terminationReason == .exit && process.terminationStatus == 0)
                #expect(String(decoding: stderr, as: UTF8.self).contains("event output closed"))
            }
        }
    }
}

/// `reprocess` while the daemon polls: a poll stored after the archive was read keeps its samples.
@Suite struct ReprocessWhilePollingTests {
    @Test func aPollStoredMeanwhileKeepsItsSamples() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(60)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            for _ in 0..<3 { await h.step(by: .seconds(60)) }
            let store = h.store
            let archived = try await store.archivedResponses(vin: vin, since: Timestamp(millisecondsSince1970: 0))
            let normalizer = h.daemon.ingestion.normalizer
            let responses = try archived.map { response in
                (
                    response.receivedAt,
                    try normalizer.normalize(body: response.body, vin: vin, receivedAt: response.receivedAt).samples
                )
            }
            // The daemon stores another poll between the reprocessor's read and its write.
            await h.step(by: .seconds(60))
            let before = try await store.summary().samples
            let counts = try await store.replaceArchivedSamples(
                vin: vin, since: Timestamp(millisecondsSince1970: 0), until: archived.map(\.receivedAt).max(),
                responses: responses, detector: h.daemon.ingestion.rules.replaying)
            #expect(counts.deleted == counts.inserted)
            #expect(try await store.summary().samples == before, "no sample of the later poll was deleted")
        }
    }
}

/// The loop's maintenance chore decides silence through the event rules.
@Suite struct MaintenanceChoreTests {
    @Test func aVehicleThatSendsNothingNewFallsSilentOnce() async throws {
        var events = EventRulesConfiguration()
        events.silentAfter = .seconds(30)
        try await withHarness(emulator: .init(vehicleCount: 1), interval: .seconds(5), events: events) { h in
            for _ in 0..<3 { await h.step(by: .seconds(5)) }
            h.emulator.inject(.init(status: 503), vin: nil, count: 1_000)
            for _ in 0..<12 { await h.step(by: .seconds(5)) }
            let delivered = await h.sink.events
            #expect(delivered.filter { $0.type == .vehicleSilent }.count == 1, "\(delivered.map(\.jsonLine))")
        }
    }
}
