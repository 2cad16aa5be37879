import FleetModel
import Foundation

/// The change-event rules: which transitions of which properties are events.
///
/// FleetEvents decides every event and what the rules remember; it never reads the database or
/// the clock (the store hands it the facts inside the write's transaction), and never delivers.
///
/// A rule fires only when a series moves forward in time to a new value: the new observation is
/// newer than the stored latest one and its value differs. A VIN's first observation of a series
/// sets the baseline and emits nothing; a missing section or a property failure writes no sample,
/// so it is never a change; a unit change is no change, because values are compared in canonical
/// units.
///
/// The transitions of text properties (doors, locks, trunk, charging, plug, ignition) are data:
/// ``EventRulesConfiguration/transitions``, by default ``TransitionRule/standard``. The rules
/// with memory are code: `battery_low` / `fuel_low` (a threshold with hysteresis),
/// `vehicle_moved` (a distance from the last anchor), `geofence_entered` / `_exited`, and the
/// vehicle's lifecycle: `vehicle_silent` / `vehicle_reporting`, `privacy_mode_entered` / `_left`
/// and `clearance_changed`, decided here from the facts the store hands over inside the write's
/// transaction. `docs/events.md` lists every event users see.
public struct EventRules: ChangeDetecting {
    /// `charging.status` values that mean energy is flowing into the battery.
    public static let chargingStatuses: Set<String> = TransitionRule.chargingStatuses

    public let configuration: EventRulesConfiguration
    /// ``EventRulesConfiguration/transitions`` by property, in their configured order.
    private let transitionsByProperty: [String: [TransitionRule]]

    public init(configuration: EventRulesConfiguration = .init()) {
        self.configuration = configuration
        transitionsByProperty = Dictionary(grouping: configuration.transitions, by: \.property)
    }

    /// These rules without those that remember (thresholds with hysteresis, `vehicle_moved`) or
    /// that follow the vehicle's lifecycle (silence, privacy mode, clearance): what `reprocess`
    /// runs over archived responses, whose rule state at the time is not archived. Transitions and
    /// geofences, which depend only on the response before, stay.
    public var replaying: EventRules {
        var replay = configuration
        replay.batteryLow = nil
        replay.fuelLow = nil
        replay.movedDistanceKm = nil
        replay.silentAfter = nil
        replay.disabled.formUnion([
            .vehicleReporting, .vehicleSilent, .privacyModeEntered, .privacyModeLeft, .clearanceChanged,
        ])
        return EventRules(configuration: replay)
    }

    public var silentAfter: Duration? {
        configuration.disabled.contains(.vehicleSilent) ? nil : configuration.silentAfter
    }

