import FleetClient
import FleetEvents
import FleetModel
import FleetNormalizer
import FleetStore
import Logging
import ServiceLifecycle
import Metrics

/// The one ingestion path: an answer of the API, or a captured document, goes normalize → store
/// (one transaction: samples, `latest`, events, the `polls` row, the raw response) → event sinks,
/// with the configured event rules.
///
/// The daemon's polls, `fleet-telemetry poll --store`, `import` and `reprocess` all go through
/// it, so a rule, a geofence or a disabled event means the same in each.
///
/// FleetIngestion owns this path and nothing else: it never sends a request (the client's answer
/// is handed to it), never decides when a vehicle is polled (the scheduler does), never runs SQL
/// (the store does) and never reads an HTTP status (``VehicleDataFailure`` says what an answer
/// means).
public struct Ingestion: Sendable {
    /// Where everything is written.
    public let store: TelemetryStore
    /// The configured event rules (`events` in the config).
    public let rules: EventRules
    /// Receives the events once their transaction has committed.
    public let sink: any EventSink
    /// Auto API (either shape) → samples and property failures.
    public let normalizer = Normalizer()
    /// `archive.raw_days`: days raw responses are kept for `reprocess`; 0 archives none.
    public let archiveRawDays: Int
    /// Where failed requests, unreadable bodies and failed writes are logged.
    public let logger: Logger
    /// Where the counters go: the process-wide `MetricsSystem` unless a test injects its own.
    public let metrics: any MetricsFactory

    /// - Parameters:
    ///   - store: The database.
    ///   - rules: The configured event rules.
    ///   - sink: Receives stored events.
    ///   - archiveRawDays: `archive.raw_days` (default 7); 0 keeps no raw response.
    ///   - metrics: Counters `fleet_telemetry_polls_total{status}` (HTTP status, or `none`),
    ///     `fleet_telemetry_samples_written_total`, `fleet_telemetry_events_total{type}`,
    ///     `fleet_telemetry_property_failures_total{reason}`; timers (histograms in seconds)
    ///     `fleet_telemetry_poll_duration_seconds` (request to answer) and
    ///     `fleet_telemetry_database_write_seconds` (one poll's transaction).
    public init(
        store: TelemetryStore, rules: EventRules, sink: any EventSink, archiveRawDays: Int = 7,
        logger: Logger, metrics: (any MetricsFactory)? = nil
    ) {
        self.store = store
        self.rules = rules
        self.sink = sink
        self.archiveRawDays = archiveRawDays
        self.logger = logger
        self.metrics = metrics ?? MetricsSystem.factory
    }

    /// How often a poll's write is retried while another process holds the write lock; each
    /// attempt waits up to the connection's busy timeout.
    static let lockedWriteAttempts = 6

