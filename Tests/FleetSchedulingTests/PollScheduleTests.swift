@testable import FleetScheduling
import FleetModel
import Foundation
import Testing

let start = Timestamp(iso8601: "2026-11-28T09:00:00Z")!
let a = VIN("1HMFT000000000001")!
let b = VIN("1HMFT000000000002")!

extension Timestamp {
    func plus(seconds: Double) -> Timestamp { adding(milliseconds: Int64(seconds * 1000)) }
}

@Suite struct PollScheduleTests {
    let policy = PollSchedule.Policy(interval: .seconds(60), maxBackoff: .seconds(600))

    @Test func firstPollsAreSpreadWithinTheFirstInterval() {
        let vins = (1...200).map { VIN("1HMFT000000000" + String(format3: $0))! }
        let schedule = PollSchedule(vins: vins, policy: policy, start: start, seed: 7)
        let offsets = schedule.entries.values.map { $0.nextDue.millisecondsSince1970 - start.millisecondsSince1970 }
        #expect(offsets.allSatisfy { (0..<60_000).contains($0) })
        #expect(Set(offsets).count > 190, "offsets are random, not identical")
        #expect(schedule.due(at: start.plus(seconds: 60)).count == 200)
    }

    @Test func successKeepsTheCadence() {
        var schedule = PollSchedule(vins: [a], policy: policy, start: start, seed: 1)
        let first = schedule.entries[a]!.nextDue
        schedule.start(a)
        #expect(schedule.due(at: first).isEmpty, "a VIN in flight is not handed out again")
        schedule.record(.success(nil), for: a, at: first.plus(seconds: 2))
        #expect(schedule.entries[a]!.nextDue == first.plus(seconds: 60))
    }

    @Test func retryAfterIsHonouredForThatVINOnly() {
        var schedule = PollSchedule(vins: [a, b], policy: policy, start: start, seed: 1)
        let dueA = schedule.entries[a]!.nextDue
        let dueB = schedule.entries[b]!.nextDue
        schedule.start(a)
        schedule.record(.rateLimited(retryAfter: .seconds(300)), for: a, at: dueA)
        schedule.start(b)
        schedule.record(.success(nil), for: b, at: dueB)
        #expect(schedule.entries[a]!.nextDue == dueA.plus(seconds: 300))
        #expect(schedule.entries[b]!.nextDue == dueB.plus(seconds: 60))
        #expect(!schedule.due(at: dueA.plus(seconds: 299.999)).contains(a))
        #expect(schedule.due(at: dueA.plus(seconds: 300)).contains(a))
    }

    @Test func retryAfterIsClampedAboveOnly() {
        var schedule = PollSchedule(
            vins: [a], policy: .init(interval: .seconds(60), maxRetryAfter: .seconds(3600)), start: start, seed: 1)
        schedule.record(.rateLimited(retryAfter: .seconds(86_400 * 30)), for: a, at: start)
        #expect(schedule.entries[a]!.nextDue == start.plus(seconds: 3600))
        schedule.record(.rateLimited(retryAfter: .seconds(1)), for: a, at: start)
        #expect(schedule.entries[a]!.nextDue == start.plus(seconds: 60), "never sooner than the interval")
        schedule.record(.rateLimited(retryAfter: .zero), for: a, at: start)
        #expect(schedule.entries[a]!.nextDue == start.plus(seconds: 60), "Retry-After: 0 is no tight loop")
    }

    /// Full jitter: the n-th consecutive failure waits between the interval and
    /// min(maxBackoff, interval × 2^(n-1)); on average the waits grow; a success resets.
    @Test func backoffGrowsIsNeverBelowTheIntervalAndIsCapped() {
        var sums = Array(repeating: Int64(0), count: 8)
        for seed in 0..<200 {
            var schedule = PollSchedule(vins: [a], policy: policy, start: start, seed: UInt64(seed))
            var now = start
            for failure in 1...8 {
                schedule.record(.failed, for: a, at: now)
                let next = schedule.entries[a]!.nextDue
                let delay = next.millisecondsSince1970 - now.millisecondsSince1970
                let ceiling = min(600_000, 60_000 << (failure - 1))
                #expect(delay >= 60_000 && delay <= ceiling, "failure \(failure): \(delay) ms")
                sums[failure - 1] += delay
                now = next
            }
            schedule.record(.success(nil), for: a, at: now)
            #expect(schedule.entries[a]!.consecutiveFailures == 0)
            #expect(schedule.entries[a]!.nextDue == now.plus(seconds: 60))
        }
        #expect(sums[0] == 200 * 60_000, "the first retry waits exactly one interval")
        #expect(sums[1] < sums[2] && sums[2] < sums[3] && sums[3] < sums[4], "waits grow: \(sums)")
    }

