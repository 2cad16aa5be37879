@testable import FleetScheduling
import FleetModel
import Foundation
import Testing

/// The learned application rate against a model of an API that admits `limit` requests per
/// fixed one-second window for the whole application (as the emulator's `rate_limit` does) and
/// answers the others 429 with the `Retry-After` to the window's end. Simulated time: each step
/// goes to the schedule's next due time.
struct LimitedAPI {
    let limit: Int
    private var window: Int64 = -1
    private var admitted = 0

    init(limit: Int) { self.limit = limit }

    mutating func answer(at now: Timestamp) -> PollSchedule.Outcome {
        let second = now.millisecondsSince1970 / 1000
        if second != window {
            window = second
            admitted = 0
        }
        guard admitted < limit else {
            return .rateLimited(retryAfter: .milliseconds((second + 1) * 1000 - now.millisecondsSince1970))
        }
        admitted += 1
        return .success(nil)
    }
}

/// Runs `schedule` against `api` for `seconds`, each step to the next due time; every poll.
func drive(
    _ schedule: inout PollSchedule, api: inout LimitedAPI, from: Timestamp, seconds: Double
) -> [(vin: VIN, at: Timestamp, refused: Bool)] {
    var polls: [(vin: VIN, at: Timestamp, refused: Bool)] = []
    var now = from
    let end = from.plus(seconds: seconds)
    while now < end {
        for vin in schedule.takeDue(at: now) {
            let outcome = api.answer(at: now)
            if case .rateLimited = outcome {
                polls.append((vin, now, true))
            } else {
                polls.append((vin, now, false))
            }
            schedule.record(outcome, for: vin, at: now)
        }
        guard let next = schedule.nextDueTime() else { break }
        now = max(next, now.adding(milliseconds: 1))
    }
    return polls
}

@Suite struct ApplicationRateTests {
    /// The target: a fleet that wants 2R or more against an application limit of R: after
    /// the first minute fewer than 5 % of requests are refused and at least 80 % of R is admitted.
    @Test(arguments: [1, 5, 50])
    func convergesToTheApplicationLimit(limit: Int) {
        let fleet = (1...max(10, 3 * limit)).map { VIN("1HMFT00000000" + String(format: "%04d", $0))! }
        var schedule = PollSchedule(
            vins: fleet, policy: .init(interval: .seconds(1), maxBackoff: .seconds(8)), start: start, seed: 5)
        var api = LimitedAPI(limit: limit)
        let polls = drive(&schedule, api: &api, from: start, seconds: 600)
        let settled = polls.filter { $0.at >= start.plus(seconds: 60) }
        let refused = settled.filter(\.refused).count
        let admitted = settled.count - refused
        let refusedShare = Double(refused) / Double(settled.count)
        let admittedShare = Double(admitted) / 540 / Double(limit)
        #expect(refusedShare < 0.05, "R=\(limit): \(refused) of \(settled.count) refused")
        #expect(admittedShare >= 0.8, "R=\(limit): admitted \(admittedShare * 100) % of the limit")
        #expect(admittedShare <= 1.0)
        #expect(schedule.rate.learned != nil)
    }

