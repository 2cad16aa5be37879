import FleetClient
import FleetModel
import FleetStore
import Logging
import Metrics
import ServiceLifecycle

/// Delivers the outbox to the sinks (webhooks, MQTT), apart from polling: each sink has its own loop,
/// which takes the due entries oldest first, sends each vehicle's in order (vehicles in
/// parallel, up to ``maximumParallelVehicles``), and records every outcome in the outbox. A
/// failed delivery is tried again after an exponential backoff with full jitter (1 s doubling,
/// at most 10 min), or after the endpoint's `Retry-After` on a 429 or 503; an event still
/// undelivered ``Sink/maxAge`` after its detection is marked dead. While a transport says its
/// endpoint is unreachable (an MQTT broker down), its loop waits and spends no attempt. At least once: an entry is
/// marked delivered only after the endpoint's 2xx, so a stop in between sends it again.
public struct DeliveryService: Service {
    /// One endpoint and how long its events are worth trying.
    public struct Sink: Sendable {
        /// `sinks.webhooks[].name`, or `mqtt`: the outbox's sink name and the metrics' `sink`
        /// dimension.
        public var name: String
        /// Sends one event: a ``WebhookSender``, an MQTT event publisher.
        public var transport: any EventTransport
        /// `max_age`: an event undelivered this long after its detection is marked dead.
        public var maxAge: Duration

        public init(name: String, transport: any EventTransport, maxAge: Duration) {
            self.name = name
            self.transport = transport
            self.maxAge = maxAge
        }
    }

    /// How many due entries one pass of a sink's loop takes.
    public static let batchSize = 1000
    /// How many vehicles' events one sink sends at once.
    public static let maximumParallelVehicles = 8
    /// The pause of a sink's loop when nothing is due.
    public static let idlePause: Duration = .milliseconds(250)

    let sinks: [Sink]
    let store: TelemetryStore
    let clock: any WallClock
    let logger: Logger
    let metrics: any MetricsFactory

    /// - Parameters:
    ///   - sinks: One loop each; their names must be the store's outbox sinks.
    ///   - clock: Decides when an entry is due and when a retry is (wall clock, UTC).
    ///   - metrics: Where `fleet_telemetry_deliveries_total`, `_outbox_depth` and
    ///     `_delivery_duration_seconds` go.
    public init(
        sinks: [Sink], store: TelemetryStore, clock: any WallClock, logger: Logger,
        metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.sinks = sinks
        self.store = store
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
    }

    /// How often `fleet_telemetry_outbox_depth` is measured.
    public static let depthPeriod: Duration = .seconds(5)

