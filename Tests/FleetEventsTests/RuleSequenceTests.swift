import FleetEvents
import FleetModel
import Testing

/// Drives the rules through a sequence of observations of one series, the way the store does:
/// each observation is compared with the previous one, and the rule state carries over.
struct Sequence {
    var rules: EventRules
    var latest: [SeriesKey: LatestValue] = [:]
    var state: RuleState = [:]
    var minute = 0

    init(_ configuration: EventRulesConfiguration = .init()) {
        rules = EventRules(configuration: configuration)
    }

    /// Observes `samples` (property, instance, value) one minute after the previous step.
    mutating func observe(_ samples: [(String, String, SampleValue)]) -> [String] {
        minute += 1
        let time = t0.adding(milliseconds: Int64(minute) * 60_000)
        let observed = samples.map { Sample(vin: vin, property: $0.0, instance: $0.1, value: $0.2, observedAt: time) }
        let events = rules.events(previous: latest, observed: observed, detectedAt: time, state: &state)
        for sample in observed { latest[sample.key] = LatestValue(value: sample.value, unit: nil, observedAt: time) }
        return events.map { $0.instance.isEmpty ? $0.type.rawValue : "\($0.type.rawValue)[\($0.instance)]" }
    }

    mutating func text(_ property: String, _ values: [String], instance: String = "") -> [[String]] {
        values.map { observe([(property, instance, .text($0))]) }
    }

    mutating func numbers(_ property: String, _ values: [Double]) -> [[String]] {
        values.map { observe([(property, "", .number($0))]) }
    }
}

@Suite struct RuleSequenceTests {
    @Test func vehicleLock() {
        var s = Sequence()
        #expect(
            s.text("doors.locks_state", ["locked", "unlocked", "unlocked", "locked"]) == [
                [], ["vehicle_unlocked"], [], ["vehicle_locked"],
            ])
    }

    @Test func doorsOpenAndClose() {
        var s = Sequence()
        #expect(
            s.text("doors.positions.position", ["closed", "open", "closed"], instance: "rear_left") == [
                [], ["door_opened[rear_left]"], ["door_closed[rear_left]"],
            ])
    }

    @Test func trunk() {
        var s = Sequence()
        #expect(s.text("trunk.position", ["closed", "open", "closed"]) == [[], ["trunk_opened"], ["trunk_closed"]])
    }

    @Test func chargingLifecycle() {
        var s = Sequence()
        #expect(
            s.text(
                "charging.status",
                [
                    "not_charging", "charging", "fast_charging", "charging_paused", "charging", "charging_error",
                    "charging", "charging_complete",
                ]) == [
                    [], ["charging_started"], [], ["charging_interrupted"], ["charging_started"], ["charging_error"],
                    ["charging_started"], ["charging_completed"],
                ])
    }

    @Test func plugAndUnplug() {
        var s = Sequence()
        #expect(
            s.text("charging.plugged_in", ["disconnected", "plugged_in", "plugged_in_both_sides", "disconnected"]) == [
                [], ["plugged_in"], [], ["unplugged"],
            ])
    }

    @Test func ignition() {
        var s = Sequence()
        #expect(
            s.text("ignition.state", ["lock", "accessory", "on", "start", "off"]) == [
                [], [], ["ignition_on"], [], ["ignition_off"],
            ])
    }

    /// Fires once below 20 %, not again until re-armed above 25 %.
    @Test func batteryLowHysteresis() {
        var s = Sequence()
        #expect(
            s.numbers("charging.battery_level", [30, 21, 19.9, 18, 21, 19, 26, 19]) == [
                [], [], ["battery_low"], [], [], [], [], ["battery_low"],
            ])
    }

    @Test func firstObservationBelowTheThresholdIsABaseline() {
        var s = Sequence()
        #expect(s.numbers("diagnostics.fuel_level", [10, 9, 21, 14]) == [[], [], [], ["fuel_low"]])
    }

    @Test func vehicleMovedAndGeofences() {
        var configuration = EventRulesConfiguration()
        configuration.movedDistanceKm = 1
        configuration.geofences = [.init(name: "depot", latitude: 52.5, longitude: 13.4, radiusMeters: 500)]
        var s = Sequence(configuration)
        func at(_ lat: Double, _ lon: Double) -> [(String, String, SampleValue)] {
            [
                ("vehicle_location.coordinates.latitude", "", .number(lat)),
                ("vehicle_location.coordinates.longitude", "", .number(lon)),
            ]
        }
        #expect(s.observe(at(52.5, 13.4)) == [], "baseline, inside the depot")
        #expect(Set(s.observe(at(52.51, 13.4))) == ["vehicle_moved", "geofence_exited[depot]"], "1.1 km north")
        #expect(s.observe(at(52.5105, 13.4)) == [], "56 m: neither moved nor crossing")
        #expect(Set(s.observe(at(52.5, 13.4))) == ["vehicle_moved", "geofence_entered[depot]"])
        #expect(s.observe(at(52.502, 13.4)) == [], "222 m, still inside")
    }

    @Test func disabledRulesNeverFire() {
        var configuration = EventRulesConfiguration()
        configuration.disabled = [.doorUnlocked]
        var s = Sequence(configuration)
        #expect(
            s.text("doors.locks.lock_state", ["locked", "unlocked", "locked"], instance: "front_left") == [
                [], [], ["door_locked[front_left]"],
            ])
    }

    @Test func olderObservationAfterANewerOneIsNoEvent() {
        var s = Sequence()
        _ = s.text("charging.status", ["not_charging"])
        s.minute -= 5
        #expect(s.text("charging.status", ["charging"]) == [[]])
    }
}