    /// When a fleet-wide pause ends, the due vehicles are released at the learned rate: no two
    /// within the pacing gap, not all at the instant the pause ends.
    @Test func releaseAfterAFleetWidePauseIsSpread() {
        let fleet = (1...40).map { VIN("1HMFT00000000" + String(format: "%04d", $0))! }
        var schedule = PollSchedule(vins: fleet, policy: .init(interval: .seconds(10)), start: start, seed: 2)
        // Everyone is due at once after 10 s; three refusals with Retry-After 30 s: an
        // application-wide refusal.
        var now = start.plus(seconds: 10)
        let first = schedule.takeDue(at: now)
        #expect(first.count == 40, "no rate is known yet: nothing is paced")
        for (index, vin) in first.enumerated() {
            schedule.record(index < 3 ? .rateLimited(retryAfter: .seconds(30)) : .success(nil), for: vin, at: now)
        }
        let pauseEnd = try! #require(schedule.globalPauseUntil)
        #expect(pauseEnd == now.plus(seconds: 30))
        #expect(schedule.rate.pacingGap != nil, "a rate was learned")
        // Each release with the pacing gap in force at it (the rate may rise meanwhile).
        var releases: [(at: Timestamp, gap: Duration)] = []
        while now < pauseEnd.plus(seconds: 20) {
            for vin in schedule.takeDue(at: now) {
                releases.append((now, schedule.rate.pacingGap ?? .zero))
                schedule.record(.success(nil), for: vin, at: now)
            }
            now = max(schedule.nextDueTime() ?? now, now.adding(milliseconds: 1))
        }
        #expect(releases.allSatisfy { $0.at >= pauseEnd }, "nobody before the pause ends")
        #expect(releases.count > 3)
        for (earlier, later) in zip(releases, releases.dropFirst()) {
            #expect(later.at.duration(since: earlier.at) >= earlier.gap, "two releases within the pacing gap")
        }
    }

    /// The learned rate and a running pause come back after a restart (a 24 h `Retry-After`
    /// survives `systemctl restart`); a pause already over does not.
    @Test func restoredRateAndPauseApply() {
        var schedule = PollSchedule(vins: [a, b], policy: .init(interval: .seconds(1)), start: start, seed: 1)
        let until = start.plus(seconds: 86_400)
        schedule.restoreApplication(learnedRate: 2, pausedUntil: until, reason: .rateLimited, at: start)
        #expect(schedule.rate.learned == 2)
        #expect(schedule.rate.pacingGap == .milliseconds(500))
        #expect(schedule.takeDue(at: start.plus(seconds: 3600)).isEmpty)
        #expect(schedule.nextDueTime() == until)
        #expect(schedule.takeDue(at: until).count == 1, "then paced: one at a time")
        var over = PollSchedule(vins: [a], policy: .init(interval: .seconds(1)), start: start, seed: 1)
        over.restoreApplication(learnedRate: nil, pausedUntil: start.plus(seconds: -1), reason: nil, at: start)
        #expect(over.globalPauseUntil == nil)
        var capped = PollSchedule(
            vins: [a], policy: .init(interval: .seconds(1), maxRequestsPerSecond: 1), start: start, seed: 1)
        capped.restoreApplication(learnedRate: 5, pausedUntil: nil, reason: nil, at: start)
        #expect(capped.rate.current == 1, "never above polling.max_requests_per_second")
    }

    /// 429s of one vehicle (its own limit) never lower the application's rate.
    @Test func perVehicleRefusalsLeaveTheRateAlone() {
        var schedule = PollSchedule(vins: [a, b], policy: .init(interval: .seconds(1)), start: start, seed: 1)
        var now = start
        for _ in 0..<100 {
            for vin in schedule.takeDue(at: now) {
                schedule.record(vin == a ? .rateLimited(retryAfter: nil) : .success(nil), for: vin, at: now)
            }
            now = now.plus(seconds: 0.5)
        }
        #expect(schedule.rate.learned == nil)
        #expect(schedule.globalPauseUntil == nil)
    }

    /// Refusals that name the vehicle's own limit (403 `Quota exceeded for this vehicle`) never
    /// add up to an application-wide refusal, however many vehicles run out at once.
    @Test func vehicleScopedRefusalsOfManyVehiclesLeaveTheFleetAlone() {
        let fleet = (1...10).map { VIN("1HMFT00000000" + String(format: "%04d", $0))! }
        var schedule = PollSchedule(vins: fleet, policy: .init(interval: .seconds(1)), start: start, seed: 1)
        let now = start.plus(seconds: 1)
        for vin in schedule.takeDue(at: now) {
            schedule.record(.rateLimited(retryAfter: .seconds(86_400), applicationWide: false), for: vin, at: now)
        }
        #expect(schedule.rate.learned == nil)
        #expect(schedule.globalPauseUntil == nil)
        #expect(schedule.entries.values.allSatisfy { $0.health == .rateLimited })
    }

