@testable import FleetEmulator
import FleetModel
import Testing

let start = Timestamp(iso8601: "2026-11-28T00:00:00Z")!
let vin = VIN("1HMEMU00000000001")!

/// Samples a vehicle every `step` minutes for `hours`.
func trace(seed: UInt64, hours: Int = 48, stepMinutes: Int = 5, battery: Double? = nil) -> [VehicleSimulation.Snapshot]
{
    var simulation = VehicleSimulation(vin: vin, seed: seed, start: start, initialBatteryPercent: battery)
    return stride(from: 0, through: hours * 60, by: stepMinutes).map {
        simulation.snapshot(at: start.adding(milliseconds: Int64($0) * 60_000))
    }
}

@Suite struct VehicleSimulationTests {
    @Test func sameSeedSameHistoryWhateverTheQueryTimes() {
        let coarse = trace(seed: 42, stepMinutes: 60)
        let fine = trace(seed: 42, stepMinutes: 5)
        let fineByTime = Dictionary(uniqueKeysWithValues: fine.map { ($0.at, $0) })
        for snapshot in coarse {
            #expect(fineByTime[snapshot.at] == snapshot)
        }
        #expect(trace(seed: 43) != fine, "another seed gives another history")
    }

    @Test func readingsFollowFromTheState() {
        let snapshots = trace(seed: 7, hours: 72, battery: 52)
        for (before, after) in zip(snapshots, snapshots.dropFirst()) {
            #expect(after.odometerKm >= before.odometerKm, "odometer never goes back")
            if after.phase == .parked || after.phase == .departing {
                #expect(after.speedKmh == 0)
            }
            if before.phase == .parked && after.phase == .parked {
                #expect(after.odometerKm == before.odometerKm)
                #expect(after.latitude == before.latitude && after.longitude == before.longitude)
            }
            if after.odometerKm > before.odometerKm && after.chargingStatus != "charging"
                && before.chargingStatus != "charging"
            {
                #expect(after.batteryPercent < before.batteryPercent, "driving drains the battery")
            }
            #expect((0...100).contains(after.batteryPercent))
        }
        let phases = Set(snapshots.map(\.phase))
        #expect(phases.isSuperset(of: [.parked, .departing, .driving, .arriving, .charging]))
    }

    @Test func doorsUnlockBeforeATripAndLockAfter() {
        let snapshots = trace(seed: 9, hours: 48, stepMinutes: 1)
        for snapshot in snapshots where snapshot.phase == .driving || snapshot.phase == .departing {
            #expect(snapshot.lockState == "unlocked")
        }
        for snapshot in snapshots where snapshot.phase == .parked || snapshot.phase == .charging {
            #expect(snapshot.lockState == "locked")
        }
    }

    @Test func chargesToTheLimitThenCompletes() {
        let snapshots = trace(seed: 7, hours: 72, stepMinutes: 1, battery: 52)
        let charging = snapshots.filter { $0.chargingStatus == "charging" }
        #expect(!charging.isEmpty)
        #expect(
            charging.allSatisfy { $0.pluggedIn == "plugged_in" && $0.batteryPercent <= 80 && $0.chargingPowerKW == 11 })
        let completeIndex = try! #require(snapshots.firstIndex { $0.chargingStatus == "charging_complete" })
        #expect(snapshots[completeIndex].batteryPercent == 80)
    }

    @Test func unchangedParkedCarKeepsItsTimestamps() {
        var simulation = VehicleSimulation(vin: vin, seed: 5, start: start)
        let first = simulation.snapshot(at: start.adding(milliseconds: 60_000))
        let second = simulation.snapshot(at: start.adding(milliseconds: 120_000))
        #expect(first.phase == .parked && second.phase == .parked)
        #expect(first.motionChangedAt == second.motionChangedAt)
        #expect(first.lockChangedAt == second.lockChangedAt)
    }
}

@Suite struct RendererTests {
    @Test func autoAPIBodyIsWhatTheNormalizerReads() {
        var simulation = VehicleSimulation(vin: vin, seed: 5, start: start, initialBatteryPercent: 64)
        let body = VehicleDataRenderer.render(simulation.snapshot(at: start), shape: .autoAPI, requestID: "r")
        #expect(body["charging"]?["battery_level"]?["data"] == .number(0.64))
        #expect(body["doors"]?["locks"]?.arrayValue?.count == 4)
        #expect(body["diagnostics"]?["odometer"]?["data"]?["unit"] == .string("kilometers"))
        #expect(body["vin"] == .string(vin.rawValue))
    }

    @Test func simplifiedBodyHasTheDocumentShape() {
        var simulation = VehicleSimulation(vin: vin, seed: 5, start: start, initialBatteryPercent: 64)
        let body = VehicleDataRenderer.render(simulation.snapshot(at: start), shape: .simplified, requestID: "r")
        #expect(body["charging"]?["battery_level"] == .number(64))
        #expect(body["charging"]?["charging_state"] == .string("disconnected"))
        #expect(body["doors"]?["locks"]?.arrayValue?.first?["lock"] == .string("locked"))
        #expect(body["timestamp"] == .string(start.iso8601))
    }
}
