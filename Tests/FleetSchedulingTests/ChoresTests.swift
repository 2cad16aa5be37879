import FleetModel
import Testing

@testable import FleetScheduling

/// The daemon's periodic chores on the schedule's time model.
@Suite struct ChoresTests {
    let t0 = Timestamp(iso8601: "2026-11-28T09:00:00Z")!

    @Test func everyPeriodicChoreIsDueAtTheStartThenOncePerPeriod() {
        var chores = Chores(
            cadence: .init(fleetSync: .seconds(3600), manualPollCount: .seconds(10), maintenance: .seconds(60)),
            start: t0)
        #expect(chores.due(at: t0) == [.fleetSync, .manualPollCount, .maintenance])
        for chore in chores.due(at: t0) { chores.completed(chore, at: t0) }
        #expect(chores.due(at: t0.adding(.seconds(9))).isEmpty)
        #expect(chores.nextDue == t0.adding(.seconds(10)))
        #expect(chores.due(at: t0.adding(.seconds(60))) == [.manualPollCount, .maintenance])
        #expect(chores.nextDue(.fleetSync) == t0.adding(.seconds(3600)))
    }

    @Test func aChoreWithoutCadenceNeverRuns() {
        let chores = Chores(cadence: .init(fleetSync: nil, manualPollCount: nil), start: t0)
        #expect(chores.due(at: t0.adding(.seconds(86_400))) == [.maintenance])
    }

    /// A failed listing is tried again within seconds, then less often, never past the cap.
    @Test func aFailedFleetSyncBacksOffFromASecondWithJitter() {
        var chores = Chores(cadence: .init(fleetSync: .seconds(3600)), start: t0, seed: 7)
        var waits: [Duration] = []
        for _ in 0..<12 { waits.append(chores.fleetSyncFailed(at: t0)) }
        #expect(waits[0] >= .milliseconds(500) && waits[0] <= .seconds(1))
        #expect(waits[1] >= .seconds(1) && waits[1] <= .seconds(2))
        #expect(waits[3] >= .seconds(4) && waits[3] <= .seconds(8))
        #expect(waits.allSatisfy { $0 <= .seconds(300) }, "at most a fifth of the interval and 5 minutes")
        #expect(waits.last! >= .seconds(150))
        #expect(chores.nextDue(.fleetSync) == t0.adding(waits.last!))
        chores.completed(.fleetSync, at: t0)
        #expect(chores.fleetSyncFailures == 0)
        #expect(chores.fleetSyncFailed(at: t0) <= .seconds(1), "a success starts the backoff over")
    }

    @Test func aSaveWaitsForAPollThatNeedsOneAndAnUrgentOneIsDueAtOnce() {
        var chores = Chores(cadence: .init(fleetSync: nil, manualPollCount: nil), start: t0)
        chores.completed(.maintenance, at: t0)
        #expect(chores.nextDue(.scheduleSave) == nil)
        chores.needsSave(at: t0)
        #expect(chores.nextDue(.scheduleSave) == t0.adding(.seconds(1)))
        chores.needsSave(at: t0.adding(.milliseconds(500)), urgent: true)
        #expect(chores.due(at: t0.adding(.milliseconds(500))) == [.scheduleSave])
        chores.completed(.scheduleSave, at: t0.adding(.milliseconds(500)))
        #expect(chores.nextDue(.scheduleSave) == nil)
    }
}
