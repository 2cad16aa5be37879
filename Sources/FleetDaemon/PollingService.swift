import FleetModel
import Logging
import ServiceLifecycle

/// The daemon's main loop: asks the ``PollSchedule`` who is due, polls them through the
/// ``PollPipeline`` (at most `maxConcurrentRequests` at once, in one task group), records each
/// outcome, and sleeps on the injected clock until the next VIN is due.
///
/// A `Service`: it stops on graceful shutdown (SIGTERM/SIGINT through `ServiceGroup`) after the
/// polls in flight have been stored, so no accepted response is lost.
public actor PollingService: Service {
    private var schedule: PollSchedule
    private let pipeline: PollPipeline
    private let clock: any WallClock
    private let maxConcurrentRequests: Int
    private let logger: Logger
    private let fleetSync: FleetSync?
    private let staticVINs: Set<VIN>
    private var nextSyncAt: Timestamp?

    /// - Parameters:
    ///   - vins: The VINs to poll.
    ///   - policy: Interval and backoff limits.
    ///   - seed: Seeds the start offsets and jitter; defaults to a random one.
    ///   - fleetSync: When given, the fleet is listed at start and then every `fleetSync.interval`;
    ///     `approved` VINs are polled, others are not (the static `vins` always are).
    public init(vins: [VIN], policy: PollSchedule.Policy, pipeline: PollPipeline, clock: any WallClock, maxConcurrentRequests: Int, fleetSync: FleetSync? = nil, seed: UInt64 = UInt64.random(in: 0...UInt64.max), logger: Logger) {
        self.schedule = PollSchedule(vins: vins, policy: policy, start: clock.now(), seed: seed)
        self.staticVINs = Set(vins)
        self.fleetSync = fleetSync
        self.nextSyncAt = fleetSync == nil ? nil : clock.now()
        self.pipeline = pipeline
        self.clock = clock
        self.maxConcurrentRequests = max(1, maxConcurrentRequests)
        self.logger = logger
    }

    /// The current schedule (for tests and status output).
    public var currentSchedule: PollSchedule { schedule }

    /// Polls every VIN due at `now`, waits for all of them, and records their outcomes.
    ///
    /// - Returns: The result of each poll, in completion order.
    @discardableResult
    public func tick(now: Timestamp) async -> [PollPipeline.Result] {
        let due = schedule.due(at: now)
        guard !due.isEmpty else { return [] }
        for vin in due { schedule.start(vin) }
        let pipeline = self.pipeline
        var results: [PollPipeline.Result] = []
        await withTaskGroup(of: PollPipeline.Result.self) { group in
            var pending = due.makeIterator()
            for _ in 0..<maxConcurrentRequests {
                guard let vin = pending.next() else { break }
                group.addTask { await pipeline.poll(vin) }
            }
            for await result in group {
                schedule.record(result.outcome, for: result.vin, at: clock.now())
                results.append(result)
                if let vin = pending.next() {
                    group.addTask { await pipeline.poll(vin) }
                }
            }
        }
        return results
    }

    /// Runs until graceful shutdown.
    ///
    /// - Throws: ``DaemonError/credentialsRejected(_:)`` when the API refuses the client id or
    ///   secret, since no poll can succeed until the config is fixed.
    /// Lists the fleet, records clearance changes (emitting `clearance_changed` events) and
    /// updates who is polled: `approved` VINs are added, VINs that left `approved` are removed
    /// (unless listed in the config), and VINs whose consent was removed stay stopped.
    ///
    /// A failed listing is logged and retried after a fifth of the sync interval (at most 5 min);
    /// the current schedule is kept meanwhile.
    @discardableResult
    public func syncFleet(now: Timestamp) async -> [Event] {
        guard let fleetSync else { return [] }
        do {
            let fleet = try await fleetSync.list()
            let events = try await pipeline.store.recordClearance(fleet, at: now)
            await pipeline.sink.deliver(events)
            let stopped = Set(try await pipeline.store.vehicles().filter { $0.status == "consent_removed" }.map(\.vin))
            for vehicle in fleet where !staticVINs.contains(vehicle.vin) {
                if vehicle.status.isPollable && !stopped.contains(vehicle.vin) {
                    schedule.add(vehicle.vin, at: now)
                } else {
                    schedule.remove(vehicle.vin)
                }
            }
            nextSyncAt = now.adding(fleetSync.interval)
            logger.info("fleet sync: \(fleet.count) vehicles, \(fleet.filter { $0.status.isPollable }.count) approved, \(events.count) changes")
            return events
        } catch {
            let retry = min(fleetSync.interval / 5, .seconds(300))
            nextSyncAt = now.adding(retry)
            logger.warning("fleet sync failed, retrying in \(DurationParser.format(retry)): \(error)")
            return []
        }
    }

    public func run() async throws {
        logger.info("polling \(schedule.entries.count) vehicle\(schedule.entries.count == 1 ? "" : "s") every \(DurationParser.format(schedule.policy.interval))\(fleetSync == nil ? "" : ", fleet sync on")")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = clock.now()
            if let nextSyncAt, nextSyncAt <= now {
                await syncFleet(now: now)
                continue
            }
            if schedule.due(at: now).isEmpty {
                let next = [schedule.nextDueTime, nextSyncAt].compactMap { $0 }.min()
                let clock = self.clock
                do {
                    try await cancelWhenGracefulShutdown {
                        if let next {
                            try await clock.sleep(until: next)
                        } else {
                            try await gracefulShutdown()
                        }
                    }
                } catch {
                    break
                }
                continue
            }
            let results = await tick(now: now)
            if let rejected = results.first(where: { $0.outcome == .credentialsRejected }) {
                throw DaemonError.credentialsRejected(rejected.error ?? "the token request was refused")
            }
        }
        logger.info("polling stopped")
    }
}

/// A condition that stops the daemon.
public enum DaemonError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The token endpoint refused `api.client_id` / `api.client_secret`.
    case credentialsRejected(String)

    public var description: String {
        switch self {
        case .credentialsRejected(let detail):
            return "the API refused the client credentials (check api.client_id and api.client_secret): \(detail)"
        }
    }
}

/// How the daemon lists the fleet (Fleet Clearance API) and how often.
public struct FleetSync: Sendable {
    /// Time between two listings.
    public var interval: Duration
    /// Lists the fleet; `HighMobilityClient.fleetVehicles()` in the daemon.
    public var list: @Sendable () async throws -> [FleetVehicle]

    public init(interval: Duration, list: @escaping @Sendable () async throws -> [FleetVehicle]) {
        self.interval = interval
        self.list = list
    }
}
