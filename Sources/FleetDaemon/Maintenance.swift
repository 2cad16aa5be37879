import FleetConfiguration
import FleetIngestion
import FleetModel
import FleetStore
import Logging
import Metrics

/// The periodic work no poll triggers (the ``Chores/Chore/maintenance`` chore): `vehicle_silent`
/// (decided by the event rules), closing charging sessions whose end was never observed,
/// retention (samples, polls, the raw archive, vehicles whose clearance ended) and keeping the
/// WAL bounded.
public struct Maintenance: Sendable {
    /// The store, the rules that decide silence and the sink for its events.
    public let ingestion: Ingestion
    /// `retention`: how long history is kept.
    public var retention: DaemonConfiguration.Retention
    /// The `-wal` file size above which the WAL is checkpointed and truncated.
    public var walCheckpointBytes: Int64 = 32 << 20
    /// Where retention, purges and WAL checkpoints are reported.
    public let logger: Logger

    public init(ingestion: Ingestion, retention: DaemonConfiguration.Retention, logger: Logger) {
        self.ingestion = ingestion
        self.retention = retention
        self.logger = logger
    }

    /// How often it runs: once a minute, or four times per `events.vehicle_silent_after` when
    /// that is shorter, so that silence is noticed within a quarter of its threshold.
    public var interval: Duration {
        min(.seconds(60), (ingestion.rules.silentAfter ?? .seconds(240)) / 4)
    }

    /// Runs every part once; a failing part is logged and the others still run.
    public func run(now: Timestamp) async {
        let store = ingestion.store
        do {
            let events = try await store.detectSilentVehicles(now: now, detector: ingestion.rules)
            await ingestion.sink.deliver(events)
            try await store.closeStaleChargingSessions(
                now: now, timeout: ingestion.rules.configuration.chargingSessionTimeout)
            let pruned = try await store.prune(
                samplesBefore: retention.samples.map { now.subtracting($0) },
                pollsBefore: retention.polls.map { now.subtracting($0) },
                rawBefore: now.subtracting(.days(ingestion.archiveRawDays)))
            if pruned > 0 { logger.info("retention: pruned \(pruned) rows") }
            Gauge(label: "fleet_telemetry_wal_bytes", factory: ingestion.metrics).record(Double(await store.walSize()))
            if let after = retention.purgeRevoked {
                for vin in try await store.vehiclesRevoked(before: now.subtracting(after)) {
                    let rows = try await store.purge(vin: vin)
                    logger.notice(
                        "purged \(vin): its clearance ended more than \(after / .days(1)) days ago (\(rows) rows)")
                }
            }
        } catch {
            logger.error("maintenance failed: \(error)")
        }
        await checkpointIfLarge()
    }

    /// Truncates the WAL when it has grown past ``walCheckpointBytes`` (a long reader kept SQLite's
    /// own checkpoints from reusing it); warns while a reader still holds it.
    func checkpointIfLarge() async {
        let store = ingestion.store
        let size = await store.walSize()
        guard size > walCheckpointBytes else { return }
        do {
            let result = try await store.checkpoint()
            if result.busy {
                let reader = "a reader (Grafana, a sqlite3 shell) holds a long transaction"
                logger.warning("the WAL is \(size >> 20) MiB: \(reader); it is truncated once that reader finishes")
            } else {
                logger.info("WAL checkpointed and truncated (was \(size >> 20) MiB)")
            }
        } catch {
            logger.error("WAL checkpoint failed: \(error)")
        }
    }
}
