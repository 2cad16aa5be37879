import ArgumentParser
import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetIngestion
import FleetModel
import FleetStore
import Foundation
import FleetMonitoring
import Logging
import Metrics
import Prometheus
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
        // `systemctl reload` may come before the reload service listens: a SIGHUP then must not
        // end the process (its default action); the reload service traps it from then on.
        signal(SIGHUP, SIG_IGN)
        let configuration: DaemonConfiguration
        let clientConfiguration: ClientConfiguration
        let sinkSecrets: SinkSecrets
        do {
            configuration = try ConfigLoader.load(path: config)
            clientConfiguration = try configuration.clientConfiguration(
                file: config, environment: ProcessInfo.processInfo.environment)
            sinkSecrets = try SinkSecrets(
                configuration: configuration, file: config, environment: ProcessInfo.processInfo.environment)
        } catch let error as ConfigError {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.config
        }
        if let listen = configuration.metricsListen,
            let problem = ListenProbe.problem(host: listen.host, port: listen.port)
        {
            printError(
                "fleet-telemetry: \(config): metrics.listen \(listen): cannot listen: \(problem); change metrics.listen"
            )
            throw ExitStatus.config
        }
        bootstrapLogging(level: configuration.logLevel)
        let logger = Logger(label: "fleet-telemetry")
        let databasePath = database ?? configuration.databasePath
        let store: TelemetryStore
        let lock: DatabaseLock
        do {
            try DatabasePathError.check(databasePath)
            lock = try DatabaseLock(databasePath: databasePath)
            store = try await Daemon.openStore(path: databasePath, configuration: configuration)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
        // The metrics endpoint's registry collects every counter, gauge and timer of the process.
        let registry = PrometheusCollectorRegistry()
        if configuration.metricsListen != nil {
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultDurationHistogramBuckets = [
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
            ]
            MetricsSystem.bootstrap(factory)
            Gauge(label: "fleet_telemetry_build_info", dimensions: [("version", FleetTelemetryVersion.current)])
                .record(1)
        }
        let clock = SystemWallClock()
        // Before the API client, which must be shut down once it exists.
        let delivery: [any Service]
        do {
            delivery = try await Daemon.deliveryServices(
                configuration: configuration, secrets: sinkSecrets, store: store, clock: clock, logger: logger)
        } catch {
            printError("fleet-telemetry: \(config): sinks.mqtt: \(error)")
            throw ExitStatus.config
        }
        let client = HighMobilityClient(configuration: clientConfiguration, clock: clock, logger: logger)
        let sink = StdoutEventSink(logger: logger)
        let notifier = ServiceNotifier(environment: ProcessInfo.processInfo.environment)
        let daemon = Daemon(
            configuration: configuration, store: store, client: client, clock: clock, sink: sink, logger: logger,
            notifier: notifier)
        let reloader = ReloadService(
            daemon: daemon, path: config, initial: configuration, notifier: notifier, logger: logger)
        logger.info(
            "fleet-telemetry \(FleetTelemetryVersion.current): database \(databasePath), API \(clientConfiguration.baseURL) (\(clientConfiguration.pathFamily.rawValue) paths)"
        )
        if let warning = configuration.api.clientSecret.exposureWarning(
            file: config, environment: ProcessInfo.processInfo.environment)
        {
            logger.warning("\(warning)")
        }
        defer { sink.flush(timeout: .seconds(2)) }
        var services: [any Service] = [daemon, reloader] + delivery
        let sinkNames =
            configuration.webhooks.map { "webhook \($0.name)" } + (configuration.mqtt.map { ["MQTT \($0.url)"] } ?? [])
        if !sinkNames.isEmpty { logger.info("delivering events to \(sinkNames.joined(separator: ", "))") }
        if let listen = configuration.metricsListen {
            let polling = daemon.polling
            services.append(
                MonitoringServer.application(
                    host: listen.host, port: listen.port, registry: registry,
                    unhealthyReason: { await polling.unhealthyReason() }, logger: logger))
            logger.info("metrics and health on http://\(listen)/metrics and /healthz")
        }
        try await runServices(services, logger: logger)
        withExtendedLifetime(lock) {}
    }
}

/// Runs `services` in one `ServiceGroup` that stops gracefully on SIGTERM and SIGINT: the polling
/// loop cancels the requests still waiting for an answer and stores those answered, which takes
/// about a second (waits for another process's database lock are cut to 1 s); 10 s after the
/// signal anything still running is cancelled. Refused credentials end the command with one line
/// on standard error and ``ExitStatus/config``.
func runServices(_ services: [ServiceGroupConfiguration.ServiceConfiguration], logger: Logger) async throws {
    var groupConfiguration = ServiceGroupConfiguration(
        services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    groupConfiguration.maximumGracefulShutdownDuration = .seconds(10)
    do {
        try await ServiceGroup(configuration: groupConfiguration).run()
    } catch let error as DaemonError {
        printError("fleet-telemetry: \(error)")
        throw ExitStatus.config
    }
}

/// ``runServices(_:logger:)`` for services that all run until the group stops.
func runServices(_ services: [any Service], logger: Logger) async throws {
    try await runServices(services.map { .init(service: $0) }, logger: logger)
}
