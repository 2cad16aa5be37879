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

    @Test func aFailedFleetSyncIsRetriedSooner() {
        var chores = Chores(cadence: .init(fleetSync: .seconds(3600)), start: t0)
        chores.failed(.fleetSync, at: t0, retry: chores.fleetSyncRetry)
        #expect(chores.fleetSyncRetry == .seconds(300))
        #expect(chores.nextDue(.fleetSync) == t0.adding(.seconds(300)))
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