    /// Runs every sink's loop and the depth measurement until graceful shutdown; never throws.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for sink in sinks {
                group.addTask { await self.deliver(sink) }
            }
            group.addTask { await self.measureDepth() }
        }
    }

    /// Records every sink's outbox depth every ``depthPeriod``, whatever its loop is doing
    /// (waiting for a broker, sending a long backlog), until graceful shutdown.
    func measureDepth() async {
        while !(Task.isShuttingDownGracefully || Task.isCancelled) {
            if let depth = try? await store.outboxDepth() {
                for sink in sinks {
                    Gauge(label: "fleet_telemetry_outbox_depth", dimensions: [("sink", sink.name)], factory: metrics)
                        .record(depth[sink.name] ?? 0)
                }
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.depthPeriod) } } catch { return }
        }
    }

    /// One sink's loop, until graceful shutdown.
    func deliver(_ sink: Sink) async {
        while !(Task.isShuttingDownGracefully || Task.isCancelled) {
            await cancelWhenGracefulShutdown { await sink.transport.waitUntilReady() }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            let due: [OutboxEntry]
            do {
                due = try await store.dueDeliveries(sink: sink.name, now: clock.now(), limit: Self.batchSize)
            } catch {
                logger.warning("sink \(sink.name): cannot read the outbox: \(error)")
                due = []
            }
            if due.isEmpty {
                do { try await Task.sleep(for: Self.idlePause) } catch { return }
                continue
            }
            var byVehicle: [VIN: [OutboxEntry]] = [:]
            var order: [VIN] = []
            for entry in due {
                if byVehicle[entry.event.vin] == nil { order.append(entry.event.vin) }
                byVehicle[entry.event.vin, default: []].append(entry)
            }
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                for vin in order {
                    if running == Self.maximumParallelVehicles {
                        await group.next()
                        running -= 1
                    }
                    let entries = byVehicle[vin] ?? []
                    group.addTask { await self.send(entries, to: sink) }
                    running += 1
                }
            }
            // After each pass, as well as every `depthPeriod`.
            Gauge(label: "fleet_telemetry_outbox_depth", dimensions: [("sink", sink.name)], factory: metrics)
                .record((try? await store.outboxDepth()[sink.name]) ?? 0)
        }
    }

    /// Sends one vehicle's due entries in order, stopping at the first failure (the rest wait
    /// behind its retry). Acknowledgements are recorded together, every
    /// ``acknowledgementBatch`` entries or ``acknowledgementDelay`` (a stop in between sends
    /// those again: at least once).
    func send(_ entries: [OutboxEntry], to sink: Sink) async {
        var acknowledged: [TelemetryStore.Acknowledgement] = []
        var firstAcknowledged = ContinuousClock.now
        func flush() async -> Bool {
            defer { acknowledged.removeAll(keepingCapacity: true) }
            do {
                try await store.markDelivered(sink: sink.name, acknowledged)
                return true
            } catch {
                logger.error("sink \(sink.name): cannot record \(acknowledged.count) deliveries: \(error)")
                return false
            }
        }
        for entry in entries {
            guard let id = entry.event.id else { continue }
            let started = clock.now()
            // A send under way when the daemon stops is cut short; a failure then is not
            // recorded (the event goes again after the restart: at least once).
            let transport = sink.transport
            let event = entry.event
            let outcome = await cancelWhenGracefulShutdown { await transport.send(event, now: started) }
            if case .failed = outcome, Task.isShuttingDownGracefully || Task.isCancelled {
                _ = await flush()
                return
            }
            let now = clock.now()
            Timer(
                label: "fleet_telemetry_delivery_duration_seconds", dimensions: [("sink", sink.name)], factory: metrics
            )
            .recordMilliseconds(now.millisecondsSince1970 - started.millisecondsSince1970)
            switch outcome {
            case .delivered(let status):
                if acknowledged.isEmpty { firstAcknowledged = .now }
                acknowledged.append(.init(eventID: id, at: now, httpStatus: status))
                count(sink, "delivered")
                if acknowledged.count >= Self.acknowledgementBatch
                    || ContinuousClock.now - firstAcknowledged >= Self.acknowledgementDelay
                {
                    guard await flush() else { return }
                }
            case .failed(let status, let error, let retryAfter):
                guard await flush() else { return }
                let retryAt = Self.retryTime(
                    after: now, detectedAt: entry.event.detectedAt, maxAge: sink.maxAge,
                    wait: retryAfter ?? Self.backoff(attempts: entry.attempts + 1))
                do {
                    try await store.markFailed(
                        sink: sink.name, eventID: id, at: now, httpStatus: status, error: error, retryAt: retryAt)
                } catch {
                    logger.error("sink \(sink.name): cannot record the delivery of event \(id): \(error)")
                    return
                }
                count(sink, retryAt == nil ? "dead" : "failed")
                if retryAt == nil {
                    logger.error(
                        "sink \(sink.name): event \(id) given up after \(entry.attempts + 1) attempts: \(error)")
                } else {
                    logger.warning("sink \(sink.name): event \(id) not delivered (\(error)); tried again later")
                }
                return
            }
        }
        _ = await flush()
    }

    /// How many acknowledged deliveries are recorded in one transaction at most.
    public static let acknowledgementBatch = 64
    /// The longest an acknowledged delivery waits to be recorded.
    public static let acknowledgementDelay: Duration = .milliseconds(200)

    func count(_ sink: Sink, _ outcome: String) {
        Counter(
            label: "fleet_telemetry_deliveries_total", dimensions: [("sink", sink.name), ("outcome", outcome)],
            factory: metrics
        ).increment()
    }

    /// When a failed entry is tried again: after `wait`, but no later than its `max_age` (the
    /// last attempt), or `nil` (dead) once it is that old.
    static func retryTime(after now: Timestamp, detectedAt: Timestamp, maxAge: Duration, wait: Duration) -> Timestamp? {
        let deadline = detectedAt.adding(maxAge)
        guard now < deadline else { return nil }
        let retry = now.adding(wait)
        return retry < deadline ? retry : deadline
    }

    /// The wait before attempt `attempts + 1`: full jitter over 1 s doubling per attempt, at most 10 min.
    static func backoff(attempts: Int) -> Duration {
        let ceiling = min(600_000, 1000 << min(max(attempts - 1, 0), 20))
        return .milliseconds(Int64.random(in: 0...Int64(ceiling)))
    }
}