    public func events(
        previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp,
        state: inout RuleState
    ) -> [Event] {
        var events: [Event] = []
        func emit(_ type: EventType, _ sample: Sample, instance: String? = nil, from old: String?, to new: String) {
            guard !configuration.disabled.contains(type) else { return }
            events.append(
                Event(
                    vin: sample.vin, type: type, instance: instance ?? sample.instance, occurredAt: sample.observedAt,
                    detectedAt: detectedAt, previousValue: old, newValue: new))
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
                if let threshold = configuration.batteryLow {
                    hysteresis(
                        .batteryLow, .batteryLow(instance: sample.instance), threshold, sample, old, &state, emit)
                }
            case "diagnostics.fuel_level":
                if let threshold = configuration.fuelLow {
                    hysteresis(.fuelLow, .fuelLow(instance: sample.instance), threshold, sample, old, &state, emit)
                }
            default:
                guard let old, old.value != sample.value, case .text(let new) = sample.value,
                    let rules = transitionsByProperty[sample.property]
                else { continue }
                if let rule = rules.first(where: { $0.matches(from: old.value.text, to: new) }) {
                    emit(rule.event, sample, from: old.value.description, to: new)
                }
            }
        }
        positionEvents(previous: previous, observed: observed, state: &state, emit)
        // A silent vehicle that reports again.
        if state[.silent] != nil,
            let newest = fresh.lazy.map({ observed[$0] }).max(by: { $0.observedAt < $1.observedAt })
        {
            state[.silent] = nil
            emit(.vehicleReporting, newest, instance: "", from: "silent", to: "reporting")
        }
        return events
    }

    /// Whether a response should be recorded as saying privacy mode is on (`true`) or off
    /// (`false`), or tells nothing about it (`nil`): on when the answer itself says so (the API's
    /// privacy-mode refusal) or a property failed with `privacy_mode_active`; off when data came. `nil`
    /// too when the event of that change is disabled, so its state is left as it is.
    public func privacyMode(
        answerSaysPrivacy: Bool, failureReasons: [PropertyFailure.Reason],
        hasSamples: Bool
    ) -> Bool? {
        let privacy = answerSaysPrivacy || failureReasons.contains(.privacyModeActive)
        guard privacy || hasSamples else { return nil }
        guard !configuration.disabled.contains(privacy ? .privacyModeEntered : .privacyModeLeft) else { return nil }
        return privacy
    }

    public func privacyEvents(vin: VIN, privacyMode: Bool, at time: Timestamp, state: inout RuleState) -> [Event] {
        let wasOn = state[.privacy] != nil
        guard wasOn != privacyMode else { return [] }
        state[.privacy] = privacyMode ? "on" : nil
        let type: EventType = privacyMode ? .privacyModeEntered : .privacyModeLeft
        guard !configuration.disabled.contains(type) else { return [] }
        return [
            Event(
                vin: vin, type: type, instance: "", occurredAt: time, detectedAt: time,
                previousValue: privacyMode ? "off" : "on", newValue: privacyMode ? "on" : "off")
        ]
    }

    /// `vehicle_silent` once the newest observation is ``silentAfter`` old; `occurred_at` is that
    /// receive time + ``silentAfter``. Fires once, until the vehicle reports again.
    public func silenceEvents(vin: VIN, lastReceivedAt: Timestamp, now: Timestamp, state: inout RuleState) -> [Event] {
        guard let after = silentAfter, state[.silent] == nil, lastReceivedAt.adding(after) <= now else { return [] }
        state[.silent] = String(lastReceivedAt.millisecondsSince1970)
        return [
            Event(
                vin: vin, type: .vehicleSilent, instance: "", occurredAt: lastReceivedAt.adding(after), detectedAt: now,
                previousValue: "reporting", newValue: "silent")
        ]
    }

    /// `clearance_changed` when a vehicle seen before has another clearance status now.
    public func clearanceEvents(
        vin: VIN, from previous: ClearanceStatus?, to current: ClearanceStatus,
        at time: Timestamp
    ) -> [Event] {
        guard let previous, previous != current, !configuration.disabled.contains(.clearanceChanged) else { return [] }
        return [
            Event(
                vin: vin, type: .clearanceChanged, instance: "", occurredAt: time, detectedAt: time,
                previousValue: previous.rawValue, newValue: current.rawValue)
        ]
    }

    /// A level falling below `threshold.below` fires once, then re-arms above `threshold.rearmAbove`.
    /// A first observation already below the threshold sets the rule as fired, without an event.
    private func hysteresis(
        _ type: EventType, _ key: RuleStateKey, _ threshold: EventRulesConfiguration.Threshold, _ sample: Sample,
        _ old: LatestValue?, _ state: inout RuleState, _ emit: (EventType, Sample, String?, String?, String) -> Void
    ) {
        guard let level = sample.value.number else { return }
        if level < threshold.below {
            if state[key] != "fired" {
                state[key] = "fired"
                if let old { emit(type, sample, nil, old.value.description, sample.value.description) }
            }
        } else if level > threshold.rearmAbove {
            state[key] = nil
        }
    }

    /// `vehicle_moved` and geofences, from a poll that observed both coordinates.
    private func positionEvents(
        previous: [SeriesKey: LatestValue], observed: [Sample], state: inout RuleState,
        _ emit: (EventType, Sample, String?, String?, String) -> Void
    ) {
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
            if let anchor = state[.movedAnchor].flatMap(Self.coordinates) {
                if Self.distanceKm(anchor, (lat, lon)) >= distanceKm {
                    emit(.vehicleMoved, latitude, "", state[.movedAnchor], here)
                    state[.movedAnchor] = here
                }
            } else {
                state[.movedAnchor] = here
            }
        }
        guard let previousLat = oldLatitude?.value.number, let previousLon = oldLongitude?.value.number else { return }
        for fence in configuration.geofences {
            let center = (fence.latitude, fence.longitude)
            let wasInside = Self.distanceKm((previousLat, previousLon), center) * 1000 <= fence.radiusMeters
            let isInside = Self.distanceKm((lat, lon), center) * 1000 <= fence.radiusMeters
            if isInside && !wasInside { emit(.geofenceEntered, latitude, fence.name, "outside", "inside") }
            if wasInside && !isInside { emit(.geofenceExited, latitude, fence.name, "inside", "outside") }
        }
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
    /// The transition rules: a change of a text property from one value to another is an event.
    /// The first rule of a property that matches a change decides its event. Defaults to
    /// ``TransitionRule/standard``; not a config key (a new rule is one entry here).
    public var transitions: [TransitionRule] = TransitionRule.standard
    /// `events.charging_session_timeout`: a charging session whose end is never observed is
    /// closed after this long with `end_reason = timeout` (default 24h).
    public var chargingSessionTimeout: Duration = .seconds(24 * 3600)

    public init() {}
}
