import FleetModel

/// Reads the OpenAPI document's simplified vehicle-data shape onto the Auto API property paths.
///
/// Mapping (the document's integers mean km, km/h, °C and percent 0–100):
/// - `doors.locks[].lock` → `doors.locks.lock_state`, `doors.locks[].position` →
///   `doors.positions.position` (instance = `location`);
/// - `vehicle_location.latitude|longitude` → `vehicle_location.coordinates.latitude|longitude`;
/// - `diagnostics.mileage` → `diagnostics.odometer` (kilometers);
/// - `charging.charging_state` → `charging.status` and `charging.plugged_in`
///   (`disconnected` → `not_charging` + `disconnected`; `plugged_in` → `not_charging` +
///   `plugged_in`; `charging` → `charging` + `plugged_in`; `completed` → `charging_complete` +
///   `plugged_in`).
///
/// Any other field is kept as `<capability>.<field>`. The shape has no per-property timestamps:
/// the observation time is the response's top-level `timestamp` (when plausible: from 2000 up to a
/// year after the response), else the receive time.
struct SimplifiedShapeReader {
    let vin: VIN
    let observedAt: Timestamp
    let timeSource: ObservationTimeSource

    init(vin: VIN, receivedAt: Timestamp, root: JSONObject) {
        self.vin = vin
        // An implausible one (before 2000, or over a year after the response, as the Auto API's
        // property timestamps are checked) is not taken: the values are dated when received.
        if let text = root["timestamp"]?.stringValue, let parsed = Timestamp(iso8601: text),
            AutoAPIReader.isPlausible(parsed, receivedAt: receivedAt)
        {
            observedAt = parsed
            timeSource = .response
        } else {
            observedAt = receivedAt
            timeSource = .received
        }
    }

    /// Canonical unit of each numeric field of the simplified shape, by its mapped path.
    static let units: [String: String] = [
        "charging.battery_level": "percent",
        "charging.charge_limit": "percent",
        "charging.estimated_range": "kilometers",
        "diagnostics.odometer": "kilometers",
        "diagnostics.speed": "kilometers_per_hour",
        "diagnostics.fuel_level": "percent",
        "diagnostics.engine_rpm": "revolutions_per_minute",
        "diagnostics.engine_oil_temperature": "celsius",
    ]

    static let renamed: [String: String] = [
        "diagnostics.mileage": "diagnostics.odometer",
        "vehicle_location.latitude": "vehicle_location.coordinates.latitude",
        "vehicle_location.longitude": "vehicle_location.coordinates.longitude",
    ]

    /// `charging_state` → (`charging.status`, `charging.plugged_in`).
    static let chargingStates: [String: (String, String)] = [
        "disconnected": ("not_charging", "disconnected"),
        "plugged_in": ("not_charging", "plugged_in"),
        "charging": ("charging", "plugged_in"),
        "completed": ("charging_complete", "plugged_in"),
    ]

    mutating func read(_ capabilities: JSONObject, into payload: inout NormalizedPayload) {
        for (capability, value) in capabilities {
            guard Normalizer.isValidName(capability), case .object(let fields) = value else {
                payload.failures.append(
                    PropertyFailure(
                        property: Normalizer.failureName(capability), reason: .unreadable,
                        description: "capability is not an object with a snake_case name"))
                continue
            }
            for (field, fieldValue) in fields {
                guard Normalizer.isValidName(field) else {
                    payload.failures.append(
                        PropertyFailure(
                            property: capability + "." + Normalizer.failureName(field), reason: .unreadable,
                            description: "field name is not snake_case"))
                    continue
                }
                let path = capability + "." + field
                switch path {
                case "doors.locks":
                    readLocks(fieldValue, into: &payload)
                case "charging.charging_state":
                    guard let state = fieldValue.stringValue else {
                        payload.failures.append(
                            PropertyFailure(
                                property: path, reason: .unreadable, description: "charging_state is not a string"))
                        continue
                    }
                    if let (status, pluggedIn) = Self.chargingStates[state] {
                        append("charging.status", .text(status), instance: "", into: &payload)
                        append("charging.plugged_in", .text(pluggedIn), instance: "", into: &payload)
                    } else {
                        append("charging.status", .text(state), instance: "", into: &payload)
                    }
                default:
                    let mapped = Self.renamed[path] ?? path
                    emitter(instance: "").emit(fieldValue, path: mapped, into: &payload, unitFor: Self.units[mapped])
                }
            }
        }
    }

    private func readLocks(_ value: JSONValue, into payload: inout NormalizedPayload) {
        guard case .array(let entries) = value else {
            payload.failures.append(
                PropertyFailure(property: "doors.locks", reason: .unreadable, description: "locks is not an array"))
            return
        }
        for (index, entry) in entries.enumerated() {
            guard case .object(let fields) = entry else {
                payload.failures.append(
                    PropertyFailure(
                        property: "doors.locks", reason: .unreadable,
                        description: "array entry \(index) is not an object"))
                continue
            }
            let (instance, keyField) = AutoAPIReader.instance(of: entry, index: index)
            for (field, fieldValue) in fields where field != keyField {
                switch field {
                case "lock":
                    emitter(instance: instance).emit(
                        fieldValue, path: "doors.locks.lock_state", into: &payload, unitFor: nil)
                case "position":
                    emitter(instance: instance).emit(
                        fieldValue, path: "doors.positions.position", into: &payload, unitFor: nil)
                default:
                    guard Normalizer.isValidName(field) else { continue }
                    emitter(instance: instance).emit(
                        fieldValue, path: "doors.locks." + field, into: &payload, unitFor: nil)
                }
            }
        }
    }

    private func emitter(instance: String) -> SampleEmitter {
        SampleEmitter(vin: vin, instance: instance, observedAt: observedAt, timeSource: timeSource)
    }

    private func append(_ path: String, _ value: SampleValue, instance: String, into payload: inout NormalizedPayload) {
        payload.samples.append(
            Sample(
                vin: vin, property: path, instance: instance, value: value, observedAt: observedAt,
                timeSource: timeSource))
    }
}

extension SampleEmitter {
    /// Emits a value of the simplified shape: numbers carry `unit` as they are (no 0–1 scaling).
    func emit(_ value: JSONValue, path: String, into payload: inout NormalizedPayload, unitFor unit: String?) {
        guard unit != nil else {
            emit(value, path: path, into: &payload)
            return
        }
        switch Self.number(from: value) {
        case .number(let n):
            payload.samples.append(
                Sample(
                    vin: vin, property: path, instance: instance, value: .number(n), unit: unit, observedAt: observedAt,
                    timeSource: timeSource))
        case .invalid(let raw), .notNumeric(let raw):
            payload.failures.append(
                PropertyFailure(
                    property: path, instance: instance, reason: .invalidValue, description: "not a number: \"\(raw)\""))
        }
    }
}