    @Test func rateLimitWithoutRetryAfterBacksOff() {
        var schedule = PollSchedule(vins: [a], policy: policy, start: start, seed: 3)
        schedule.record(.rateLimited(retryAfter: nil), for: a, at: start)
        schedule.record(.rateLimited(retryAfter: nil), for: a, at: start)
        let delay = schedule.entries[a]!.nextDue.millisecondsSince1970 - start.millisecondsSince1970
        #expect(delay >= 60_000 && delay <= 120_000)
    }
}

extension String {
    init(format3 value: Int) {
        let digits = "\(value)"
        self = String(repeating: "0", count: Swift.max(0, 3 - digits.count)) + digits
    }
}

@Suite struct PollSchedulePolicyTests {
    let vins = (1...10).map { VIN("1HMFT0000000000" + String(format: "%02d", $0))! }

    /// Drives the schedule like the daemon: every `step`, take what is due and answer it.
    func simulate(
        _ schedule: inout PollSchedule, from: Timestamp, for seconds: Int, step: Double = 1,
        answer: (VIN, Timestamp) -> PollSchedule.Outcome = { _, _ in .success(nil) }
    ) -> [(VIN, Timestamp)] {
        var polls: [(VIN, Timestamp)] = []
        var now = from
        let end = from.plus(seconds: Double(seconds))
        while now < end {
            for vin in schedule.takeDue(at: now) {
                polls.append((vin, now))
                schedule.record(answer(vin, now), for: vin, at: now)
            }
            now = now.plus(seconds: step)
        }
        return polls
    }

    @Test func rateLimitsOnManyVINsPauseTheWholeFleet() {
        var schedule = PollSchedule(vins: vins, policy: .init(interval: .seconds(60)), start: start, seed: 1)
        var limited = 0
        let polls = simulate(&schedule, from: start, for: 600) { _, _ in
            limited += 1
            return limited <= 3 ? .rateLimited(retryAfter: .seconds(120)) : .success(nil)
        }
        let firstThree = polls.prefix(3)
        let pauseEnd = firstThree.last!.1.plus(seconds: 120)
        #expect(!polls.dropFirst(3).contains { $0.1 < pauseEnd }, "nobody is polled during the global pause")
        #expect(polls.contains { $0.1 >= pauseEnd }, "polling resumes after it")
    }

    @Test func oneRateLimitedVINDoesNotPauseOthers() {
        var schedule = PollSchedule(vins: vins, policy: .init(interval: .seconds(60)), start: start, seed: 1)
        let polls = simulate(&schedule, from: start, for: 300) { vin, _ in
            vin == vins[0] ? .rateLimited(retryAfter: .seconds(1000)) : .success(nil)
        }
        #expect(polls.filter { $0.0 == vins[0] }.count == 1)
        #expect(polls.filter { $0.0 == vins[1] }.count == 5)
    }

    @Test(arguments: [(PollSchedule.Health.asleep, 360.0), (.pending, 360), (.notCleared, 360), (.privacy, 21_600)])
    func slowAnswersMoveTheVINToASlowCadence(health: PollSchedule.Health, seconds: Double) {
        var schedule = PollSchedule(vins: [a], policy: .init(interval: .seconds(60)), start: start, seed: 1)
        schedule.record(.slow(health), for: a, at: start)
        #expect(schedule.entries[a]!.nextDue == start.plus(seconds: seconds))
        #expect(schedule.entries[a]!.health == health)
    }

    @Test func activityIntervalsApply() {
        var schedule = PollSchedule(
            vins: [a],
            policy: .init(
                interval: .seconds(300), activityIntervals: [.driving: .seconds(60), .parked: .seconds(900)]),
            start: start, seed: 1)
        let first = schedule.entries[a]!.nextDue
        schedule.record(.success(.driving), for: a, at: first)
        #expect(schedule.entries[a]!.nextDue == first.plus(seconds: 60))
        schedule.record(.success(.parked), for: a, at: first.plus(seconds: 60))
        #expect(schedule.entries[a]!.nextDue == first.plus(seconds: 960))
        schedule.record(.success(nil), for: a, at: first.plus(seconds: 960))
        #expect(schedule.entries[a]!.nextDue == first.plus(seconds: 1860), "the last known activity still applies")
    }

