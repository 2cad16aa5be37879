import FleetModel

/// The change-event rules: which transitions of which properties are events.
///
/// A rule fires only when a series moves forward in time to a new value: the new observation is
/// newer than the stored latest one and its value differs. A VIN's first observation of a series
/// sets the baseline and emits nothing; a missing section or a property failure writes no sample,
/// so it is never a change.
///
/// Rules:
/// - `door_unlocked` / `door_locked`: `doors.locks.lock_state` from `locked` to `unlocked` and
///   back; the instance is the door's location (`front_left`, …).
/// - `charging_started`: `charging.status` from a non-charging value to `charging`,
///   `fast_charging` or `slow_charging`.
/// - `charging_completed`: `charging.status` to `charging_complete`.
public struct EventRules: ChangeDetecting {
    /// `charging.status` values that mean energy is flowing into the battery.
    public static let chargingStatuses: Set<String> = ["charging", "fast_charging", "slow_charging"]

    public init() {}

    public func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp) -> [Event] {
        var events: [Event] = []
        for sample in observed {
            guard let old = previous[sample.key], sample.observedAt > old.observedAt, old.value != sample.value,
                  case .text(let new) = sample.value
            else { continue }
            let before = old.value.text
            guard let type = Self.eventType(property: sample.property, from: before, to: new) else { continue }
            events.append(Event(
                vin: sample.vin, type: type, instance: sample.instance,
                occurredAt: sample.observedAt, detectedAt: detectedAt,
                previousValue: old.value.description, newValue: new))
        }
        return events
    }

    /// The event for a change of `property` from `old` to `new`, if the rules name one.
    static func eventType(property: String, from old: String?, to new: String) -> EventType? {
        switch property {
        case "doors.locks.lock_state":
            if old == "locked" && new == "unlocked" { return .doorUnlocked }
            if old == "unlocked" && new == "locked" { return .doorLocked }
            return nil
        case "charging.status":
            if chargingStatuses.contains(new) && !chargingStatuses.contains(old ?? "") { return .chargingStarted }
            if new == "charging_complete" { return .chargingCompleted }
            return nil
        default:
            return nil
        }
    }
}