    /// Ingests the answer to one vehicle-data request: normalizes a response with data, writes
    /// the poll and everything it produced in one transaction, and delivers the new events.
    ///
    /// It never throws: a failed request, a malformed body or a failed write are all a
    /// ``IngestedPoll`` that says what happened (and, but for a failed write, a `polls` row).
    ///
    /// - Parameters:
    ///   - vin: The vehicle asked for.
    ///   - requestedAt: When the request was sent, UTC.
    ///   - answer: The client's response, or its typed error.
    ///   - failedAt: When a failed request ended, UTC (a response carries its own receive time).
    ///   - manual: True for a poll made by hand (`poll --store`), outside the schedule.
    public func ingest(
        vin: VIN, requestedAt: Timestamp, answer: Result<VehicleDataResponse, APIError>, failedAt: Timestamp,
        manual: Bool = false
    ) async -> IngestedPoll {
        var record = PollRecord(
            vin: vin, requestedAt: requestedAt, receivedAt: failedAt, httpStatus: nil, latencyMilliseconds: 0)
        record.manual = manual
        var result = IngestedPoll(vin: vin)
        var samples: [Sample] = []
        var failures: [PropertyFailure] = []
        switch answer {
        case .success(let response):
            record.receivedAt = response.receivedAt
            record.httpStatus = response.status
            record.latencyMilliseconds = max(0, response.latencyMilliseconds)
            if archiveRawDays > 0 { record.rawBody = response.body }
            do {
                let payload = try normalizer.normalize(body: response.body, vin: vin, receivedAt: response.receivedAt)
                samples = payload.samples
                failures = payload.failures
                record.requestID = payload.requestID
                record.brand = payload.brand
                result.payload = payload
                result.activity = Self.activity(of: payload.samples)
                result.propertyRateLimited = payload.failures.contains { $0.reason == .rateLimit }
                count(payload.failures, vin: vin)
            } catch {
                record.error = error.description
                logger.warning("\(error.description)")
            }
        case .failure(let error):
            record.httpStatus = error.recordedStatus
            record.latencyMilliseconds = max(0, failedAt.millisecondsSince1970 - requestedAt.millisecondsSince1970)
            record.error = error.description
            record.requestID = error.requestID
            result.failure = error.vehicleDataFailure
            if error.hasUnusableRetryAfter, let header = error.retryAfterHeader {
                logger.warning(
                    "ignoring an unusable Retry-After \"\(header.prefix(40))\" for \(vin); backing off instead")
            }
            logger.warning("\(error.description)")
        }
        result.httpStatus = record.httpStatus
        result.error = record.error
        Counter(
            label: "fleet_telemetry_polls_total",
            dimensions: [("status", record.httpStatus.map(String.init) ?? "none")], factory: metrics
        ).increment()
        Metrics.Timer(label: "fleet_telemetry_poll_duration_seconds", factory: metrics)
            .recordMilliseconds(record.latencyMilliseconds)
        record.privacyMode = rules.privacyMode(
            answerSaysPrivacy: result.failure == .privacyMode,
            failureReasons: failures.map(\.reason), hasSamples: !samples.isEmpty)
        do {
            let writeStarted = ContinuousClock.now
            let written = try await writeRetryingWhileLocked(
                PollWrite(poll: record, samples: samples, failures: failures))
            let took = (ContinuousClock.now - writeStarted).components
            Metrics.Timer(label: "fleet_telemetry_database_write_seconds", factory: metrics)
                .recordNanoseconds(took.seconds * 1_000_000_000 + took.attoseconds / 1_000_000_000)
            count(written)
            if result.failure == .consentRemoved {
                try await store.setStatus(.consentRemoved, reason: record.error, vin: vin, at: record.receivedAt)
                logger.warning("\(vin) is no longer polled: consent removed by the OEM")
            }
            result.samplesWritten = written.samplesWritten
            result.events = written.events
            result.stored = true
            await sink.deliver(written.events)
        } catch {
            if Self.isStopping {
                // The daemon is stopping: it says in one line how many answers were not stored.
                logger.debug("could not store the poll of \(vin) while stopping: \(error)")
                result.error = "\(error)"
                result.stored = false
                return result
            }
            var hint = ""
            if let error = error as? SQLiteError, error.isFull {
                hint =
                    " (the disk is full, or the database reached database.max_size_mb;"
                    + " the vehicle is polled again after a backoff)"
            }
            logger.error("could not store the poll of \(vin): \(error)\(hint)")
            result.error = "\(error)"
            result.stored = false
        }
        return result
    }

    /// Writes captured documents (`import`) in one transaction, each in a savepoint of its own,
    /// and delivers the new events once it has committed.
    ///
    /// - Returns: One outcome per entry, in order.
    /// - Throws: ``SQLiteError`` when the transaction itself cannot begin or commit; nothing of
    ///   the batch is kept then.
    public func write(batch: [PollWrite]) async throws -> [BatchOutcome] {
        let outcomes = try await store.record(batch: batch, detector: rules)
        var events: [Event] = []
        for case .written(let written) in outcomes {
            count(written)
            events += written.events
        }
        await sink.deliver(events)
        return outcomes
    }

