import FleetModel
import Foundation

/// The change-event rules: which transitions of which properties are events.
///
/// A rule fires only when a series moves forward in time to a new value: the new observation is
/// newer than the stored latest one and its value differs. A VIN's first observation of a series
/// sets the baseline and emits nothing; a missing section or a property failure writes no sample,
/// so it is never a change; a unit change is no change, because values are compared in canonical
/// units.
///
/// | event | from |
/// |---|---|
/// | `door_unlocked` / `door_locked` | `doors.locks.lock_state` per door (instance = location) |
/// | `vehicle_unlocked` / `vehicle_locked` | `doors.locks_state` |
/// | `door_opened` / `door_closed` | `doors.positions.position` per door |
/// | `trunk_opened` / `trunk_closed` | `trunk.position` |
/// | `charging_started` | `charging.status` into `charging`, `fast_charging`, `slow_charging` |
/// | `charging_completed` | `charging.status` to `charging_complete` |
/// | `charging_interrupted` | `charging.status` from a charging state to anything but complete or error |
/// | `charging_error` | `charging.status` to `charging_error` |
/// | `plugged_in` / `unplugged` | `charging.plugged_in` |
/// | `ignition_on` / `ignition_off` | `ignition.state` (`on`, `start` versus `off`, `lock`, `accessory`) |
/// | `battery_low` / `fuel_low` | `charging.battery_level` / `diagnostics.fuel_level` below a threshold, with hysteresis |
/// | `vehicle_moved` | `vehicle_location.coordinates` farther than a distance from the last anchor |
/// | `geofence_entered` / `geofence_exited` | `vehicle_location.coordinates` across a configured circle |
public struct EventRules: ChangeDetecting {
    /// `charging.status` values that mean energy is flowing into the battery.
    public static let chargingStatuses: Set<String> = ["charging", "fast_charging", "slow_charging"]

    public let configuration: EventRulesConfiguration

    public init(configuration: EventRulesConfiguration = .init()) {
        self.configuration = configuration
    }

