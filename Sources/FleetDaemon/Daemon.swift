import FleetClient
import FleetConfiguration
import FleetConsent
import FleetEvents
import FleetIngestion
import FleetModel
import FleetScheduling
import FleetStore
import Logging
import Metrics
import ServiceLifecycle

/// The one assembly of the daemon: builds the running daemon from a validated
/// ``DaemonConfiguration``, a clock and, optionally, an injected client and event sink, so that a
/// setting means the same in `run`, `demo` and the tests.
///
/// FleetDaemon owns the assembly and the polling loop; it must never hold SQL (FleetStore does),
/// read an HTTP status (FleetClient does) or decide an event (FleetEvents does). The commands
/// that write without polling (`poll --store`, `import`, `reprocess`) take their ingestion path
/// from ``ingestion(events:archiveRawDays:store:sink:logger:metrics:)``, the only place that
/// builds the event rules.
public struct Daemon: Sendable {
    /// The validated configuration the daemon was built from.
    public let configuration: DaemonConfiguration
    /// The database every write goes to.
    public let store: TelemetryStore
    /// The API client; shut down when ``run()`` returns.
    public let client: HighMobilityClient
    /// The ingestion path of the daemon's polls, with the configured rules and sink.
    public let ingestion: Ingestion
    /// The polling loop.
    public let polling: PollingService