    /// Three refusals among thousands of answers are vehicles' own limits: no application-wide
    /// refusal, no pause, no learned rate.
    @Test func aFewRefusalsInABigFleetAreNoApplicationSignal() {
        let fleet = (1...300).map { VIN("1HMFT00000000" + String(format: "%04d", $0))! }
        var schedule = PollSchedule(vins: fleet, policy: .init(interval: .seconds(1)), start: start, seed: 1)
        var now = start
        var refusals = 0
        for _ in 0..<30 {
            for vin in schedule.takeDue(at: now) {
                let refuse = now >= start.plus(seconds: 20) && refusals < 3
                if refuse { refusals += 1 }
                schedule.record(refuse ? .rateLimited(retryAfter: .seconds(86_400)) : .success(nil), for: vin, at: now)
            }
            now = now.plus(seconds: 1)
        }
        #expect(refusals == 3)
        #expect(schedule.globalPauseUntil == nil)
        #expect(schedule.rate.learned == nil)
    }

    /// Application-wide refusals without `Retry-After` a few minutes apart each pause for 1 s:
    /// the doubling is for refusals in a row only.
    @Test func thePauseWithoutRetryAfterDoublesOnlyInARow() {
        let fleet = (1...10).map { VIN("1HMFT00000000" + String(format: "%04d", $0))! }
        var schedule = PollSchedule(vins: fleet, policy: .init(interval: .seconds(1)), start: start, seed: 1)
        var pauses: [Duration] = []
        var now = start
        for round in 0..<5 {
            now = start.plus(seconds: Double(round) * 300 + 1)
            let due = schedule.takeDue(at: now)
            for vin in due.prefix(1) {
                schedule.record(.rateLimited(retryAfter: nil, applicationWide: true), for: vin, at: now)
            }
            for vin in due.dropFirst() { schedule.record(.success(nil), for: vin, at: now) }
            if let pause = schedule.globalPauseUntil { pauses.append(pause.duration(since: now)) }
            // Let everyone be served at the learned rate until the next round.
            var t = now
            while t < now.plus(seconds: 290) {
                for vin in schedule.takeDue(at: t) { schedule.record(.success(nil), for: vin, at: t) }
                t = max(schedule.nextDueTime() ?? t, t.adding(milliseconds: 1))
            }
        }
        #expect(pauses == Array(repeating: .seconds(1), count: 5), "\(pauses)")
    }

    /// A rate pushed far down (a burst of refusals, or restored from an earlier run) climbs back:
    /// after ``ApplicationRate/probeAfter`` in use without a refusal it probes up to the limit.
    @Test func aRateFarBelowTheLimitRecovers() {
        let fleet = (1...10).map { VIN("1HMFT00000000" + String(format: "%04d", $0))! }
        var schedule = PollSchedule(
            vins: fleet, policy: .init(interval: .seconds(1), maxBackoff: .seconds(8)), start: start, seed: 3)
        schedule.restoreApplication(learnedRate: 0.05, pausedUntil: nil, reason: nil, at: start)
        var api = LimitedAPI(limit: 2)
        let polls = drive(&schedule, api: &api, from: start, seconds: 600)
        let late = polls.filter { $0.at >= start.plus(seconds: 480) }
        let admitted = late.filter { !$0.refused }.count
        #expect(Double(admitted) / 120 >= 1.2, "\(admitted) admitted in the last 2 minutes at a limit of 2/s")
    }

