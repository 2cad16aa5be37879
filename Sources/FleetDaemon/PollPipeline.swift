import FleetClient
import FleetEvents
import FleetModel
import FleetNormalizer
import FleetStore
import Logging
import Metrics

/// One poll, end to end: API client → normalizer → store (samples, latest, events, poll row) → sink.
///
/// It never throws: every failure (HTTP error, timeout, malformed body) becomes a `polls` row with
/// the status and a one-line error, and an ``PollSchedule/Outcome`` for the scheduler.
public struct PollPipeline: Sendable {
    public let client: HighMobilityClient
    public let store: TelemetryStore
    public let sink: any EventSink
    public let normalizer: Normalizer
    public let rules: EventRules
    public let clock: any WallClock
    public let logger: Logger
    /// Where the counters go: the process-wide `MetricsSystem` unless a test injects its own.
    public let metrics: any MetricsFactory
    /// How long history is kept; pruned by ``maintenance(now:)``.
    public var retention = DaemonConfiguration.Retention()
    /// `archive.raw_days`: days raw responses are kept for `fleet-telemetry reprocess`; 0 keeps none.
    public var archiveRawDays = 7
    /// The `-wal` file size above which ``maintenance(now:)`` checkpoints and truncates it.
    public var walCheckpointBytes: Int64 = 32 << 20

    /// Counters (swift-metrics): `fleet_telemetry_polls_total{status}` (HTTP status, or
    /// `none`), `fleet_telemetry_samples_written_total`, `fleet_telemetry_events_total{type}`,
    /// `fleet_telemetry_property_failures_total{reason}`; timer `fleet_telemetry_poll_latency`.
    public init(client: HighMobilityClient, store: TelemetryStore, sink: any EventSink, clock: any WallClock, logger: Logger, metrics: (any MetricsFactory)? = nil, rules: EventRules = EventRules()) {
        self.metrics = metrics ?? MetricsSystem.factory
        self.client = client
        self.store = store
        self.sink = sink
        self.normalizer = Normalizer()
        self.rules = rules
        self.clock = clock
        self.logger = logger
    }

