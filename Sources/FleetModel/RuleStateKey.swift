/// A key of a vehicle's event-rule state (the `rule_state` table's `key` column): what a rule
/// remembers between polls, such as whether a low-battery rule has fired.
///
/// The rules (FleetEvents) decide every value; the store only keeps them, inside the poll's
/// transaction, so that the state and the events it caused are written together.
public struct RuleStateKey: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The key as stored.
    public var rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    /// `silent`: set while the vehicle is silent (`vehicle_silent` fired, no new observation
    /// since); its value is the newest observation time (ms since 1970, UTC) when it fell silent.
    public static let silent = RuleStateKey(rawValue: "silent")
    /// `privacy`: set (`on`) while the API says the vehicle is in privacy mode.
    public static let privacy = RuleStateKey(rawValue: "privacy")
    /// `moved_anchor`: where the vehicle was when it last moved, as `latitude,longitude` in degrees.
    public static let movedAnchor = RuleStateKey(rawValue: "moved_anchor")

    /// `battery_low|INSTANCE`: `fired` while `charging.battery_level` stays below its re-arm level.
    public static func batteryLow(instance: String) -> RuleStateKey {
        RuleStateKey(rawValue: "battery_low|" + instance)
    }

    /// `fuel_low|INSTANCE`: `fired` while `diagnostics.fuel_level` stays below its re-arm level.
    public static func fuelLow(instance: String) -> RuleStateKey {
        RuleStateKey(rawValue: "fuel_low|" + instance)
    }
}

/// A vehicle's event-rule state, by key.
public typealias RuleState = [RuleStateKey: String]
