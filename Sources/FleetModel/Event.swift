/// The kinds of change event. The raw value is the `type` column of the `events` table and the
/// `type` field of the JSON line printed for the event.
public enum EventType: String, Sendable, Hashable, CaseIterable, Codable {
    /// A door's lock went from `locked` to `unlocked` (`doors.locks.lock_state`; instance = door location).
    case doorUnlocked = "door_unlocked"
    /// A door's lock went from `unlocked` to `locked` (`doors.locks.lock_state`; instance = door location).
    case doorLocked = "door_locked"
    /// `charging.status` entered a charging state (`charging`, `fast_charging`, `slow_charging`).
    case chargingStarted = "charging_started"
    /// `charging.status` became `charging_complete`.
    case chargingCompleted = "charging_completed"
    /// `doors.locks_state` (the whole vehicle) went from `unlocked` to `locked`.
    case vehicleLocked = "vehicle_locked"
    /// `doors.locks_state` went from `locked` to `unlocked`.
    case vehicleUnlocked = "vehicle_unlocked"
    /// `doors.positions.position` of a door went from `closed` to `open` (instance = location).
    case doorOpened = "door_opened"
    /// `doors.positions.position` of a door went from `open` to `closed` (instance = location).
    case doorClosed = "door_closed"
    /// `trunk.position` went from `closed` to `open`.
    case trunkOpened = "trunk_opened"
    /// `trunk.position` went from `open` to `closed`.
    case trunkClosed = "trunk_closed"
    /// `charging.status` left a charging state for another one that is neither complete nor an error.
    case chargingInterrupted = "charging_interrupted"
    /// `charging.status` became `charging_error`.
    case chargingError = "charging_error"
    /// `charging.plugged_in` went from `disconnected` to plugged in.
    case pluggedIn = "plugged_in"
    /// `charging.plugged_in` became `disconnected`.
    case unplugged
    /// `ignition.state` went to `on` or `start` from `off`, `lock` or `accessory`.
    case ignitionOn = "ignition_on"
    /// `ignition.state` went from `on`/`start` to `off`, `lock` or `accessory`.
    case ignitionOff = "ignition_off"
    /// `charging.battery_level` fell below the threshold (re-armed above a higher level).
    case batteryLow = "battery_low"
    /// `diagnostics.fuel_level` fell below the threshold (re-armed above a higher level).
    case fuelLow = "fuel_low"
    /// The vehicle moved farther than the distance threshold from where it last moved.
    case vehicleMoved = "vehicle_moved"
    /// The vehicle entered a configured geofence (instance = its name).
    case geofenceEntered = "geofence_entered"
    /// The vehicle left a configured geofence (instance = its name).
    case geofenceExited = "geofence_exited"
    /// No new observation of the vehicle for the configured time (`events.vehicle_silent_after`).
    case vehicleSilent = "vehicle_silent"
    /// A silent vehicle sent a new observation.
    case vehicleReporting = "vehicle_reporting"
    /// The API said privacy mode is on (a refusal `Privacy mode is active`, or a property failure
    /// `privacy_mode_active`).
    case privacyModeEntered = "privacy_mode_entered"
    /// Data arrived again after privacy mode.
    case privacyModeLeft = "privacy_mode_left"
    /// The vehicle's fleet clearance status changed (`pending` → `approved`, …); previous and new
    /// values are the statuses. Detected by the daemon's fleet sync.
    case clearanceChanged = "clearance_changed"
    /// A vehicle connected by its owner's consent lost access: its refresh token was refused
    /// (`invalid_grant`); previous value the grant's status (`approved`, `pending`), new value
    /// `consent_required`. Polled again once the owner consents anew (`fleet-telemetry consent url`).
    case consentRequired = "consent_required"
}

/// A change event detected by comparing a new observation with the stored latest one.
public struct Event: Hashable, Sendable {
    /// Row id in the `events` table; `nil` until stored.
    public var id: Int64?
    public var vin: VIN
    public var type: EventType
    /// The instance of the series that changed (a door's location), or `""`.
    public var instance: String
    /// When the change was observed by the vehicle: the new observation's timestamp, UTC.
    public var occurredAt: Timestamp
    /// When the daemon noticed it (the poll's receive time), UTC.
    public var detectedAt: Timestamp
    /// The stored value before the change, as text (`locked`, `not_charging`, …).
    public var previousValue: String?
    /// The new value, as text.
    public var newValue: String

    public init(
        id: Int64? = nil, vin: VIN, type: EventType, instance: String, occurredAt: Timestamp, detectedAt: Timestamp,
        previousValue: String?, newValue: String
    ) {
        self.id = id
        self.vin = vin
        self.type = type
        self.instance = instance
        self.occurredAt = occurredAt
        self.detectedAt = detectedAt
        self.previousValue = previousValue
        self.newValue = newValue
    }

    /// The event as one line of JSON: `{"id":…,"vin":…,"type":…,"instance":…,"occurred_at":…,
    /// "detected_at":…,"previous_value":…,"new_value":…}` with times as RFC 3339 UTC strings.
    public var jsonLine: String {
        var fields: [String] = []
        fields.append("\"id\":\(id.map(String.init) ?? "null")")
        fields.append("\"vin\":\(JSONValue.quoted(vin.rawValue))")
        fields.append("\"type\":\(JSONValue.quoted(type.rawValue))")
        fields.append("\"instance\":\(JSONValue.quoted(instance))")
        fields.append("\"occurred_at\":\(JSONValue.quoted(occurredAt.iso8601))")
        fields.append("\"detected_at\":\(JSONValue.quoted(detectedAt.iso8601))")
        fields.append("\"previous_value\":\(previousValue.map(JSONValue.quoted) ?? "null")")
        fields.append("\"new_value\":\(JSONValue.quoted(newValue))")
        return "{" + fields.joined(separator: ",") + "}"
    }
}