    /// A saved state is bounded by the policy: a pause beyond `max_retry_after` is cut to it, a
    /// budget pause without a budget and a token pause are dropped; an absurd due time or
    /// failure count of a VIN is bounded (no overflow).
    @Test func restoredStateIsBoundedByThePolicy() {
        let policy = PollSchedule.Policy(interval: .seconds(60), maxRetryAfter: .seconds(3600))
        var schedule = PollSchedule(vins: [], policy: policy, start: start, seed: 1)
        let far = Timestamp(millisecondsSince1970: Int64.max / 2)
        schedule.restoreApplication(learnedRate: 1e308, pausedUntil: far, reason: .rateLimited, at: start)
        #expect(schedule.globalPauseUntil == start.plus(seconds: 3600))
        #expect(schedule.rate.learned == ApplicationRate.maximum)
        for reason in [PollSchedule.PauseReason.dailyBudget, .tokenUnavailable] {
            var other = PollSchedule(vins: [], policy: policy, start: start, seed: 1)
            other.restoreApplication(learnedRate: nil, pausedUntil: start.plus(seconds: 600), reason: reason, at: start)
            #expect(other.globalPauseUntil == nil, "\(reason)")
        }
        schedule.restore(a, entry: .init(nextDue: far, consecutiveFailures: .max, health: .backoff), at: start)
        let entry = schedule.entry(a)!
        #expect(entry.nextDue <= start.plus(seconds: 2 * 86_400))
        schedule.start(a)
        schedule.record(.failed, for: a, at: start)
        #expect(schedule.entry(a)!.consecutiveFailures <= 1_001)
    }

    /// A 429 that says the application's limit is reached lowers the rate at once.
    @Test func anApplicationWideErrorLowersTheRateAtOnce() {
        var schedule = PollSchedule(vins: [a, b], policy: .init(interval: .seconds(1)), start: start, seed: 1)
        let due = schedule.takeDue(at: start.plus(seconds: 1))
        schedule.record(.rateLimited(retryAfter: nil, applicationWide: true), for: due[0], at: start.plus(seconds: 1))
        #expect(schedule.rate.learned != nil)
        #expect(schedule.pauseReason == .rateLimited)
    }

    /// A request without a token, or cancelled by a stop, is no failure: the vehicle stays due,
    /// its health and counts are unchanged; a missing token pauses the fleet for the token's wait.
    @Test func unsentAndCancelledPollsAreNoFailures() {
        var schedule = PollSchedule(
            vins: [a, b], policy: .init(interval: .seconds(60), dailyBudgetPerVIN: 100), start: start, seed: 1)
        let now = start.plus(seconds: 60)
        let taken = schedule.takeDue(at: now)
        #expect(taken.count == 2)
        schedule.record(.tokenUnavailable(retryAfter: .seconds(4)), for: taken[0], at: now)
        schedule.record(.cancelled, for: taken[1], at: now)
        for vin in taken {
            let entry = schedule.entry(vin)!
            #expect(entry.health == .ok)
            #expect(entry.consecutiveFailures == 0)
            #expect(entry.pollsToday == 0)
            #expect(entry.nextDue <= now, "still due")
        }
        #expect(schedule.applicationPollsToday == 0)
        #expect(schedule.globalPauseUntil == now.plus(seconds: 4))
        #expect(schedule.pauseReason == .tokenUnavailable)
        #expect(schedule.takeDue(at: now.plus(seconds: 3)).isEmpty)
        #expect(schedule.takeDue(at: now.plus(seconds: 4)).count == 2, "both polled as soon as the wait ends")
    }

    /// The projection of the rest of the day: polls at the cadence, within the per-VIN budget.
    @Test func projectedPollsFollowTheCadenceAndTheBudget() {
        let dayStart = start.startOfUTCDay
        let policy = PollSchedule.Policy(interval: .seconds(3600), dailyBudgetPerVIN: 24)
        let entry = PollSchedule.Entry(nextDue: dayStart.plus(seconds: 20 * 3600), pollsToday: 3, day: dayStart.utcDay)
        let now = dayStart.plus(seconds: 19 * 3600)
        #expect(PollSchedule.projectedPolls(for: entry, policy: policy, fleetSize: 1, at: now) == 4)
        var spent = entry
        spent.pollsToday = 23
        #expect(PollSchedule.projectedPolls(for: spent, policy: policy, fleetSize: 1, at: now) == 1)
        var stopped = entry
        stopped.health = .consentRemoved
        #expect(PollSchedule.projectedPolls(for: stopped, policy: policy, fleetSize: 1, at: now) == 0)
    }
}