    public func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp) -> [Event] {
        var state: [String: String] = [:]
        return events(previous: previous, observed: observed, detectedAt: detectedAt, state: &state)
    }

    public func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp, state: inout [String: String]) -> [Event] {
        var events: [Event] = []
        func emit(_ type: EventType, _ sample: Sample, instance: String? = nil, from old: String?, to new: String) {
            guard !configuration.disabled.contains(type) else { return }
            events.append(Event(vin: sample.vin, type: type, instance: instance ?? sample.instance, occurredAt: sample.observedAt, detectedAt: detectedAt, previousValue: old, newValue: new))
        }
        // Only an observation newer than the stored one is a change: most of a response is not
        // (values reported again), so those are set aside first, with one lookup each.
        var fresh = observed.indices.filter { index in
            let sample = observed[index]
            return previous[sample.key].map { sample.observedAt > $0.observedAt } ?? true
        }
        // Several observations of one series in one response are compared in time order: a later
        // one with the earlier, through `newer` (copying `previous` to update it cost more than
        // the rules themselves).
        if fresh.count > 1 { fresh.sort { observed[$0].observedAt < observed[$1].observedAt } }
        var newer: [SeriesKey: LatestValue] = [:]
        for index in fresh {
            let sample = observed[index]
            let key = sample.key
            let old = newer[key] ?? previous[key]
            if let old, sample.observedAt <= old.observedAt { continue }
            newer[key] = LatestValue(value: sample.value, unit: sample.unit, observedAt: sample.observedAt)
            switch sample.property {
            case "charging.battery_level":
                if let threshold = configuration.batteryLow { hysteresis(.batteryLow, "battery_low|", threshold, sample, old, &state, emit) }
            case "diagnostics.fuel_level":
                if let threshold = configuration.fuelLow { hysteresis(.fuelLow, "fuel_low|", threshold, sample, old, &state, emit) }
            default:
                guard let old, old.value != sample.value, case .text(let new) = sample.value else { continue }
                if let type = Self.eventType(property: sample.property, from: old.value.text, to: new) {
                    emit(type, sample, from: old.value.description, to: new)
                }
            }
        }
        positionEvents(previous: previous, observed: observed, state: &state, emit)
        // A silent vehicle that reports again.
        if state["silent"] != nil, let newest = fresh.lazy.map({ observed[$0] }).max(by: { $0.observedAt < $1.observedAt }) {
            state["silent"] = nil
            emit(.vehicleReporting, newest, instance: "", from: "silent", to: "reporting")
        }
        return events
    }

    /// A level falling below `threshold.below` fires once, then re-arms above `threshold.rearmAbove`.
    /// A first observation already below the threshold sets the rule as fired, without an event.
    /// `key` is the rule's state key up to its instance (`battery_low|`).
    private func hysteresis(_ type: EventType, _ key: String, _ threshold: EventRulesConfiguration.Threshold, _ sample: Sample, _ old: LatestValue?,
                            _ state: inout [String: String], _ emit: (EventType, Sample, String?, String?, String) -> Void) {
        guard let level = sample.value.number else { return }
        let stateKey = sample.instance.isEmpty ? key : key + sample.instance  // `battery_low|` + instance
        if level < threshold.below {
            if state[stateKey] != "fired" {
                state[stateKey] = "fired"
                if let old { emit(type, sample, nil, old.value.description, sample.value.description) }
            }
        } else if level > threshold.rearmAbove {
            state[stateKey] = nil
        }
    }

    /// `vehicle_moved` and geofences, from a poll that observed both coordinates.
    private func positionEvents(previous: [SeriesKey: LatestValue], observed: [Sample], state: inout [String: String],
                                _ emit: (EventType, Sample, String?, String?, String) -> Void) {
        guard let latitude = observed.first(where: { $0.property == "vehicle_location.coordinates.latitude" }),
              let longitude = observed.first(where: { $0.property == "vehicle_location.coordinates.longitude" }),
              let lat = latitude.value.number, let lon = longitude.value.number
        else { return }
        let oldLatitude = previous[latitude.key]
        let oldLongitude = previous[longitude.key]
        if let oldLatitude, latitude.observedAt <= oldLatitude.observedAt { return }
        // Formatted only when stored or reported: most polls neither move the anchor nor set it.
        var here: String { Self.coordinateText(lat) + "," + Self.coordinateText(lon) }

        if let distanceKm = configuration.movedDistanceKm {
            if let anchor = state["moved_anchor"].flatMap(Self.coordinates) {
                if Self.distanceKm(anchor, (lat, lon)) >= distanceKm {
                    emit(.vehicleMoved, latitude, "", state["moved_anchor"], here)
                    state["moved_anchor"] = here
                }
            } else {
                state["moved_anchor"] = here
            }
        }
        guard let previousLat = oldLatitude?.value.number, let previousLon = oldLongitude?.value.number else { return }
        for fence in configuration.geofences {
            let wasInside = Self.distanceKm((previousLat, previousLon), (fence.latitude, fence.longitude)) * 1000 <= fence.radiusMeters
            let isInside = Self.distanceKm((lat, lon), (fence.latitude, fence.longitude)) * 1000 <= fence.radiusMeters
            if isInside && !wasInside { emit(.geofenceEntered, latitude, fence.name, "outside", "inside") }
            if wasInside && !isInside { emit(.geofenceExited, latitude, fence.name, "inside", "outside") }
        }
    }

    /// The event for a change of `property` from `old` to `new`, if the rules name one.
    static func eventType(property: String, from old: String?, to new: String) -> EventType? {
        switch property {
        case "doors.locks.lock_state":
            if old == "locked" && new == "unlocked" { return .doorUnlocked }
            if old == "unlocked" && new == "locked" { return .doorLocked }
        case "doors.locks_state":
            if old == "locked" && new == "unlocked" { return .vehicleUnlocked }
            if old == "unlocked" && new == "locked" { return .vehicleLocked }
        case "doors.positions.position":
            if old == "closed" && new == "open" { return .doorOpened }
            if old == "open" && new == "closed" { return .doorClosed }
        case "trunk.position":
            if old == "closed" && new == "open" { return .trunkOpened }
            if old == "open" && new == "closed" { return .trunkClosed }
        case "charging.status":
            let wasCharging = chargingStatuses.contains(old ?? "")
            if chargingStatuses.contains(new) && !wasCharging { return .chargingStarted }
            if new == "charging_complete" { return .chargingCompleted }
            if new == "charging_error" { return .chargingError }
            if wasCharging && !chargingStatuses.contains(new) { return .chargingInterrupted }
        case "charging.plugged_in":
            if old == "disconnected" && new != "disconnected" { return .pluggedIn }
            if old != nil && old != "disconnected" && new == "disconnected" { return .unplugged }
        case "ignition.state":
            let on: Set<String> = ["on", "start"]
            let off: Set<String> = ["off", "lock", "accessory"]
            if off.contains(old ?? "") && on.contains(new) { return .ignitionOn }
            if on.contains(old ?? "") && off.contains(new) { return .ignitionOff }
        default:
            break
        }
        return nil
    }

    /// A coordinate in degrees with six decimals (`52.520008`, `-0.127600`): about 0.1 m, the
    /// text of the `vehicle_moved` anchor and of its event values. Written without Foundation's
    /// `String(format:)`, which cost more than the rest of the rule.
    static func coordinateText(_ degrees: Double) -> String {
        guard degrees.isFinite, abs(degrees) < 1e9 else { return String(degrees) }
        // Rounded as printf rounds: on the exact binary value. The product's rounding error is
        // recovered exactly with a fused multiply-add; it decides only when the product itself
        // came out as a half (adding the two could round the sum back to the half).
        let magnitude = abs(degrees)
        let scaled = magnitude * 1_000_000
        let error = (-scaled).addingProduct(magnitude, 1_000_000)
        var whole = scaled.rounded(.down)
        let part = scaled - whole  // exact
        if part > 0.5 || (part == 0.5 && (error > 0 || (error == 0 && whole.truncatingRemainder(dividingBy: 2) == 1))) {
            whole += 1
        }
        let micro = Int64(whole)
        let fraction = String(micro % 1_000_000)
        return (degrees.sign == .minus ? "-" : "") + String(micro / 1_000_000) + "."
            + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    static func coordinates(_ text: String) -> (Double, Double)? {
        let parts = text.split(separator: ",").compactMap { Double($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }

    /// Great-circle distance in km (haversine, mean Earth radius 6371.0088 km).
    static func distanceKm(_ a: (Double, Double), _ b: (Double, Double)) -> Double {
        let radians = Double.pi / 180
        let dLat = (b.0 - a.0) * radians
        let dLon = (b.1 - a.1) * radians
        let h = sin(dLat / 2) * sin(dLat / 2) + cos(a.0 * radians) * cos(b.0 * radians) * sin(dLon / 2) * sin(dLon / 2)
        return 2 * 6371.0088 * asin(min(1, sqrt(h)))
    }
}

/// How the event rules are tuned (config section `events`).
public struct EventRulesConfiguration: Sendable, Hashable {
    /// A level threshold with hysteresis: fire below `below`, re-arm above `rearmAbove`.
    public struct Threshold: Sendable, Hashable {
        /// Percent, 0–100.
        public var below: Double
        /// Percent, 0–100; at least `below`.
        public var rearmAbove: Double
        public init(below: Double, rearmAbove: Double) {
            self.below = below
            self.rearmAbove = max(rearmAbove, below)
        }
    }

    /// A named circle.
    public struct Geofence: Sendable, Hashable {
        public var name: String
        /// Degrees.
        public var latitude: Double
        /// Degrees.
        public var longitude: Double
        /// Meters.
        public var radiusMeters: Double
        public init(name: String, latitude: Double, longitude: Double, radiusMeters: Double) {
            self.name = name
            self.latitude = latitude
            self.longitude = longitude
            self.radiusMeters = radiusMeters
        }
    }

    /// `events.disabled`: rules that never fire.
    public var disabled: Set<EventType> = []
    /// `events.battery_low` (default below 20 %, re-armed above 25 %); `nil` turns it off.
    public var batteryLow: Threshold? = Threshold(below: 20, rearmAbove: 25)
    /// `events.fuel_low` (default below 15 %, re-armed above 20 %).
    public var fuelLow: Threshold? = Threshold(below: 15, rearmAbove: 20)
    /// `events.vehicle_moved_km`: distance in km from the last anchor (default 1 km).
    public var movedDistanceKm: Double? = 1
    /// `events.geofences`.
    public var geofences: [Geofence] = []
    /// `events.vehicle_silent_after`: no new observation for this long is `vehicle_silent`
    /// (default 6h; `nil` turns it off).
    public var silentAfter: Duration? = .seconds(6 * 3600)
    /// `events.charging_session_timeout`: a charging session whose end is never observed is
    /// closed after this long with `end_reason = timeout` (default 24h).
    public var chargingSessionTimeout: Duration = .seconds(24 * 3600)

    public init() {}
}
