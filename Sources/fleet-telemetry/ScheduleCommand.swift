import ArgumentParser
import FleetConfiguration
import FleetDaemon
import FleetModel
import FleetScheduling
import FleetStore
import Foundation

/// `fleet-telemetry schedule`: what the scheduler saved, as the running daemon left it: the
/// learned request rate, a fleet-wide pause, and per vehicle the polls of the UTC day, those
/// projected for the rest of it and the next due time.
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "The learned request rate, a fleet-wide pause, and per vehicle: polls today, projected, next due.",
        discussion:
            "Read from the database the daemon writes (every second while it polls), with the intervals and budgets of the config file. --json prints one line for the application (\"scope\": \"application\") and then one per vehicle (\"scope\": \"vehicle\"); --csv prints the vehicles only. With the daemon stopped, --clear-pause ends a saved fleet-wide pause and --forget-rate forgets the learned request rate (after the API's quota was raised)."
    )
    @OptionGroup var options: DatabaseOptions
    @OptionGroup var format: OutputOptions

    @Flag(name: .long, help: "End a saved fleet-wide pause (the daemon must be stopped).")
    var clearPause = false

    @Flag(name: .long, help: "Forget the learned request rate (the daemon must be stopped).")
    var forgetRate = false

    func run() async throws {
        let configuration = try options.loadConfiguration()
        if configuration == nil {
            printError(
                "fleet-telemetry: no config file at \(options.config): projections use the default polling settings (interval 5m, no budgets)"
            )
        }
        let policy = (configuration?.polling ?? DaemonConfiguration.Polling()).policy
        let store = try options.openStore(configuration: configuration)
        if clearPause || forgetRate {
            try await reset(store, path: options.database ?? configuration?.databasePath ?? "")
            return
        }
        let now = SystemWallClock().now()
        let dayStart = now.startOfUTCDay
        let application: ApplicationScheduleState
        let saved: [VIN: ScheduleRow]
        let pollsToday: [VIN: Int]
        let applicationPolls: Int
        do {
            application = try await store.loadApplicationState()
            saved = try await store.loadSchedule()
            pollsToday = try await store.pollCountsByVIN(since: dayStart)
            applicationPolls = try await store.pollCount(since: dayStart)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
        var vins = Set(saved.keys)
        for vin in configuration?.vehicles ?? [] { vins.insert(vin) }
        var projectedTotal = 0
        var rows: [[JSONValue]] = []
        for vin in vins.sorted() {
            guard let row = saved[vin] else {
                rows.append([.string(vin.rawValue), .string("not_polled_yet"), .null, number(0), .null, .null, .null])
                continue
            }
            let entry = PollSchedule.Entry(
                nextDue: row.nextDueAt, consecutiveFailures: row.consecutiveFailures,
                health: PollSchedule.Health(rawValue: row.health) ?? .ok,
                activity: row.activity.flatMap(VehicleActivity.init), pollsToday: pollsToday[vin] ?? 0,
                day: now.utcDay)
            var projected = PollSchedule.projectedPolls(for: entry, policy: policy, fleetSize: vins.count, at: now)
            if let pause = application.pausedUntil, pause > now {
                let resumed = PollSchedule.Entry(
                    nextDue: max(pause, entry.nextDue), health: entry.health, day: now.utcDay)
                projected = min(
                    projected, PollSchedule.projectedPolls(for: resumed, policy: policy, fleetSize: vins.count, at: now)
                )
            }
            projectedTotal += projected
            rows.append([
                .string(vin.rawValue), .string(row.health), .string(row.nextDueAt.iso8601),
                number(Double(pollsToday[vin] ?? 0)), number(Double(projected)),
                policy.dailyBudgetPerVIN.map { .number(Double($0)) } ?? .null, string(row.reason),
            ])
        }
        // As the daemon reads it back: clamped to the cap and to [1/min, 100,000/s].
        let rate = ApplicationRate(
            ceiling: policy.maxRequestsPerSecond, threshold: policy.globalRateLimitThreshold,
            learned: application.learnedRatePerSecond)
        let (learned, current) = (rate.learned, rate.current)
        let paused = application.pausedUntil.flatMap { $0 > now ? $0 : nil }
        // The pacing bounds the day as well: at most rate × the seconds left (after a pause).
        if let current {
            let from = max(now, paused ?? now)
            let seconds = max(
                0, Double(now.startOfUTCDay.adding(.days(1)).millisecondsSince1970 - from.millisecondsSince1970) / 1000)
            let bound = Int(current * seconds)
            if projectedTotal > bound {
                let factor = Double(bound) / Double(projectedTotal)
                for index in rows.indices {
                    if let projected = rows[index][4].numberValue {
                        rows[index][4] = .number((projected * factor).rounded(.down))
                    }
                }
                projectedTotal = bound
            }
        }
        let keys = ["vin", "health", "next_due", "polls_today", "projected_today", "daily_budget", "reason"]
        if format.json {
            printJSON(
                .object(
                    JSONObject(members: [
                        (key: "scope", value: .string("application")),
                        (key: "request_rate_per_second", value: number(current)),
                        (key: "learned_rate_per_second", value: number(learned)),
                        (key: "max_requests_per_second", value: number(policy.maxRequestsPerSecond)),
                        (key: "paused_until", value: string(paused?.iso8601)),
                        (key: "pause_reason", value: paused == nil ? .null : string(application.pauseReason)),
                        (key: "polls_today", value: .number(Double(applicationPolls))),
                        (key: "projected_today", value: .number(Double(projectedTotal))),
                        (
                            key: "daily_budget",
                            value: policy.dailyBudgetApplication.map { .number(Double($0)) } ?? .null
                        ),
                    ])))
            for row in rows {
                printJSON(
                    .object(
                        JSONObject(
                            members: [(key: "scope", value: .string("vehicle"))]
                                + zip(keys, row).map { (key: $0, value: $1) })))
            }
            return
        }
        if !format.csv {
            var rate = "not limited (no refusal seen)"
            if let current {
                let source = learned == nil ? "polling.max_requests_per_second" : "learned"
                rate = "\(Self.format(current)) requests/s (\(source))"
            }
            var text = "request rate: \(rate)\n"
            text +=
                paused.map { "fleet: paused until \($0.iso8601) (\(application.pauseReason ?? "rate_limited"))\n" }
                ?? "fleet: polling\n"
            let budget = policy.dailyBudgetApplication.map { " of a daily budget of \($0)" } ?? ""
            text +=
                "polls today (UTC): \(applicationPolls)\(budget); projected for the rest of the day: \(projectedTotal)\n\n"
            writeStandardOutput(text)
        }
        format.output(keys, rows)
    }

    /// `--clear-pause` / `--forget-rate`: rewrites the saved application state, refused while a
    /// daemon holds the database (it keeps its state in memory and would write it back).
    func reset(_ store: TelemetryStore, path: String) async throws {
        let lock: DatabaseLock
        do {
            lock = try DatabaseLock(databasePath: path)
        } catch {
            printError(
                "fleet-telemetry: \(error)"
                    + (error.isHeld ? "; stop the daemon first (systemctl stop fleet-telemetry)" : ""))
            throw ExitStatus.ioError
        }
        do {
            var state = try await store.loadApplicationState()
            if clearPause {
                state.pausedUntil = nil
                state.pauseReason = nil
            }
            if forgetRate { state.learnedRatePerSecond = nil }
            try await store.saveSchedule([], application: state)
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.ioError
        }
        withExtendedLifetime(lock) {}
        var done: [String] = []
        if clearPause { done.append("the fleet-wide pause is cleared") }
        if forgetRate { done.append("the learned request rate is forgotten") }
        print(done.joined(separator: "; ") + "; they apply at the next start of the daemon")
    }

    static func format(_ rate: Double) -> String {
        String(format: rate >= 10 ? "%.1f" : "%.3f", rate)
    }
}
