import ArgumentParser
import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetIngestion
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

    @Option(
        name: .long,
        help:
            "Polling interval per VIN, in wall-clock time (e.g. 1s, 500ms); default 1s, or polling.interval of --config."
    )
    var interval: String?

    @Option(
        name: .long,
        help:
            "A config file whose settings apply (its api section is replaced by the emulator, its fleet sync and vehicles by the emulator's fleet)."
    )
    var config: String?

    @Option(name: .long, help: "The SQLite database file.")
    var database: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also POST every event to this URL, signed as Standard Webhooks says (sink name `demo`).",
            discussion:
                "The signing secret is $FLEET_TELEMETRY_WEBHOOK_SECRET (whsec_…), else a new one printed on standard error."
        ))
    var webhook: String?

    @Option(
        name: .long,
        help:
            "Also publish events and state to this MQTT broker (mqtt://HOST[:PORT] or mqtts://…), prefix fleet-telemetry."
    )
    var mqtt: String?

    @Option(name: .long, help: "Log level on standard error (trace, debug, info, notice, warning, error, critical).")
    var logLevel: String = "warning"

    func validate() throws {
        guard duration > 0, duration <= 31_536_000 else {
            throw ValidationError("--duration must be between 1 and 31536000 seconds (a year)")
        }
        if let interval {
            guard let d = DurationParser.parse(interval), d >= .milliseconds(50) else {
                throw ValidationError("--interval must be a duration of at least 50ms, such as 1s or 500ms")
            }
        }
        if let webhook {
            guard webhook.hasPrefix("http://") || webhook.hasPrefix("https://"), URL(string: webhook)?.host != nil
            else {
                throw ValidationError("--webhook must be an http:// or https:// URL, got \"\(webhook)\"")
            }
        }
        if let mqtt, DaemonConfiguration.MQTT.BrokerURL(mqtt) == nil {
            throw ValidationError("--mqtt must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got \"\(mqtt)\"")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        // The demo's own settings; with --config, that file's settings (but its api section).
        var configuration = DaemonConfiguration(
            api: .init(baseURL: "http://127.0.0.1", clientID: "", clientSecret: .literal(Secret(""))),
            databasePath: "fleet-telemetry-demo.sqlite",
            polling: .init(interval: .seconds(1), maxBackoff: .seconds(30), maxConcurrentRequests: 8))
        configuration.polling.slowInterval = .seconds(5)
        configuration.polling.privacyInterval = .seconds(5)
        configuration.logLevel = logLevel
        // A geofence around the simulated vehicles' home area, so trips show geofence events; a
        // parked vehicle sends nothing new for hours of simulated time (about 8 s of wall time):
        // silent after 6 s.
        configuration.events.geofences = [.init(name: "home", latitude: 52.52, longitude: 13.40, radiusMeters: 8000)]
        configuration.events.silentAfter = .seconds(6)
        if let config {
            do {
                configuration = try ConfigLoader.load(path: config)
            } catch {
                printError("fleet-telemetry: \(error)")
                throw ExitStatus.config
            }
        }
        // The VINs come from the emulator's fleet clearance list, as they would from the platform.
        configuration.vehicles = []
        configuration.fleet = .init(sync: true, syncInterval: .seconds(20))
        configuration.databasePath = database ?? configuration.databasePath
        if let interval, let parsed = DurationParser.parse(interval) { configuration.polling.interval = parsed }
        // The sinks of --config, and those of --webhook and --mqtt.
        var environment = ProcessInfo.processInfo.environment
        if let webhook {
            let variable = "FLEET_TELEMETRY_WEBHOOK_SECRET"
            if let given = environment[variable], WebhookSecret(given) == nil {
                printError(
                    "fleet-telemetry: $\(variable) is not a Standard Webhooks secret (whsec_ and the base64 of at least 16 bytes); unset it for a new one"
                )
                throw ExitStatus.config
            }
            if environment[variable] == nil {
                let key = (0..<24).map { _ in UInt8.random(in: 0...255) }
                environment[variable] = "whsec_" + Data(key).base64EncodedString()
                printError("fleet-telemetry demo: webhook \(webhook) signed with \(environment[variable]!)")
            }
            configuration.webhooks.removeAll { $0.name == "demo" }
            configuration.webhooks.append(.init(name: "demo", url: webhook, secret: .environment(variable)))
        }
        if let mqtt, let url = DaemonConfiguration.MQTT.BrokerURL(mqtt) { configuration.mqtt = .init(url: url) }
        let sinkSecrets: SinkSecrets
        do {
            sinkSecrets = try SinkSecrets(
                configuration: configuration, file: config ?? "demo", environment: environment)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.config
        }
        let databasePath = configuration.databasePath
        let lock: DatabaseLock
        do {
            try DatabasePathError.check(databasePath)
            lock = try DatabaseLock(databasePath: databasePath)
            try DemoDatabase.prepare(path: databasePath)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
        bootstrapLogging(level: configuration.logLevel)
        let logger = Logger(label: "fleet-telemetry")

        let store: TelemetryStore
        do {
            store = try await Daemon.openStore(path: databasePath, configuration: configuration, role: .demo)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
        let clock = SystemWallClock()
        let startedAt = clock.now()
        let emulator = Emulator(configuration: simulation.emulatorConfiguration(), wallClock: clock)
        // One more vehicle is enrolled at the start: its clearance turns approved a few seconds in
        // (clearance_changed) and it joins the polling at the next fleet sync.
        emulator.enroll(EmulatorConfiguration.vin(index: simulation.vehicles + 1))
        // One vehicle starts in privacy mode, so the demo shows privacy_mode_entered and _left.
        emulator.inject(
            .init(status: 403, body: #"{"errors":[{"title":"Forbidden","detail":"Privacy mode is active"}]}"#),
            vin: EmulatorConfiguration.vin(index: min(3, simulation.vehicles)), count: 1)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = EmulatorServer.application(emulator: emulator, port: 0, logger: logger) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        let daemon = DemoDaemon(
            ports: ports, emulator: emulator, configuration: configuration, store: store, clock: clock, logger: logger)
        let delivery: [any Service]
        do {
            delivery = try await Daemon.deliveryServices(
                configuration: configuration, secrets: sinkSecrets, store: store, clock: clock, logger: logger)
        } catch {
            printError("fleet-telemetry: sinks.mqtt: \(error)")
            throw ExitStatus.config
        }
        let timer = StopAfter(duration: .seconds(duration))
        printError(
            "fleet-telemetry demo: \(simulation.vehicles) simulated vehicles, \(simulation.timeScale)× simulated time, "
                + "polling every \(DurationParser.format(configuration.polling.interval)), database \(databasePath), "
                + "for \(duration) s (Ctrl-C stops)")
        try await runServices(
            [
                .init(service: server),
                .init(service: daemon, successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: timer, successTerminationBehavior: .gracefullyShutdownGroup),
            ] + delivery.map { .init(service: $0) }, logger: logger)
        let summary = try await store.summary(since: startedAt)
        printError("\nfleet-telemetry demo summary (\(databasePath))\n" + summary.text)
        let undelivered = try await store.outboxDepth()
        if !undelivered.isEmpty {
            printError(
                "undelivered: "
                    + undelivered.sorted { $0.key < $1.key }.map { "\($0.value) for \($0.key)" }.joined(separator: ", ")
                    + " (in the outbox; `fleet-telemetry events deliveries --database \(databasePath)`)")
        }
        withExtendedLifetime(lock) {}
    }
}

/// Waits for the emulator's port, then runs the daemon (the one assembly) against it.
struct DemoDaemon: Service {
    let ports: AsyncStream<Int>
    let emulator: Emulator
    let configuration: DaemonConfiguration
    let store: TelemetryStore
    let clock: any WallClock
    let logger: Logger

    func run() async throws {
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return }
        let client = HighMobilityClient(
            configuration: .init(
                baseURL: "http://127.0.0.1:\(port)", clientID: emulator.configuration.clientID,
                clientSecret: Secret(emulator.configuration.clientSecret)),
            clock: clock, logger: logger)
        let sink = StdoutEventSink(logger: logger)
        defer { sink.flush(timeout: .seconds(2)) }
        let daemon = Daemon(
            configuration: configuration, store: store, client: client, clock: clock, sink: sink,
            seed: emulator.configuration.seed, logger: logger)
        try await daemon.run()
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
    /// one that no daemon command wrote (the `written_by` setting) and whose vehicles are all the
    /// emulator's (`1HMEMU…`).
    ///
    /// - Throws: ``NotADemoDatabase`` for any other existing file, which is left untouched.
    static func prepare(path: String) throws {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        guard size > 0 else { return }
        do {
            if try TelemetryStore.role(ofDatabaseAt: path) == .daemon {
                throw NotADemoDatabase(
                    path: path, reason: "was written by fleet-telemetry run, poll --store or import")
            }
            let others = try TelemetryStore.vehicleCount(inDatabaseAt: path, vinsNotStartingWith: "1HMEMU")
            guard others == 0 else {
                throw NotADemoDatabase(
                    path: path,
                    reason:
                        "holds data of \(others) vehicle\(others == 1 ? "" : "s") that \(others == 1 ? "is" : "are") not the emulator's"
                )
            }
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