    /// A simulated day with a 10-second interval: the per-VIN budget (100) and the application
    /// budget (600 for 10 VINs) are never exceeded, by stretched intervals rather than bursts.
    @Test func dailyBudgetsAreNeverExceeded() {
        let dayStart = Timestamp(millisecondsSince1970: PollSchedule.day(of: start) * 86_400_000)
        var schedule = PollSchedule(
            vins: vins, policy: .init(interval: .seconds(10), dailyBudgetPerVIN: 100, dailyBudgetApplication: 600),
            start: dayStart, seed: 1)
        let polls = simulate(&schedule, from: dayStart, for: 86_400, step: 5)
        #expect(polls.count <= 600)
        #expect(polls.count >= 550, "the budget is spent, not wasted: \(polls.count)")
        for vin in vins { #expect(polls.filter { $0.0 == vin }.count <= 100) }
        let gaps = zip(polls, polls.dropFirst()).filter { $0.0.0 == $0.1.0 }.map {
            $0.1.1.millisecondsSince1970 - $0.0.1.millisecondsSince1970
        }
        #expect(gaps.allSatisfy { $0 >= 10_000 })
    }

    /// `max_requests_per_second: 5`: requests are paced, never two within 200 ms, and the cap is
    /// used (at least 90 % of it with the 0–10 % jitter).
    @Test func maxRequestsPerSecondPacesTheRequests() {
        let many = (1...100).map { VIN("1HMFT000000000" + String(format: "%03d", $0))! }
        var schedule = PollSchedule(
            vins: many, policy: .init(interval: .seconds(10), maxRequestsPerSecond: 5), start: start, seed: 1)
        let polls = simulate(&schedule, from: start, for: 60, step: 0.001)
        let times = polls.map(\.1.millisecondsSince1970)
        let gaps = zip(times, times.dropFirst()).map { $1 - $0 }
        #expect(gaps.allSatisfy { $0 >= 200 }, "shortest gap \(gaps.min() ?? 0) ms")
        #expect(polls.count >= 270 && polls.count <= 301, "\(polls.count) requests in 60 s")
    }

    @Test func restoredStateKeepsALongWaitAndSpreadsPastDueTimes() {
        var schedule = PollSchedule(vins: [], policy: .init(interval: .seconds(60)), start: start, seed: 1)
        let waiting = VIN("1HMFT000000000099")!
        schedule.restore(
            waiting, entry: .init(nextDue: start.plus(seconds: 3600), consecutiveFailures: 1, health: .rateLimited),
            at: start)
        for vin in vins { schedule.restore(vin, entry: .init(nextDue: start.plus(seconds: -500)), at: start) }
        #expect(schedule.entries[waiting]!.nextDue == start.plus(seconds: 3600))
        let offsets = vins.map { schedule.entries[$0]!.nextDue.millisecondsSince1970 - start.millisecondsSince1970 }
        #expect(offsets.allSatisfy { (0..<60_000).contains($0) })
        #expect(Set(offsets).count == vins.count)
    }

    @Test func heapHandsOutEachDueVINOnceInOrder() {
        let many = (1...500).map { VIN("1HMFT000000000" + String(format: "%03d", $0))! }
        var schedule = PollSchedule(vins: many, policy: .init(interval: .seconds(60)), start: start, seed: 9)
        let expected = schedule.due(at: start.plus(seconds: 30))
        let taken = schedule.takeDue(at: start.plus(seconds: 30))
        #expect(taken == expected)
        #expect(schedule.takeDue(at: start.plus(seconds: 30)).isEmpty, "in flight: not handed out twice")
        for vin in taken { schedule.record(.success(nil), for: vin, at: start.plus(seconds: 30)) }
        #expect(schedule.nextDueTime()! > start.plus(seconds: 30))
    }

    @Test func manualPollsSpendTheBudget() {
        var schedule = PollSchedule(
            vins: [a, b], policy: .init(interval: .seconds(10), dailyBudgetPerVIN: 2), start: start, seed: 1)
        schedule.countManualPoll(a, at: start)
        schedule.countManualPoll(a, at: start)
        let taken = schedule.takeDue(at: start.plus(seconds: 10))
        #expect(taken == [b])
        #expect(schedule.entries[a]!.nextDue >= PollSchedule.startOfNextDay(start), "deferred to the next UTC day")
        #expect(schedule.applicationPollsToday == 3)
    }
}
