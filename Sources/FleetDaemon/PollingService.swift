import FleetClient
import FleetModel
import FleetStore
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
    /// Polling states saved by an earlier run, used when a VIN joins the schedule.
    private var saved: [VIN: PollSchedule.Entry] = [:]
    private var restored = false
    private var lastManualPollID: Int64 = 0
    private var maintenanceAt: Timestamp?
    /// When a failed schedule write was last logged.
    private var scheduleSaveFailedAt: Timestamp?
    /// Set when the fleet sync learns that the API refuses the client credentials.
    private var fatal: DaemonError?
    /// Polls per VIN today at restore time, for VINs that join the schedule later.
    private var pollsToday: [VIN: Int] = [:]
    private var restoredAt: Timestamp?
    private var manualPollsCheckedAt: Timestamp?

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

    /// Polls every VIN due at `now`, waits for all of them, and records their outcomes.
    ///
    /// - Returns: The result of each poll, in completion order.
    @discardableResult
    public func tick(now: Timestamp) async -> [PollPipeline.Result] {
        if !restored { await restore(now: now) }
        await countManualPolls(now: now)
        await maintain(now: now)
        let due = schedule.takeDue(at: now)
        guard !due.isEmpty else { return [] }
        let pipeline = self.pipeline
        var results: [PollPipeline.Result] = []
        var health: [VIN: (PollSchedule.Health, String?)] = [:]
        await withTaskGroup(of: PollPipeline.Result.self) { group in
            var pending = due.makeIterator()
            for _ in 0..<maxConcurrentRequests {
                guard let vin = pending.next() else { break }
                group.addTask { await pipeline.poll(vin) }
            }
            for await result in group {
                schedule.record(result.outcome, for: result.vin, at: clock.now())
                results.append(result)
                if result.outcome == .stop { health[result.vin] = (.consentRemoved, result.error) } else {
                    health[result.vin] = (schedule.entry(result.vin)?.health ?? .ok, result.error)
                }
                if let vin = pending.next() {
                    group.addTask { await pipeline.poll(vin) }
                }
            }
        }
        await save(health, at: clock.now())
        return results
    }

    /// Writes the polling state of the VINs just polled to the `schedule` table.
    private func save(_ health: [VIN: (PollSchedule.Health, String?)], at now: Timestamp) async {
        let rows = health.map { vin, value -> ScheduleRow in
            let entry = schedule.entry(vin) ?? PollSchedule.Entry(nextDue: now)
            return ScheduleRow(
                vin: vin, nextDueAt: entry.nextDue, health: value.0.rawValue, reason: value.0 == .ok ? nil : value.1,
                consecutiveFailures: entry.consecutiveFailures, activity: entry.activity?.rawValue,
                pollsToday: entry.pollsToday, day: entry.day, updatedAt: now)
        }
        do {
            try await pipeline.store.saveSchedule(rows)
            scheduleSaveFailedAt = nil
        } catch {
            // Logged once a minute while it lasts (a full disk fails every write).
            if scheduleSaveFailedAt.map({ now >= $0.adding(milliseconds: 60_000) }) ?? true {
                scheduleSaveFailedAt = now
                logger.error("could not save the polling schedule: \(error)")
            }
        }
    }

    /// Runs the pipeline's periodic rules at most once a minute.
    private func maintain(now: Timestamp) async {
        let every = min(.seconds(60), (pipeline.rules.configuration.silentAfter ?? .seconds(240)) / 4)
        if let last = maintenanceAt, now < last.adding(every) { return }
        maintenanceAt = now
        await pipeline.maintenance(now: now)
    }

    /// Counts polls made by hand (`poll --store`, another process) against the budgets; checked
    /// at most every 10 s.
    private func countManualPolls(now: Timestamp) async {
        guard schedule.policy.dailyBudgetPerVIN != nil || schedule.policy.dailyBudgetApplication != nil else { return }
        if let checked = manualPollsCheckedAt, now < checked.adding(.seconds(10)) { return }
        manualPollsCheckedAt = now
        do {
            let (polls, last) = try await pipeline.store.manualPolls(afterID: lastManualPollID)
            lastManualPollID = last
            for (vin, at) in polls { schedule.countManualPoll(vin, at: at) }
        } catch {
            logger.warning("could not count manual polls: \(error)")
        }
    }

    /// Loads the polling states of an earlier run: a long `Retry-After` or backoff survives a
    /// restart, and due times already past are spread over one interval.
    public func restore(now: Timestamp) async {
        restored = true
        restoredAt = now
        do {
            lastManualPollID = try await pipeline.store.lastPollID()
            let dayStart = Timestamp(millisecondsSince1970: PollSchedule.day(of: now) * 86_400_000)
            schedule.setApplicationPollsToday(try await pipeline.store.pollCount(since: dayStart), at: now)
            pollsToday = try await pipeline.store.pollCountsByVIN(since: dayStart)
            for (vin, row) in try await pipeline.store.loadSchedule() {
                saved[vin] = PollSchedule.Entry(
                    nextDue: row.nextDueAt, consecutiveFailures: row.consecutiveFailures,
                    health: PollSchedule.Health(rawValue: row.health) ?? .ok,
                    activity: row.activity.flatMap(PollSchedule.VehicleActivity.init), pollsToday: row.pollsToday, day: row.day)
            }
        } catch {
            logger.error("could not load the saved polling schedule; starting afresh: \(error)")
        }
        for vin in schedule.entries.keys {
            if let entry = saved[vin] {
                guard entry.health != .consentRemoved else {
                    schedule.remove(vin)
                    continue
                }
                schedule.restore(vin, entry: entry, at: now)
            }
            if let count = pollsToday[vin] { schedule.setPollsToday(count, for: vin, at: now) }
        }
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
        if !restored { await restore(now: now) }
        do {
            let fleet = try await fleetSync.list()
            let events = try await pipeline.store.recordClearance(fleet, at: now)
            await pipeline.sink.deliver(events)
            let stopped = Set(try await pipeline.store.vehicles().filter { $0.status == "consent_removed" }.map(\.vin))
            for vehicle in fleet where !staticVINs.contains(vehicle.vin) {
                if vehicle.status.isPollable && !stopped.contains(vehicle.vin) {
                    if schedule.entry(vehicle.vin) == nil, let entry = saved[vehicle.vin] {
                        schedule.restore(vehicle.vin, entry: entry, at: now)
                    } else if schedule.entry(vehicle.vin) == nil {
                        schedule.add(vehicle.vin, at: now)
                        if let count = pollsToday[vehicle.vin], PollSchedule.day(of: now) == PollSchedule.day(of: restoredAt ?? now) {
                            schedule.setPollsToday(count, for: vehicle.vin, at: now)
                        }
                    }
                } else {
                    schedule.remove(vehicle.vin)
                }
            }
            nextSyncAt = now.adding(fleetSync.interval)
            logger.info("fleet sync: \(fleet.count) vehicles, \(fleet.filter { $0.status.isPollable }.count) approved, \(events.count) clearance change\(events.count == 1 ? "" : "s")")
            return events
        } catch {
            if let error = error as? APIError, error.isCredentialsRejected {
                fatal = .credentialsRejected(error.description)
                return []
            }
            let retry = min(fleetSync.interval / 5, .seconds(300))
            nextSyncAt = now.adding(retry)
            logger.warning("fleet sync failed, retrying in \(DurationParser.format(retry)): \(error)")
            return []
        }
    }

    /// What a child task of the polling loop reports.
    private enum LoopEvent: Sendable {
        case polled(PollPipeline.Result)
        case wake
    }

    /// Polls each VIN as it falls due, independently: a slow VIN holds one of the
    /// `maxConcurrentRequests` slots, never the others' cadence. On graceful shutdown no new poll
    /// starts, and the polls in flight (bounded by the request timeout) are stored before return.
    public func run() async throws {
        logger.info("polling \(schedule.count) vehicle\(schedule.count == 1 ? "" : "s") every \(DurationParser.format(schedule.policy.interval))\(fleetSync == nil ? "" : ", fleet sync on")")
        let pipeline = self.pipeline
        let clock = self.clock
        // Schedule rows are written once a second, not after every poll: a second of lost
        // due times costs nothing at restart (overdue VINs are spread), a transaction per poll does.
        var unsaved: [VIN: (PollSchedule.Health, String?)] = [:]
        var savedAt = clock.now()
        defer { if !unsaved.isEmpty { logger.debug("\(unsaved.count) schedule rows not saved at exit") } }
        try await withThrowingTaskGroup(of: LoopEvent.self) { group in
            var inFlight = 0
            var wakePending = false
            while !Task.isCancelled {
                let stopping = Task.isShuttingDownGracefully
                let now = clock.now()
                if !restored { await restore(now: now) }
                if !stopping, let nextSyncAt, nextSyncAt <= now {
                    await syncFleet(now: now)
                    if let fatal {
                        group.cancelAll()
                        throw fatal
                    }
                    continue
                }
                if !stopping {
                    await countManualPolls(now: now)
                    await maintain(now: now)
                    for vin in schedule.takeDue(at: now, limit: maxConcurrentRequests - inFlight) {
                        inFlight += 1
                        group.addTask { .polled(await pipeline.poll(vin)) }
                    }
                }
                if stopping && inFlight == 0 { break }
                if !wakePending && !stopping {
                    // Wake at the next due time, at the latest in a second (VINs added meanwhile).
                    var wakeAt = now.adding(.seconds(1))
                    if let next = [schedule.nextDueTime(), nextSyncAt].compactMap({ $0 }).min(), next < wakeAt { wakeAt = max(next, now) }
                    wakePending = true
                    let deadline = wakeAt
                    group.addTask {
                        try? await cancelWhenGracefulShutdown { try await clock.sleep(until: deadline) }
                        return .wake
                    }
                }
                guard let event = try await group.next() else { break }
                switch event {
                case .wake:
                    wakePending = false
                case .polled(let result):
                    inFlight -= 1
                    schedule.record(result.outcome, for: result.vin, at: clock.now())
                    let health: PollSchedule.Health = result.outcome == .stop ? .consentRemoved : schedule.entry(result.vin)?.health ?? .ok
                    unsaved[result.vin] = (health, result.error)
                    let now = clock.now()
                    if now >= savedAt.adding(.seconds(1)) || health != .ok {
                        await save(unsaved, at: now)
                        unsaved.removeAll(keepingCapacity: true)
                        savedAt = now
                    }
                    if result.outcome == .credentialsRejected {
                        group.cancelAll()
                        throw DaemonError.credentialsRejected(result.error ?? "the token request was refused")
                    }
                }
            }
            group.cancelAll()
        }
        if !unsaved.isEmpty {
            await save(unsaved, at: clock.now())
            unsaved.removeAll()
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