    /// Periodic work that no poll triggers: `vehicle_silent`, closing charging sessions whose end
    /// was never observed, retention (samples, polls, the raw archive, vehicles whose clearance
    /// ended) and keeping the WAL bounded.
    public func maintenance(now: Timestamp) async {
        do {
            if let after = rules.configuration.silentAfter, !rules.configuration.disabled.contains(.vehicleSilent) {
                let events = try await store.detectSilentVehicles(now: now, after: after)
                await sink.deliver(events)
            }
            try await store.closeStaleChargingSessions(now: now, timeout: rules.configuration.chargingSessionTimeout)
            let pruned = try await store.prune(
                samplesBefore: retention.samples.map { now.adding(milliseconds: -$0.milliseconds) },
                pollsBefore: retention.polls.map { now.adding(milliseconds: -$0.milliseconds) },
                rawBefore: now.adding(milliseconds: -Int64(archiveRawDays) * 86_400_000))
            if pruned > 0 { logger.info("retention: pruned \(pruned) rows") }
            if let after = retention.purgeRevoked {
                for vin in try await store.vehiclesRevoked(before: now.adding(milliseconds: -after.milliseconds)) {
                    let rows = try await store.purge(vin: vin)
                    logger.notice("purged \(vin): its clearance ended more than \(after.milliseconds / 86_400_000) days ago (\(rows) rows)")
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
        let size = await store.walSize()
        guard size > walCheckpointBytes else { return }
        do {
            let result = try await store.checkpoint()
            if result.busy {
                logger.warning("the WAL is \(size >> 20) MiB: a reader (Grafana, a sqlite3 shell) holds a long transaction; it is truncated once that reader finishes")
            } else {
                logger.info("WAL checkpointed and truncated (was \(size >> 20) MiB)")
            }
        } catch {
            logger.error("WAL checkpoint failed: \(error)")
        }
    }

    /// Writes the poll, trying again while another process holds the write lock: each attempt
    /// waits up to the connection's busy timeout, so a lock held for minutes still loses nothing.
    private func recordRetryingWhileLocked(_ record: PollRecord, samples: [Sample], failures: [FailedProperty]) async throws -> PollWriteResult {
        var attempt = 0
        while true {
            do {
                return try await store.recordGrouped(PollWrite(poll: record, samples: samples, failures: failures), detector: rules)
            } catch let error as SQLiteError where error.isLocked && attempt < 5 {
                attempt += 1
                logger.warning("the database is locked by another process; still waiting to store the poll of \(record.vin) (attempt \(attempt + 1))")
            }
        }
    }

    /// How an API error affects the schedule.
    static func outcome(of error: APIError) -> PollSchedule.Outcome {
        if error.isCredentialsRejected { return .credentialsRejected }
        if error.isConsentRemoved { return .stop }
        if error.isRateLimited { return .rateLimited(retryAfter: error.requestedWait) }
        let detail = (error.detail ?? "").lowercased()
        switch error.status {
        case 408: return .slow(.asleep)
        case 422: return .slow(.pending)
        case 403 where detail.contains("privacy"): return .slow(.privacy)
        case 403: return .slow(.notCleared)
        default: return .failed
        }
    }

    /// What the vehicle was doing, from its samples: `driving` when the ignition is on or it
    /// moves, `charging` when `charging.status` is a charging state, else `parked`; `nil` when
    /// the response says nothing about it.
    static func activity(of samples: [Sample]) -> PollSchedule.VehicleActivity? {
        var known = false
        var driving = false
        var charging = false
        for sample in samples {
            switch sample.property {
            case "ignition.state":
                known = true
                if sample.value.text == "on" || sample.value.text == "start" { driving = true }
            case "diagnostics.speed":
                known = true
                if let speed = sample.value.number, speed > 0 { driving = true }
            case "charging.status":
                known = true
                if let status = sample.value.text, EventRules.chargingStatuses.contains(status) { charging = true }
            default:
                continue
            }
        }
        guard known else { return nil }
        return driving ? .driving : charging ? .charging : .parked
    }

    /// What one poll did.
    public struct Result: Sendable {
        public var vin: VIN
        public var outcome: PollSchedule.Outcome
        /// The HTTP status, `nil` when no response came.
        public var httpStatus: Int?
        public var samplesWritten: Int
        public var events: [Event]
        /// The one-line error of a failed poll.
        public var error: String?
    }

    /// Polls `vin` once and stores what came back.
    ///
    /// If the database write fails (disk full, locked), the error is logged and the poll counts as
    /// failed, so the VIN backs off; rows committed earlier are untouched.
    public func poll(_ vin: VIN) async -> Result {
        let requestedAt = clock.now()
        var record = PollRecord(vin: vin, requestedAt: requestedAt, receivedAt: requestedAt, httpStatus: nil, latencyMilliseconds: 0)
        var samples: [Sample] = []
        var failures: [FailedProperty] = []
        var outcome = PollSchedule.Outcome.success(nil)
        do {
            let response = try await client.vehicleData(vin: vin)
            record.receivedAt = response.receivedAt
            record.httpStatus = response.status
            record.latencyMilliseconds = max(0, response.latencyMilliseconds)
            if archiveRawDays > 0 { record.rawBody = response.body }
            do {
                let payload = try normalizer.normalize(body: response.body, vin: vin, receivedAt: response.receivedAt)
                samples = payload.samples
                failures = payload.failures.map { FailedProperty(property: $0.property, instance: $0.instance, reason: $0.reason, description: $0.description, observedAt: $0.observedAt) }
                record.requestID = payload.requestID
                record.brand = payload.brand
                outcome = .success(Self.activity(of: payload.samples))
                if payload.failures.contains(where: { $0.reason == "rate_limit" }) {
                    outcome = .slow(.rateLimited)
                }
                for failure in payload.failures {
                    Counter(label: "fleet_telemetry_property_failures_total", dimensions: [("reason", failure.reason)], factory: metrics).increment()
                }
                if !payload.failures.isEmpty {
                    logger.debug("property failures", metadata: ["vin": "\(vin)", "count": "\(payload.failures.count)", "first": "\(payload.failures[0].property): \(payload.failures[0].reason)"])
                }
            } catch {
                record.error = error.description
                outcome = .failed
                logger.warning("\(error.description)")
            }
        } catch {
            let now = clock.now()
            record.receivedAt = now
            // A response cut short is no answer: its status line alone says nothing.
            record.httpStatus = error.kind == .transport ? nil : error.status
            record.latencyMilliseconds = max(0, now.millisecondsSince1970 - requestedAt.millisecondsSince1970)
            record.error = error.description
            record.requestID = error.requestID
            outcome = Self.outcome(of: error)
            if error.isRateLimited, let header = error.retryAfterHeader, error.retryAfter == nil {
                logger.warning("ignoring an unusable Retry-After \"\(header.prefix(40))\" for \(vin); backing off instead")
            }
            logger.warning("\(error.description)")
        }
        Counter(label: "fleet_telemetry_polls_total", dimensions: [("status", record.httpStatus.map(String.init) ?? "none")], factory: metrics).increment()
        Metrics.Timer(label: "fleet_telemetry_poll_latency", factory: metrics).recordMilliseconds(record.latencyMilliseconds)
        // Privacy mode, as this response tells it, is written with the poll (state and event).
        let privacy = outcome == .slow(.privacy) || failures.contains { $0.reason == "privacy_mode_active" }
        if privacy || !samples.isEmpty, !rules.configuration.disabled.contains(privacy ? .privacyModeEntered : .privacyModeLeft) {
            record.privacyMode = privacy
        }
        do {
            let written = try await recordRetryingWhileLocked(record, samples: samples, failures: failures)
            if written.samplesWritten > 0 {
                Counter(label: "fleet_telemetry_samples_written_total", factory: metrics).increment(by: written.samplesWritten)
            }
            for event in written.events {
                Counter(label: "fleet_telemetry_events_total", dimensions: [("type", event.type.rawValue)], factory: metrics).increment()
            }
            let events = written.events
            if outcome == .stop {
                try await store.setStatus("consent_removed", reason: record.error, vin: vin, at: record.receivedAt)
                logger.warning("\(vin) is no longer polled: consent removed by the OEM")
            }
            await sink.deliver(events)
            return Result(vin: vin, outcome: outcome, httpStatus: record.httpStatus, samplesWritten: written.samplesWritten, events: events, error: record.error)
        } catch {
            var hint = ""
            if let error = error as? SQLiteError, error.isFull {
                hint = " (the disk is full, or the database reached database.max_size_mb; the vehicle is polled again after a backoff)"
            }
            logger.error("could not store the poll of \(vin): \(error)\(hint)")
            return Result(vin: vin, outcome: .failed, httpStatus: record.httpStatus, samplesWritten: 0, events: [], error: "\(error)")
        }
    }
}
