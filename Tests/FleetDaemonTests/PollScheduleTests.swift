@testable import FleetDaemon
import FleetModel
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
        var schedule = PollSchedule(vins: [a], policy: .init(interval: .seconds(60), maxRetryAfter: .seconds(3600)), start: start, seed: 1)
        schedule.record(.rateLimited(retryAfter: .seconds(86_400 * 30)), for: a, at: start)
        #expect(schedule.entries[a]!.nextDue == start.plus(seconds: 3600))
        schedule.record(.rateLimited(retryAfter: .seconds(1)), for: a, at: start)
        #expect(schedule.entries[a]!.nextDue == start.plus(seconds: 1), "a short Retry-After is the server's call")
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
