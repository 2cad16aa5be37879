import FleetClient
import FleetConfiguration
import FleetIngestion
import FleetModel
import FleetScheduling
import FleetStore
import Logging
import Metrics
import ServiceLifecycle

/// The daemon's one polling loop: asks the ``PollSchedule`` who is due and the ``Chores`` what
/// else is (fleet sync, budget counting, maintenance, saving the schedule), polls through the
/// ``PollPipeline`` (at most `maxConcurrentRequests` at once, in one task group), records each
/// outcome, and sleeps on the injected clock until the next thing is due.
///
/// A `Service`: on graceful shutdown (SIGTERM/SIGINT through `ServiceGroup`) or cancellation it
/// starts nothing new, cancels the requests still waiting for their answer (their vehicles stay
/// due; no `polls` row, no failure), lets a poll whose answer is in hand finish its write, bounds
/// waits for another process's database lock to a second, saves the schedule and returns: a stop
/// takes about a second whatever the API or a `sqlite3` shell is doing. Tests run this same loop
/// with a manual clock and wait for it with ``settled(at:)``.
public actor PollingService: Service {
    private var schedule: PollSchedule
    private var chores: Chores
    private var pipeline: PollPipeline
    private let maintenance: Maintenance
    private let clock: any WallClock
    private let maxConcurrentRequests: Int
    private let logger: Logger
    private let fleetSync: FleetSync?
    private var staticVINs: Set<VIN>
    /// VINs the last fleet listing found approved (polled besides ``staticVINs``).
    private var fleetApproved: Set<VIN> = []
    /// The vehicles polled through their owner's consent (``PollPipeline/consent``).
    private var consentVINs: Set<VIN> = []
    /// The loop's child task waiting for a reload, while the loop runs.
    private var reloadWaiter: CheckedContinuation<Void, Never>?
    /// Called with every poll's result once it is recorded (metrics, tests).
    private let onPoll: (@Sendable (PollPipeline.Result) -> Void)?
    /// Polling states saved by an earlier run, used when a VIN joins the schedule.
    private var saved: [VIN: PollSchedule.Entry] = [:]
    /// Polls per VIN today at restore time, for VINs that join the schedule later.
    private var pollsToday: [VIN: Int] = [:]
    private var restoredAt: Timestamp?
    private var lastManualPollID: Int64 = 0
    /// Polling states not written yet, by VIN.
    private var unsaved: [VIN: (PollSchedule.Health, String?)] = [:]
    /// When a failed schedule write was last logged.
    private var scheduleSaveFailedAt: Timestamp?
    /// The application-wide state last written to the database.
    private var savedApplication: ApplicationScheduleState?
    /// Since when no access token could be obtained, while that lasts.
    private var tokenOutageSince: Timestamp?
    /// The end of the token pause last logged: one line per backoff step.
    private var tokenPauseLogged: Timestamp?
    /// Tells the service manager about readiness, status, the watchdog and the stop.
    private let notifier: ServiceNotifier
    /// Polls and failed polls per second of the last minute, for `STATUS=`.
    private var recentPolls: [(second: Int64, polls: Int, failed: Int)] = []
    private var lastError: String?
    /// At stop: requests cancelled, and answers that could not be stored.
    private var cancelledAtStop = 0
    private var unstoredAtStop = 0

    /// How many times the loop has woken up: a figure for tests and benchmarks (an idle loop,
    /// or one waiting for a free request slot, does not wake).
    public private(set) var turns = 0
    /// Where the loop waits, while it waits (see ``settled(at:)``).
    private var parked: Parked?
    private var settleWaiters: [(target: Timestamp, continuation: CheckedContinuation<Void, Never>)] = []
    private var finished = false

    private struct Parked {
        /// The loop's time when it parked.
        var at: Timestamp
        /// The earliest deadline of a wake-up the loop waits for.
        var wakeAt: Timestamp?
        var inFlight: Int
    }

    /// - Parameters:
    ///   - vins: The VINs always polled (the config's `vehicles`).
    ///   - policy: Interval, backoff and budget rules.
    ///   - maintenance: The periodic work; it runs every ``Maintenance/interval``.
    ///   - fleetSync: When given, the fleet is listed at start and then every `fleetSync.interval`;
    ///     `approved` VINs are polled, others are not (the static `vins` always are).
    ///   - seed: Seeds the start offsets and jitter; defaults to a random one.
    ///   - onPoll: Called with each poll's result once the schedule has recorded it.
    public init(
        vins: [VIN], policy: PollSchedule.Policy, pipeline: PollPipeline, maintenance: Maintenance,
        clock: any WallClock, maxConcurrentRequests: Int, fleetSync: FleetSync? = nil,
        seed: UInt64 = UInt64.random(in: 0...UInt64.max), logger: Logger, notifier: ServiceNotifier = .disabled,
        onPoll: (@Sendable (PollPipeline.Result) -> Void)? = nil
    ) {
        self.notifier = notifier
        let start = clock.now()
        self.schedule = PollSchedule(vins: vins, policy: policy, start: start, seed: seed)
        let countsManualPolls = policy.dailyBudgetPerVIN != nil || policy.dailyBudgetApplication != nil
        self.chores = Chores(
            cadence: .init(
                fleetSync: fleetSync?.interval, manualPollCount: countsManualPolls ? .seconds(10) : nil,
                maintenance: maintenance.interval, watchdog: notifier.watchdogPing,
                status: notifier.isEnabled ? .seconds(5) : nil, consent: pipeline.consent == nil ? nil : .seconds(30)),
            start: start, seed: seed)
        self.staticVINs = Set(vins)
        self.fleetSync = fleetSync
        self.pipeline = pipeline
        self.maintenance = maintenance
        self.clock = clock
        self.maxConcurrentRequests = max(1, maxConcurrentRequests)
        self.logger = logger
        self.onPoll = onPoll
    }

    /// What a child task of the polling loop reports.
    private enum LoopEvent: Sendable {
        case polled(PollPipeline.Result)
        case wake(Timestamp)
        /// A reload changed what is due: look again.
        case reloaded
    }

    /// Polls each VIN as it falls due, independently: a slow VIN holds one of the
    /// `maxConcurrentRequests` slots, never the others' cadence. While every slot is taken, the
    /// loop sleeps until a poll ends. On graceful shutdown no new poll starts, and the polls in
    /// flight (bounded by the request timeout) are stored before return.
    ///
    /// - Throws: ``DaemonError/credentialsRejected(_:)`` when the API refuses the client id or
    ///   secret, since no poll can succeed until the config is fixed.
    public func run() async throws {
        defer { finish() }
        let store = pipeline.ingestion.store
        let notifier = self.notifier
        // At stop, a wait for another process's lock lasts at most a second (also one in progress).
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await loop()
            } onGracefulShutdown: {
                notifier.send(["STOPPING=1", "STATUS=stopping"])
                store.giveUpLockWaits(after: Self.lockWaitAtStop)
            }
        } onCancel: {
            store.giveUpLockWaits(after: Self.lockWaitAtStop)
        }
    }

    /// How long a write may wait for another process's lock once the daemon is stopping.
    public static let lockWaitAtStop: Duration = .seconds(1)

    private func loop() async throws {
        let fleet = fleetSync == nil ? "" : ", fleet sync on (approved vehicles join as the fleet listing finds them)"
        let cadence = PollSchedule.cadence(
            of: schedule.policy, fleetSize: schedule.count, format: DurationParser.format)
        logger.info("polling \(schedule.count) vehicle\(schedule.count == 1 ? "" : "s"): \(cadence)\(fleet)")
        await restore(now: clock.now())
        // Ready: the database is open and the schedule loaded.
        notifier.send(["READY=1", "STATUS=" + statusLine(at: clock.now())])
        let pipeline = self.pipeline
        let clock = self.clock
        try await withThrowingTaskGroup(of: LoopEvent.self) { group in
            var inFlight = 0
            // Deadlines of the wake-ups asked for and not yet seen, earliest first.
            var wakes: [Timestamp] = []
            group.addTask { await self.waitForReload() }
            while true {
                turns += 1
                lastTurnAt = clock.now()
                let stopping = Task.isShuttingDownGracefully || Task.isCancelled
                let now = clock.now()
                if !stopping {
                    for chore in chores.due(at: now) {
                        if let fatal = await perform(chore, now: now) {
                            group.cancelAll()
                            throw fatal
                        }
                    }
                    for vin in schedule.takeDue(at: now, limit: maxConcurrentRequests - inFlight) {
                        inFlight += 1
                        group.addTask { .polled(await pipeline.poll(vin)) }
                    }
                }
                if stopping && inFlight == 0 { break }
                if !stopping {
                    // A due VIN counts only while a slot is free: otherwise the end of a poll wakes
                    // the loop, and waiting for it costs nothing.
                    let nextPoll = inFlight < maxConcurrentRequests ? schedule.nextDueTime() : nil
                    // Nothing due at all: look again in an hour (the loop must keep a wake-up to
                    // notice a shutdown while no poll is in flight).
                    let next = [nextPoll, chores.nextDue].compactMap { $0 }.min() ?? now.adding(.seconds(3600))
                    let deadline = max(next, now)
                    if wakes.first.map({ deadline < $0 }) ?? true {
                        wakes.insert(deadline, at: 0)
                        group.addTask {
                            try? await cancelWhenGracefulShutdown { try await clock.sleep(until: deadline) }
                            return .wake(deadline)
                        }
                    }
                }
                park(Parked(at: now, wakeAt: wakes.first, inFlight: inFlight))
                guard let event = try await group.next() else { break }
                parked = nil
                switch event {
                case .wake(let deadline):
                    if let index = wakes.firstIndex(of: deadline) { wakes.remove(at: index) }
                case .reloaded:
                    if !(Task.isShuttingDownGracefully || Task.isCancelled) {
                        group.addTask { await self.waitForReload() }
                    }
                case .polled(let result):
                    inFlight -= 1
                    if let fatal = record(result) {
                        group.cancelAll()
                        throw fatal
                    }
                }
            }
            group.cancelAll()
        }
        await saveSchedule(at: clock.now())
        if unstoredAtStop > 0 {
            logger.warning(
                "\(unstoredAtStop) answer\(unstoredAtStop == 1 ? "" : "s") could not be stored while stopping (the database is locked by another process); those vehicles are polled again after the restart"
            )
        }
        let cancelled =
            cancelledAtStop == 0
            ? ""
            : "; \(cancelledAtStop) request\(cancelledAtStop == 1 ? "" : "s") cancelled, polled again at the next start"
        logger.info("polling stopped\(cancelled)")
    }

    /// Records a finished poll in the schedule; the error that stops the daemon, if it is one.
    private func record(_ result: PollPipeline.Result) -> DaemonError? {
        let now = clock.now()
        let pauseBefore = schedule.globalPauseUntil
        let rateBefore = schedule.rate.current
        schedule.record(result.outcome, for: result.vin, at: now)
        let stopping = Task.isShuttingDownGracefully || Task.isCancelled
        switch result.outcome {
        case .cancelled:
            cancelledAtStop += 1
            onPoll?(result)
            return nil
        case .tokenUnavailable(let retryAfter):
            tokenUnavailable(retryAfter: retryAfter, error: result.error ?? "", now: now)
            onPoll?(result)
            return nil
        default:
            if let since = tokenOutageSince {
                tokenOutageSince = nil
                logger.info(
                    "access token obtained again after \(DurationParser.format(now.duration(since: since))); polling resumed"
                )
            }
        }
        if stopping && result.outcome == .failed && !result.stored { unstoredAtStop += 1 }
        countForStatus(failed: result.error != nil, error: result.error, at: now)
        if schedule.pauseReason == .rateLimited, schedule.globalPauseUntil != pauseBefore,
            let until = schedule.globalPauseUntil
        {
            let rate = schedule.rate.current.map { Self.format(rate: $0) } ?? "?"
            let was = rateBefore.map { " (was \(Self.format(rate: $0)))" } ?? ""
            logger.warning(
                "the API limits the whole application: request rate set to \(rate)\(was), fleet paused until \(until)")
            chores.needsSave(at: now, urgent: true)
        }
        let health: PollSchedule.Health =
            result.outcome == .stop
            ? (result.consentRequired ? .consentRequired : .consentRemoved) : schedule.entry(result.vin)?.health ?? .ok
        unsaved[result.vin] = (health, result.error)
        chores.needsSave(at: now, urgent: health != .ok)
        onPoll?(result)
        if result.outcome == .credentialsRejected {
            return .credentialsRejected(result.error ?? "the token request was refused")
        }
        return nil
    }

    /// Runs one chore; the error that stops the daemon, if it found one.
    private func perform(_ chore: Chores.Chore, now: Timestamp) async -> DaemonError? {
        switch chore {
        case .fleetSync:
            return await syncFleet(now: now)
        case .manualPollCount:
            await countManualPolls()
        case .maintenance:
            await maintenance.run(now: now)
        case .scheduleSave:
            await saveSchedule(at: now)
        case .watchdog:
            // From the loop itself: a loop that stops turning is killed by the service manager.
            notifier.send("WATCHDOG=1")
        case .status:
            notifier.send("STATUS=" + statusLine(at: now))
        case .consent:
            await reconcileConsent(now: now)
        }
        chores.completed(chore, at: now)
        return nil
    }

    // MARK: - Waiting for the loop (tests)

    /// When the loop last woke up, `nil` before it started.
    public private(set) var lastTurnAt: Timestamp?

    /// Whether the daemon is healthy: the loop turned within three maintenance periods (it
    /// turns at least once per period, for the maintenance chore) and the database takes a
    /// write (``TelemetryStore/probeWritable()``).
    ///
    /// - Returns: `nil` when healthy, else the reason.
    public func unhealthyReason() async -> String? {
        let now = clock.now()
        let allowed = maintenance.interval * 3
        guard let lastTurnAt else { return "the polling loop has not started" }
        if now.duration(since: lastTurnAt) > allowed {
            return "the polling loop last turned \(DurationParser.format(now.duration(since: lastTurnAt))) ago"
        }
        do {
            try await pipeline.ingestion.store.probeWritable()
        } catch {
            return "the database is not writable: \(error)"
        }
        return nil
    }

    /// The schedule as it stands (a copy): due times, the learned rate, a fleet-wide pause.
    public var currentSchedule: PollSchedule { schedule }

    /// The earliest wake-up the loop waits for while it is parked, or `nil` (running, or waiting
    /// only for polls in flight). Tests step a manual clock to it.
    public var nextWakeUp: Timestamp? { parked?.wakeAt }

    /// Returns once the loop has done everything due up to `target` and waits for nothing
    /// before a later time: no poll in flight, no wake-up due at or before `target`. Returns at
    /// once when the loop has ended.
    ///
    /// With a manual clock this is how a test steps the one loop production runs: move the clock,
    /// then wait until the loop has settled at the new time.
    public func settled(at target: Timestamp) async {
        if finished || isSettled(for: target) { return }
        await withCheckedContinuation { settleWaiters.append((target, $0)) }
    }

    private func isSettled(for target: Timestamp) -> Bool {
        guard let parked, parked.inFlight == 0 else { return false }
        return parked.wakeAt.map { $0 > target } ?? true
    }

    private func park(_ state: Parked) {
        parked = state
        guard !settleWaiters.isEmpty else { return }
        var waiting: [(target: Timestamp, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in settleWaiters {
            if isSettled(for: waiter.target) { waiter.continuation.resume() } else { waiting.append(waiter) }
        }
        settleWaiters = waiting
    }

    private func finish() {
        finished = true
        parked = nil
        for waiter in settleWaiters { waiter.continuation.resume() }
        settleWaiters.removeAll()
    }

    /// No access token could be obtained (a poll or the fleet listing found out): the fleet waits
    /// for the next token request of the shared backoff, logged once per backoff step.
    private func tokenUnavailable(retryAfter: Duration?, error: String, now: Timestamp) {
        let until = now.adding(max(retryAfter ?? .seconds(1), .milliseconds(1)))
        schedule.pause(until: until, reason: .tokenUnavailable)
        if fleetSync != nil, let due = chores.nextDue(.fleetSync), due < until {
            // The listing needs a token too: it waits for the same attempt, not a backoff of its own.
            chores.postponeFleetSync(until: until)
        }
        // Callers of one failed attempt see the same end, give or take their own clock readings.
        guard tokenPauseLogged.map({ until > $0.adding(.milliseconds(500)) }) ?? true else { return }
        tokenPauseLogged = until
        if tokenOutageSince == nil { tokenOutageSince = now }
        let wait = DurationParser.format(retryAfter ?? .seconds(1))
        logger.warning("no access token, polling paused; next token request in \(wait): \(error)")
        chores.needsSave(at: now, urgent: true)
    }

    /// Counts a poll for `STATUS=`: per second, the last minute kept.
    private func countForStatus(failed: Bool, error: String?, at now: Timestamp) {
        let second = now.millisecondsSince1970 / 1000
        if recentPolls.last?.second == second {
            recentPolls[recentPolls.count - 1].polls += 1
            if failed { recentPolls[recentPolls.count - 1].failed += 1 }
        } else {
            recentPolls.append((second, 1, failed ? 1 : 0))
        }
        if let first = recentPolls.first, first.second < second - 60 {
            recentPolls.removeAll { $0.second < second - 60 }
        }
        if failed, let error { lastError = error }
    }

    /// The `STATUS=` line as of now.
    public var status: String { statusLine(at: clock.now()) }

    /// The `STATUS=` line: `polling 12 vehicles; last minute 140 polls, 2 failed; 1.5 requests/s;
    /// last error: …`.
    func statusLine(at now: Timestamp) -> String {
        let second = now.millisecondsSince1970 / 1000
        let minute = recentPolls.filter { $0.second >= second - 60 }
        var text = "polling \(schedule.count) vehicle\(schedule.count == 1 ? "" : "s")"
        text +=
            "; last minute \(minute.reduce(0) { $0 + $1.polls }) polls, \(minute.reduce(0) { $0 + $1.failed }) failed"
        if let rate = schedule.rate.current { text += "; " + Self.format(rate: rate) }
        if let pause = schedule.globalPauseUntil, pause > now {
            text += "; paused until \(pause) (\(schedule.pauseReason?.rawValue ?? "rate_limited"))"
        }
        if let lastError { text += "; last error: " + String(lastError.prefix(160)) }
        return text
    }

    /// `1.5 requests/s`.
    static func format(rate: Double) -> String {
        let rounded = rate >= 10 ? (rate * 10).rounded() / 10 : (rate * 1000).rounded() / 1000
        return "\(rounded) requests/s"
    }

    // MARK: - Reload

    /// Applies a reloaded configuration without dropping state: the policy (intervals, budgets,
    /// rate cap), the VINs listed in the config (new ones join at a random offset within one
    /// interval, removed ones stop unless the fleet listing approved them) and the ingestion path
    /// (event rules, geofences). Polls in flight finish with what they started with.
    ///
    /// - Returns: What changed, one phrase each (for the log line).
    public func apply(policy: PollSchedule.Policy, vehicles: [VIN], ingestion: Ingestion) -> [String] {
        var changes: [String] = []
        let now = clock.now()
        if policy != schedule.policy {
            schedule.update(policy: policy, at: now)
            changes.append("polling settings")
        }
        let listed = Set(vehicles)
        let added = listed.subtracting(staticVINs)
        let removed = staticVINs.subtracting(listed)
        for vin in added.sorted() where schedule.entry(vin) == nil {
            if let entry = saved[vin] {
                schedule.restore(vin, entry: entry, at: now)
            } else {
                schedule.add(vin, at: now)
            }
        }
        for vin in removed where !fleetApproved.contains(vin) {
            schedule.remove(vin)
            // A vehicle no longer polled leaves /metrics too.
            for label in [
                "fleet_telemetry_vehicle_polls_today", "fleet_telemetry_vehicle_projected_polls_today",
                "fleet_telemetry_vehicle_next_due_seconds",
            ] {
                Gauge(label: label, dimensions: [("vin", vin.rawValue)], factory: pipeline.ingestion.metrics).destroy()
            }
        }
        staticVINs = listed
        if !added.isEmpty { changes.append("\(added.count) vehicle\(added.count == 1 ? "" : "s") added") }
        if !removed.isEmpty { changes.append("\(removed.count) vehicle\(removed.count == 1 ? "" : "s") removed") }
        pipeline = PollPipeline(client: pipeline.client, ingestion: ingestion, clock: pipeline.clock)
        // The loop may sleep until a time the old settings chose: wake it to look again.
        reloadWaiter?.resume()
        reloadWaiter = nil
        return changes
    }

    /// The loop's child task: returns at the next reload, or when the loop stops.
    private func waitForReload() async -> LoopEvent {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    reloadWaiter = continuation
                }
            }
        } onCancel: {
            Task { await self.cancelReloadWait() }
        }
        return .reloaded
    }

    private func cancelReloadWait() {
        reloadWaiter?.resume()
        reloadWaiter = nil
    }

    // MARK: - Chores

    /// The application-wide state to persist: the learned rate and a running fleet-wide pause.
    private func applicationState() -> ApplicationScheduleState {
        ApplicationScheduleState(
            learnedRatePerSecond: schedule.rate.learned, pausedUntil: schedule.globalPauseUntil,
            pauseReason: schedule.pauseReason?.rawValue)
    }

    /// Writes the polling states of the VINs polled since the last save to the `schedule` table,
    /// and the application-wide state when it changed; updates the schedule's gauges.
    private func saveSchedule(at now: Timestamp) async {
        let application = applicationState()
        let applicationChanged = application != savedApplication
        guard !unsaved.isEmpty || applicationChanged else { return }
        let rows = unsaved.map { vin, value -> ScheduleRow in
            let entry = schedule.entry(vin) ?? PollSchedule.Entry(nextDue: now)
            return ScheduleRow(
                vin: vin, nextDueAt: entry.nextDue, health: value.0.rawValue, reason: value.0 == .ok ? nil : value.1,
                consecutiveFailures: entry.consecutiveFailures, activity: entry.activity?.rawValue,
                pollsToday: entry.pollsToday, day: entry.day, updatedAt: now)
        }
        unsaved.removeAll(keepingCapacity: true)
        updateGauges(rows: rows, at: now)
        do {
            try await pipeline.ingestion.store.saveSchedule(rows, application: applicationChanged ? application : nil)
            savedApplication = application
        } catch {
            // Logged at most once a minute (a full disk fails most writes; one that succeeds now
            // and then must not restart the count).
            if scheduleSaveFailedAt.map({ now >= $0.adding(.seconds(60)) }) ?? true {
                scheduleSaveFailedAt = now
                logger.error("could not save the polling schedule: \(error)")
            }
        }
    }

    /// The schedule's figures as gauges (the metrics endpoint exports them):
    /// - `fleet_telemetry_request_rate`: the rate requests are paced at, requests/s (0: not limited);
    /// - `fleet_telemetry_fleet_paused` (1 or 0) and `fleet_telemetry_fleet_paused_until_seconds`
    ///   (Unix time, 0 when not paused);
    /// - `fleet_telemetry_polls_today` and `fleet_telemetry_projected_polls_today`: the
    ///   application's polls this UTC day and those expected for the rest of it;
    /// - per VIN (dimension `vin`, for the vehicles just saved): `fleet_telemetry_vehicle_polls_today`,
    ///   `fleet_telemetry_vehicle_projected_polls_today` and `fleet_telemetry_vehicle_next_due_seconds`.
    private func updateGauges(rows: [ScheduleRow], at now: Timestamp) {
        let metrics = pipeline.ingestion.metrics
        Gauge(label: "fleet_telemetry_request_rate", factory: metrics).record(schedule.rate.current ?? 0)
        let paused = schedule.globalPauseUntil.map { $0 > now } ?? false
        Gauge(label: "fleet_telemetry_fleet_paused", factory: metrics).record(paused ? 1 : 0)
        Gauge(label: "fleet_telemetry_fleet_paused_until_seconds", factory: metrics)
            .record(paused ? Double(schedule.globalPauseUntil!.millisecondsSince1970) / 1000 : 0)
        Gauge(label: "fleet_telemetry_polls_today", factory: metrics).record(schedule.applicationPollsToday)
        var projected = 0
        for entry in schedule.entries.values { projected += schedule.projectedPolls(for: entry, at: now) }
        if let rate = schedule.rate.current {
            // The pacing bounds the rest of the day too.
            let from = max(now, schedule.globalPauseUntil ?? now)
            let left = Double(now.startOfUTCDay.adding(.days(1)).millisecondsSince1970 - from.millisecondsSince1970)
            projected = min(projected, Int(rate * max(0, left) / 1000))
        }
        Gauge(label: "fleet_telemetry_projected_polls_today", factory: metrics).record(projected)
        var byHealth: [PollSchedule.Health: Int] = [:]
        for entry in schedule.entries.values { byHealth[entry.health, default: 0] += 1 }
        for health in PollSchedule.Health.allCases {
            Gauge(label: "fleet_telemetry_vehicles", dimensions: [("health", health.rawValue)], factory: metrics)
                .record(byHealth[health] ?? 0)
        }
        for row in rows {
            guard let entry = schedule.entry(row.vin) else { continue }
            let vin = [("vin", row.vin.rawValue)]
            Gauge(label: "fleet_telemetry_vehicle_polls_today", dimensions: vin, factory: metrics)
                .record(entry.pollsToday)
            Gauge(label: "fleet_telemetry_vehicle_projected_polls_today", dimensions: vin, factory: metrics)
                .record(schedule.projectedPolls(for: entry, at: now))
            Gauge(label: "fleet_telemetry_vehicle_next_due_seconds", dimensions: vin, factory: metrics)
                .record(Double(entry.nextDue.millisecondsSince1970) / 1000)
        }
    }

    /// Counts polls made by hand (`poll --store`, another process) against the budgets.
    private func countManualPolls() async {
        do {
            let (polls, last) = try await pipeline.ingestion.store.manualPolls(afterID: lastManualPollID)
            lastManualPollID = last
            for (vin, at) in polls { schedule.countManualPoll(vin, at: at) }
        } catch {
            logger.warning("could not count manual polls: \(error)")
        }
    }

    /// Loads the polling states of an earlier run: a long `Retry-After` or backoff survives a
    /// restart, and due times already past are spread over one interval.
    private func restore(now: Timestamp) async {
        restoredAt = now
        let store = pipeline.ingestion.store
        do {
            lastManualPollID = try await store.lastPollID()
            let dayStart = now.startOfUTCDay
            schedule.setApplicationPollsToday(try await store.pollCount(since: dayStart), at: now)
            pollsToday = try await store.pollCountsByVIN(since: dayStart)
            let application = try await store.loadApplicationState()
            savedApplication = application
            schedule.restoreApplication(
                learnedRate: application.learnedRatePerSecond, pausedUntil: application.pausedUntil,
                reason: application.pauseReason.flatMap(PollSchedule.PauseReason.init), at: now)
            if let rate = application.learnedRatePerSecond {
                logger.info("request rate learned by the last run: \(Self.format(rate: rate))")
            }
            if let until = schedule.globalPauseUntil {
                logger.warning(
                    "the fleet stays paused until \(until) (\(schedule.pauseReason?.rawValue ?? "rate_limited")), as the last run saved it"
                )
            }
            for (vin, row) in try await store.loadSchedule() {
                saved[vin] = PollSchedule.Entry(
                    nextDue: row.nextDueAt, consecutiveFailures: row.consecutiveFailures,
                    health: PollSchedule.Health(rawValue: row.health) ?? .ok,
                    activity: row.activity.flatMap(VehicleActivity.init), pollsToday: row.pollsToday, day: row.day)
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

    /// Lists the fleet, records clearance changes (the rules decide the `clearance_changed`
    /// events) and updates who is polled: `approved` VINs are added, VINs that left `approved`
    /// are removed (unless listed in the config), and VINs whose consent was removed stay stopped.
    ///
    /// Reads the consent grants again (a `consent exchange` or `revoke` since): a vehicle with an
    /// `approved` or `pending` grant joins the schedule, one whose grant is gone or lost leaves it
    /// (unless the config or the fleet lists it); then grants idle for a day are refreshed, so that
    /// a vehicle not polled for long (asleep, privacy mode, a spent budget) keeps its access.
    private func reconcileConsent(now: Timestamp) async {
        guard let consent = pipeline.consent else { return }
        let store = pipeline.ingestion.store
        do {
            let vins = try await consent.reload()
            // Also one that left the schedule (lost, revoked) and has a grant again.
            for vin in vins where schedule.entry(vin) == nil {
                if let entry = saved[vin], entry.health != .consentRequired {
                    schedule.restore(vin, entry: entry, at: now)
                } else {
                    schedule.add(vin, at: now)
                }
                // A vehicle whose owner consented again is polled again.
                try? await store.setStatus(.active, reason: nil, vin: vin, at: now)
                logger.info("\(vin) joins the polling through its owner's consent")
            }
            for vin in consentVINs.subtracting(vins) where !staticVINs.contains(vin) && !fleetApproved.contains(vin) {
                schedule.remove(vin)
            }
            consentVINs = vins
        } catch {
            logger.warning("consent grants not read: \(error); the grants read before stay in use")
        }
        let lost = await consent.refreshIdle()
        for event in lost {
            try? await store.setStatus(
                .consentRequired, reason: "the refresh token was refused; the owner must consent again", vin: event.vin,
                at: now)
            schedule.remove(event.vin)
        }
        if let stored = try? await store.record(events: lost), !stored.isEmpty {
            await pipeline.ingestion.sink.deliver(stored)
        }
    }

    /// A failed listing is logged and retried after a backoff that starts at a second
    /// (``Chores/fleetSyncFailed(at:)``); the current
    /// schedule is kept meanwhile.
    ///
    /// - Returns: The error that stops the daemon: refused client credentials.
    private func syncFleet(now: Timestamp) async -> DaemonError? {
        guard let fleetSync else { return nil }
        let ingestion = pipeline.ingestion
        do {
            let list = fleetSync.list
            let fleet = try await cancelWhenGracefulShutdown { try await list() }
            let events = try await ingestion.store.recordClearance(fleet, at: now, detector: ingestion.rules)
            await ingestion.sink.deliver(events)
            let stopped = Set(try await ingestion.store.vehicles().filter { $0.status == .consentRemoved }.map(\.vin))
            fleetApproved = Set(fleet.filter { $0.status.isPollable && !stopped.contains($0.vin) }.map(\.vin))
            for vehicle in fleet where !staticVINs.contains(vehicle.vin) {
                guard vehicle.status.isPollable && !stopped.contains(vehicle.vin) else {
                    schedule.remove(vehicle.vin)
                    continue
                }
                guard schedule.entry(vehicle.vin) == nil else { continue }
                if let entry = saved[vehicle.vin] {
                    schedule.restore(vehicle.vin, entry: entry, at: now)
                } else {
                    schedule.add(vehicle.vin, at: now)
                    if let count = pollsToday[vehicle.vin], now.utcDay == (restoredAt ?? now).utcDay {
                        schedule.setPollsToday(count, for: vehicle.vin, at: now)
                    }
                }
            }
            let approved = fleet.filter { $0.status.isPollable }.count
            logger.info(
                "fleet sync: \(fleet.count) vehicles, \(approved) approved, \(events.count) clearance change\(events.count == 1 ? "" : "s")"
            )
            chores.completed(.fleetSync, at: now)
            return nil
        } catch {
            // A listing cut short by the stop is no failure.
            if Task.isShuttingDownGracefully || Task.isCancelled { return nil }
            if let error = error as? APIError, error.vehicleDataFailure == .credentialsRejected {
                return .credentialsRejected(error.description)
            }
            if let error = error as? APIError, case .tokenUnavailable(let retryAfter) = error.vehicleDataFailure {
                // Not the listing's failure: it is tried again with the next token request.
                tokenUnavailable(retryAfter: retryAfter, error: error.description, now: now)
                return nil
            }
            let retry = chores.fleetSyncFailed(at: now)
            logger.warning("fleet sync failed, retrying in \(DurationParser.format(retry)): \(error)")
            return nil
        }
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
