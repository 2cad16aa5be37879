import ArgumentParser
import FleetClient
import FleetDaemon
import FleetEvents
import FleetModel
import FleetStore
import Foundation
import Logging
import ServiceLifecycle

/// `fleet-telemetry run`: the daemon proper.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: poll every configured VIN on schedule until SIGTERM or SIGINT."
    )

    @Option(name: .long, help: "The config file.")
    var config: String = "/etc/fleet-telemetry/config.yaml"

    @Option(name: .long, help: "The SQLite database file (overrides database.path).")
    var database: String?

    func run() async throws {
        let configuration: DaemonConfiguration
        let clientConfiguration: ClientConfiguration
        do {
            configuration = try ConfigLoader.load(path: config)
            clientConfiguration = try configuration.clientConfiguration(file: config, environment: ProcessInfo.processInfo.environment)
        } catch let error as ConfigError {
            printError("fleet-telemetry: \(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        bootstrapLogging(level: configuration.logLevel)
        let logger = Logger(label: "fleet-telemetry")
        let databasePath = database ?? configuration.databasePath
        let store: TelemetryStore
        let lock: DatabaseLock
        do {
            try validateDatabasePath(databasePath)
            lock = try DatabaseLock(databasePath: databasePath)
            store = try TelemetryStore(path: databasePath)
            try await store.setStaleAfter(seconds: configuration.staleAfter.components.seconds)
            if let megabytes = configuration.maxSizeMegabytes {
                try await store.setMaximumSize(bytes: Int64(megabytes) << 20)
            }
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitCode(74)  // EX_IOERR
        }
        let clock = SystemWallClock()
        let client = HighMobilityClient(configuration: clientConfiguration, clock: clock, logger: logger)
        var pipeline = PollPipeline(client: client, store: store, sink: StdoutEventSink(), clock: clock, logger: logger, rules: EventRules(configuration: configuration.events))
        pipeline.retention = configuration.retention
        pipeline.archiveRawDays = configuration.archiveRawDays
        let polling = PollingService(
            vins: configuration.vehicles,
            policy: configuration.polling.policy,
            pipeline: pipeline, clock: clock, maxConcurrentRequests: configuration.polling.maxConcurrentRequests,
            fleetSync: configuration.fleet.sync ? FleetSync(interval: configuration.fleet.syncInterval) { try await client.fleetVehicles() } : nil,
            logger: logger)
        logger.info("database \(databasePath), API \(clientConfiguration.baseURL) (\(clientConfiguration.pathFamily.rawValue) paths)")
        // Polls in flight get 10 s to finish and be stored; then they are cancelled.
        var groupConfiguration = ServiceGroupConfiguration(services: [polling], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(10)
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch let error as DaemonError {
            try? await client.shutdown()
            printError("fleet-telemetry: \(error)")
            throw ExitCode(78)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        withExtendedLifetime(lock) {}
    }
}

/// Refuses database paths that would silently lose data.
func validateDatabasePath(_ path: String) throws {
    struct BadPath: Error, CustomStringConvertible { let description: String }
    if path.isEmpty { throw BadPath(description: "the database path is empty") }
    if path == ":memory:" || path.hasPrefix("file::memory:") {
        throw BadPath(description: "\(path) is an in-memory database: everything would be lost on exit; give a file path")
    }
}