    /// - Parameters:
    ///   - configuration: The validated configuration; its `api` section is not read (the client
    ///     is built from `client`).
    ///   - store: The database, opened with ``openStore(path:configuration:)``.
    ///   - client: The API client, configured from `api` (or for an emulator).
    ///   - clock: Every time decision's clock.
    ///   - sink: Where events go; by default one JSON line each on standard output.
    ///   - seed: Seeds the start offsets and jitter; random by default.
    ///   - metrics: Counters and timers; the process-wide `MetricsSystem` by default.
    ///   - notifier: Tells systemd about readiness, status and the watchdog (``ServiceNotifier``).
    ///   - onPoll: Called with each poll's result once it is recorded.
    public init(
        configuration: DaemonConfiguration, store: TelemetryStore, client: HighMobilityClient, clock: any WallClock,
        sink: (any EventSink)? = nil, seed: UInt64? = nil, logger: Logger, metrics: (any MetricsFactory)? = nil,
        notifier: ServiceNotifier = .disabled, onPoll: (@Sendable (PollPipeline.Result) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.store = store
        self.client = client
        let ingestion = Self.ingestion(
            events: configuration.events, archiveRawDays: configuration.archiveRawDays, store: store,
            sink: sink ?? StdoutEventSink(logger: logger), logger: logger, metrics: metrics)
        self.ingestion = ingestion
        let fleetSync =
            configuration.fleet.sync
            ? FleetSync(interval: configuration.fleet.syncInterval) { try await client.fleetVehicles() } : nil
        // The vehicles their owners connected: their grants, from the consent state file.
        let consent = ConsentTokens(
            file: GrantFile(path: configuration.consentStateFile), client: client, clock: clock, logger: logger)
        self.polling = PollingService(
            vins: configuration.vehicles, policy: configuration.polling.policy,
            pipeline: PollPipeline(client: client, ingestion: ingestion, clock: clock, consent: consent),
            maintenance: Maintenance(ingestion: ingestion, retention: configuration.retention, logger: logger),
            clock: clock, maxConcurrentRequests: configuration.polling.maxConcurrentRequests, fleetSync: fleetSync,
            seed: seed ?? UInt64.random(in: 0...UInt64.max), logger: logger, notifier: notifier, onPoll: onPoll)
    }

    /// What a reload did: the changes applied, and the settings that differ but apply only
    /// after a restart.
    public struct ReloadOutcome: Sendable, Hashable {
        public var applied: [String]
        public var needRestart: [String]
    }

    /// Applies `new` (a re-read config file) in place of `old` without dropping state: the
    /// `polling` section, the `vehicles` list, the `events` rules and geofences and
    /// `archive.raw_days`. `api`, `database`, `fleet`, `retention` and `metrics` take effect only
    /// after a restart and are named in ``ReloadOutcome/needRestart`` when they differ.
    public func reload(from old: DaemonConfiguration, to new: DaemonConfiguration) async -> ReloadOutcome {
        var needRestart: [String] = []
        if new.api != old.api { needRestart.append("api") }
        if new.databasePath != old.databasePath || new.staleAfter != old.staleAfter
            || new.maxSizeMegabytes != old.maxSizeMegabytes || new.repeatHeartbeat != old.repeatHeartbeat
        {
            needRestart.append("database")
        }
        if new.fleet != old.fleet { needRestart.append("fleet") }
        if new.retention != old.retention { needRestart.append("retention") }
        if new.metricsListen != old.metricsListen { needRestart.append("metrics") }
        if new.webhooks != old.webhooks || new.mqtt != old.mqtt { needRestart.append("sinks") }
        let ingestion = Self.ingestion(
            events: new.events, archiveRawDays: new.archiveRawDays, store: store, sink: self.ingestion.sink,
            logger: self.ingestion.logger, metrics: self.ingestion.metrics)
        var applied = await polling.apply(
            policy: new.polling.policy, vehicles: new.vehicles, ingestion: ingestion)
        if new.polling.maxConcurrentRequests != old.polling.maxConcurrentRequests {
            needRestart.append("polling.max_concurrent_requests")
        }
        if new.events != old.events { applied.append("event rules") }
        if new.archiveRawDays != old.archiveRawDays { applied.append("archive.raw_days") }
        if new.logLevel != old.logLevel { applied.append("log_level \(new.logLevel)") }
        return ReloadOutcome(applied: applied, needRestart: needRestart)
    }

    /// The ingestion path with the configured event rules: what the daemon's polls use, and what
    /// `poll --store`, `import` and `reprocess` use.
    ///
    /// - Parameters:
    ///   - events: The `events` section (default rules when there is no config file).
    ///   - archiveRawDays: `archive.raw_days`.
    public static func ingestion(
        events: EventRulesConfiguration, archiveRawDays: Int, store: TelemetryStore, sink: any EventSink,
        logger: Logger, metrics: (any MetricsFactory)? = nil
    ) -> Ingestion {
        Ingestion(
            store: store, rules: EventRules(configuration: events), sink: sink, archiveRawDays: archiveRawDays,
            logger: logger, metrics: metrics)
    }

    /// Opens (creating if needed) the database at `path` with the `database` settings that live in
    /// the file (`stale_after`, `max_size_mb`), as every writing command does, and records which
    /// kind of command writes it (`demo` replaces only databases of its own).
    ///
    /// - Throws: ``DatabasePathError`` for a path that would lose data (empty, in memory);
    ///   ``SQLiteError`` or ``StoreError`` when the file cannot be opened.
    public static func openStore(
        path: String, configuration: DaemonConfiguration?, role: DatabaseRole = .daemon
    ) async throws -> TelemetryStore {
        try DatabasePathError.check(path)
        let store = try TelemetryStore(path: path)
        try await store.setRole(role)
        if let configuration {
            try await store.setStaleAfter(seconds: configuration.staleAfter.components.seconds)
            try await store.setRepeatHeartbeat(seconds: configuration.repeatHeartbeat.components.seconds)
            if let megabytes = configuration.maxSizeMegabytes {
                _ = try await store.setMaximumSize(bytes: Int64(megabytes) << 20)
            }
        }
        return store
    }

    /// Polls until graceful shutdown, then shuts the client down.
    ///
    /// - Throws: ``DaemonError/credentialsRejected(_:)`` when the API refuses the credentials.
    public func run() async throws {
        do {
            try await polling.run()
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

extension Daemon: Service {}

/// A database path that would silently lose data.
public struct DatabasePathError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String

    /// Refuses an empty path and an in-memory database (everything would be lost on exit).
    public static func check(_ path: String) throws(DatabasePathError) {
        if path.isEmpty { throw DatabasePathError(description: "the database path is empty") }
        if path == ":memory:" || path.hasPrefix("file::memory:") {
            throw DatabasePathError(
                description: "\(path) is an in-memory database: everything would be lost on exit; give a file path")
        }
    }
}
