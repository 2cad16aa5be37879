import ArgumentParser
import FleetClient
import FleetDaemon
import FleetEvents
import FleetEmulator
import FleetModel
import FleetStore
import Foundation
import Logging
import ServiceLifecycle

/// `fleet-telemetry demo`: the daemon against the built-in emulator, for a minute.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the daemon against the built-in High Mobility emulator and print events as JSON lines.",
        discussion: """
            Starts the emulator on a free loopback port with simulated vehicles, polls them, writes \
            the database and prints every change event as one JSON line on standard output. A \
            summary goes to standard error on exit. Stops after --duration seconds or on Ctrl-C.
            """
    )

    @Option(name: .long, help: "Seconds to run.")
    var duration: Int = 60

    @OptionGroup var simulation: SimulationOptions

    @Option(name: .long, help: "Polling interval per VIN, in wall-clock time (e.g. 1s, 500ms); default 1s, or polling.interval of --config.")
    var interval: String?

    @Option(name: .long, help: "A config file whose database.path, polling and log_level apply (its api section is replaced by the emulator).")
    var config: String?

    @Option(name: .long, help: "The SQLite database file.")
    var database: String?

    @Option(name: .long, help: "Log level on standard error (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String = "warning"

    func validate() throws {
        guard duration > 0, duration <= 31_536_000 else { throw ValidationError("--duration must be between 1 and 31536000 seconds (a year)") }
        if let interval {
            guard let d = DurationParser.parse(interval), d >= .milliseconds(50) else {
                throw ValidationError("--interval must be a duration of at least 50ms, such as 1s or 500ms")
            }
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
    }

    func run() async throws {
        var polling = DaemonConfiguration.Polling(interval: .seconds(1), maxBackoff: .seconds(30), maxConcurrentRequests: 8)
        polling.slowInterval = .seconds(5)
        polling.privacyInterval = .seconds(5)
        var databasePath = "fleet-telemetry-demo.sqlite"
        var level = logLevel
        if let config {
            do {
                let loaded = try ConfigLoader.load(path: config)
                polling = loaded.polling
                databasePath = loaded.databasePath
                level = loaded.logLevel
            } catch {
                printError("fleet-telemetry: \(error)")
                throw ExitCode(78)
            }
        }
        databasePath = database ?? databasePath
        if let interval, let parsed = DurationParser.parse(interval) { polling.interval = parsed }
        let lock: DatabaseLock
        do {
            try validateDatabasePath(databasePath)
            lock = try DatabaseLock(databasePath: databasePath)
            try DemoDatabase.prepare(path: databasePath)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitCode(74)
        }
        bootstrapLogging(level: level)
        let logger = Logger(label: "fleet-telemetry")

        let store: TelemetryStore
        do {
            store = try TelemetryStore(path: databasePath)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitCode(74)
        }
        let clock = SystemWallClock()
        let startedAt = clock.now()
        let emulator = Emulator(configuration: simulation.emulatorConfiguration(), wallClock: clock)
        // One more vehicle is enrolled at the start: its clearance turns approved a few seconds in
        // (clearance_changed) and it joins the polling at the next fleet sync.
        emulator.enroll(EmulatorConfiguration.vin(index: simulation.vehicles + 1))
        // One vehicle starts in privacy mode, so the demo shows privacy_mode_entered and _left.
        emulator.inject(.init(status: 403, body: #"{"errors":[{"title":"Forbidden","detail":"Privacy mode is active"}]}"#),
                        vin: EmulatorConfiguration.vin(index: min(3, simulation.vehicles)), count: 1)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = EmulatorServer.application(emulator: emulator, port: 0, logger: logger) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        let daemon = DemoDaemon(ports: ports, emulator: emulator, store: store, polling: polling, clock: clock, logger: logger)
        let timer = StopAfter(duration: .seconds(duration))
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: server),
                .init(service: daemon, successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: timer, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: groupConfiguration)
        printError("fleet-telemetry demo: \(simulation.vehicles) simulated vehicles, \(simulation.timeScale)× simulated time, polling every \(DurationParser.format(polling.interval)), database \(databasePath), for \(duration) s (Ctrl-C stops)")
        try await group.run()
        let summary = try await store.summary(since: startedAt)
        printError("\nfleet-telemetry demo summary (\(databasePath))\n" + summary.text)
        withExtendedLifetime(lock) {}
    }
}

/// Waits for the emulator's port, then runs the polling loop against it.
struct DemoDaemon: Service {
    let ports: AsyncStream<Int>
    let emulator: Emulator
    let store: TelemetryStore
    let polling: DaemonConfiguration.Polling
    let clock: any WallClock
    let logger: Logger

    func run() async throws {
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return }
        let client = HighMobilityClient(
            configuration: .init(baseURL: "http://127.0.0.1:\(port)", clientID: emulator.configuration.clientID, clientSecret: Secret(emulator.configuration.clientSecret)),
            clock: clock, logger: logger)
        // A geofence around the simulated vehicles' home area, so trips show geofence events.
        var rules = EventRulesConfiguration()
        rules.geofences = [.init(name: "home", latitude: 52.52, longitude: 13.40, radiusMeters: 8000)]
        // A parked vehicle sends nothing new for hours of simulated time: silent after 8 s.
        rules.silentAfter = .seconds(8)
        let pipeline = PollPipeline(client: client, store: store, sink: StdoutEventSink(), clock: clock, logger: logger, rules: EventRules(configuration: rules))
        // The VINs come from the emulator's fleet clearance list, as they would from the platform.
        let service = PollingService(
            vins: [],
            policy: polling.policy,
            pipeline: pipeline, clock: clock, maxConcurrentRequests: polling.maxConcurrentRequests,
            fleetSync: FleetSync(interval: .seconds(20)) { try await client.fleetVehicles() },
            seed: emulator.configuration.seed, logger: logger)
        do {
            try await service.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

/// Returns after `duration`, or at once on graceful shutdown.
struct StopAfter: Service {
    let duration: Duration

    func run() async throws {
        let duration = self.duration
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: duration)
        }
    }
}

/// The demo's database: each run starts a fresh one, since the emulator's simulated time starts
/// anew and observations of an earlier run would be "newer" than the new run's.
enum DemoDatabase {
    struct NotADemoDatabase: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String {
            "\(path) \(reason); the demo only replaces its own databases (choose another file with --database)"
        }
    }

    /// Empties `path` (and removes its `-wal`/`-shm` files) when it is a database an earlier demo wrote:
    /// one whose vehicles are all the emulator's (`1HMEMU…`).
    ///
    /// - Throws: ``NotADemoDatabase`` for any other existing file, which is left untouched.
    static func prepare(path: String) throws {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        guard size > 0 else { return }
        do {
            let others = try TelemetryStore.vehicleCount(inDatabaseAt: path, vinsNotStartingWith: "1HMEMU")
            guard others == 0 else { throw NotADemoDatabase(path: path, reason: "holds data of \(others) vehicle\(others == 1 ? "" : "s") that \(others == 1 ? "is" : "are") not the emulator's") }
        } catch let error as NotADemoDatabase {
            throw error
        } catch {
            throw NotADemoDatabase(path: path, reason: "exists and is not a fleet-telemetry demo database (\(error))")
        }
        // Emptied, not removed: the file keeps the inode this process holds its lock on.
        guard truncate(path, 0) == 0 else {
            throw NotADemoDatabase(path: path, reason: "could not be emptied (\(String(cString: strerror(errno))))")
        }
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            try FileManager.default.removeItem(atPath: path + suffix)
        }
    }
}