    /// Normalizes a captured document (a vehicle-data body of either shape, or a push message)
    /// into an entry for ``write(batch:)``.
    ///
    /// - Parameter receivedAt: The import time: the entry's `received_at`, and the observation
    ///   time of values without a timestamp of their own.
    /// - Throws: ``NormalizationError`` for a document that cannot be read at all.
    public func prepare(document: JSONValue, vin: VIN, receivedAt: Timestamp) throws(NormalizationError) -> PollWrite {
        let payload = try normalizer.normalize(json: document, vin: vin, receivedAt: receivedAt)
        var record = PollRecord(
            vin: vin, requestedAt: receivedAt, receivedAt: receivedAt, httpStatus: nil, latencyMilliseconds: 0,
            requestID: payload.requestID, brand: payload.brand)
        record.imported = true
        count(payload.failures, vin: vin)
        return PollWrite(
            poll: record, samples: payload.samples, failures: payload.failures, messageID: payload.messageID)
    }

    /// True while the daemon is stopping (graceful shutdown or cancellation): a locked write is
    /// not tried again then.
    static var isStopping: Bool { Task.isShuttingDownGracefully || Task.isCancelled }

    /// Writes the poll, trying again while another process holds the write lock: each attempt
    /// waits up to the connection's busy timeout, so a lock held for minutes still loses nothing.
    private func writeRetryingWhileLocked(_ write: PollWrite) async throws -> PollWriteResult {
        var attempt = 1
        while true {
            do {
                return try await store.recordGrouped(write, detector: rules)
            } catch let error as SQLiteError
                where error.isLocked && attempt < Self.lockedWriteAttempts && !Self.isStopping
            {
                attempt += 1
                logger.warning(
                    "the database is locked by another process; still waiting to store the poll of \(write.poll.vin) (attempt \(attempt))"
                )
            }
        }
    }

    private func count(_ failures: [PropertyFailure], vin: VIN) {
        guard let first = failures.first else { return }
        for failure in failures {
            Counter(
                label: "fleet_telemetry_property_failures_total",
                dimensions: [("reason", failure.reason.rawValue)], factory: metrics
            ).increment()
        }
        logger.debug(
            "property failures",
            metadata: ["vin": "\(vin)", "count": "\(failures.count)", "first": "\(first.property): \(first.reason)"])
    }

    private func count(_ written: PollWriteResult) {
        if written.samplesWritten > 0 {
            Counter(label: "fleet_telemetry_samples_written_total", factory: metrics).increment(
                by: written.samplesWritten)
        }
        for event in written.events {
            Counter(
                label: "fleet_telemetry_events_total", dimensions: [("type", event.type.rawValue)], factory: metrics
            )
            .increment()
        }
    }

    /// What the vehicle was doing, from its samples: `driving` when the ignition is on or it
    /// moves, `charging` when `charging.status` is a charging state, else `parked`; `nil` when
    /// the response says nothing about it.
    static func activity(of samples: [Sample]) -> VehicleActivity? {
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
}

/// What ingesting one vehicle-data answer did.
public struct IngestedPoll: Sendable {
    /// The vehicle asked for.
    public var vin: VIN
    /// The HTTP status recorded, `nil` when no whole answer came.
    public var httpStatus: Int?
    /// What a failed request means for the vehicle; `nil` for a response with data.
    public var failure: VehicleDataFailure?
    /// The normalized response; `nil` for a failed request or a body that could not be read.
    public var payload: NormalizedPayload?
    /// What the samples say the vehicle was doing, when they say it.
    public var activity: VehicleActivity?
    /// True when a property of the response failed with `rate_limit`.
    public var propertyRateLimited = false
    /// New rows in `samples`.
    public var samplesWritten = 0
    /// Events stored (with ids) and delivered.
    public var events: [Event] = []
    /// The one-line error of a failed request, an unreadable body or a failed write.
    public var error: String?
    /// False when the write failed (disk full, locked too long): nothing of the poll was kept.
    public var stored = false

    public init(vin: VIN) {
        self.vin = vin
    }
}
