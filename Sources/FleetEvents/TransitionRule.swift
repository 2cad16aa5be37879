import FleetModel

/// One transition rule: a change of a text property from a matching value to a matching value
/// is an event of one type. The standard rules are ``standard``; a new rule is one more entry.
///
/// Values are compared as the normalizer writes them (Auto API enum values in snake_case). A
/// rule sees only real changes: the new observation is newer than the stored one and its value
/// differs.
public struct TransitionRule: Sendable, Hashable {
    /// Which values a side of the transition accepts.
    public enum Values: Sendable, Hashable {
        /// Any value.
        case any
        /// One of these values.
        case oneOf(Set<String>)
        /// Any value but these (also a previous value that was not text).
        case noneOf(Set<String>)

        func matches(_ value: String?) -> Bool {
            switch self {
            case .any: return true
            case .oneOf(let values): return value.map(values.contains) ?? false
            case .noneOf(let values): return !(value.map(values.contains) ?? false)
            }
        }
    }

    /// The property path, e.g. `doors.locks.lock_state` (the event's instance is the sample's).
    public var property: String
    /// The previous value.
    public var from: Values
    /// The new value.
    public var to: Values
    /// The event a matching change is.
    public var event: EventType

    public init(property: String, from: Values, to: Values, event: EventType) {
        self.property = property
        self.from = from
        self.to = to
        self.event = event
    }

    /// Whether a change from `old` (`nil` when the previous value was not text) to `new` is this rule's.
    public func matches(from old: String?, to new: String) -> Bool {
        from.matches(old) && to.matches(new)
    }

    /// `charging.status` values that mean energy is flowing into the battery.
    public static let chargingStatuses: Set<String> = ["charging", "fast_charging", "slow_charging"]
    static let ignitionOn: Set<String> = ["on", "start"]
    static let ignitionOff: Set<String> = ["off", "lock", "accessory"]

    /// The rules `docs/events.md` lists, in the order they are tried for each property.
    public static let standard: [TransitionRule] = [
        .init(
            property: "doors.locks.lock_state", from: .oneOf(["locked"]), to: .oneOf(["unlocked"]), event: .doorUnlocked
        ),
        .init(
            property: "doors.locks.lock_state", from: .oneOf(["unlocked"]), to: .oneOf(["locked"]), event: .doorLocked),
        .init(
            property: "doors.locks_state", from: .oneOf(["locked"]), to: .oneOf(["unlocked"]), event: .vehicleUnlocked),
        .init(property: "doors.locks_state", from: .oneOf(["unlocked"]), to: .oneOf(["locked"]), event: .vehicleLocked),
        .init(property: "doors.positions.position", from: .oneOf(["closed"]), to: .oneOf(["open"]), event: .doorOpened),
        .init(property: "doors.positions.position", from: .oneOf(["open"]), to: .oneOf(["closed"]), event: .doorClosed),
        .init(property: "trunk.position", from: .oneOf(["closed"]), to: .oneOf(["open"]), event: .trunkOpened),
        .init(property: "trunk.position", from: .oneOf(["open"]), to: .oneOf(["closed"]), event: .trunkClosed),
        .init(
            property: "charging.status", from: .noneOf(chargingStatuses), to: .oneOf(chargingStatuses),
            event: .chargingStarted),
        .init(property: "charging.status", from: .any, to: .oneOf(["charging_complete"]), event: .chargingCompleted),
        .init(property: "charging.status", from: .any, to: .oneOf(["charging_error"]), event: .chargingError),
        .init(
            property: "charging.status", from: .oneOf(chargingStatuses), to: .noneOf(chargingStatuses),
            event: .chargingInterrupted),
        .init(
            property: "charging.plugged_in", from: .oneOf(["disconnected"]), to: .noneOf(["disconnected"]),
            event: .pluggedIn),
        .init(
            property: "charging.plugged_in", from: .noneOf(["disconnected"]), to: .oneOf(["disconnected"]),
            event: .unplugged),
        .init(property: "ignition.state", from: .oneOf(ignitionOff), to: .oneOf(ignitionOn), event: .ignitionOn),
        .init(property: "ignition.state", from: .oneOf(ignitionOn), to: .oneOf(ignitionOff), event: .ignitionOff),
    ]
}
