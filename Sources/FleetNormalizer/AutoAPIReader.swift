import FleetModel
import Foundation

/// Reads the live platform's Auto API envelope into samples.
///
/// Each property is `{"data": …, "timestamp": "…"}`, `{"failure": {"reason", "description"}}`, or
/// (for properties flagged `multiple` in the Auto API) an array of those. `data` is a number, a
/// string, a boolean, a measurement `{value, unit}` or an object of such fields, which becomes one
/// sample per field (`vehicle_location.coordinates.latitude`).
struct AutoAPIReader {
    let vin: VIN
    let receivedAt: Timestamp

    mutating func read(_ capabilities: JSONObject, into payload: inout NormalizedPayload) {
        for (capability, value) in capabilities {
            guard Normalizer.isValidName(capability) else {
                payload.failures.append(
                    PropertyFailure(
                        property: Normalizer.failureName(capability), reason: .unreadable,
                        description: "capability name is not snake_case"))
                continue
            }
            guard case .object(let properties) = value else {
                payload.failures.append(
                    PropertyFailure(
                        property: capability, reason: .unreadable, description: "capability is not an object"))
                continue
            }
            for (property, propertyValue) in properties {
                let path = capability + "." + property
                guard Normalizer.isValidName(property) else {
                    payload.failures.append(
                        PropertyFailure(
                            property: capability + "." + Normalizer.failureName(property), reason: .unreadable,
                            description: "property name is not snake_case"))
                    continue
                }
                switch propertyValue {
                case .object(let entry):
                    readEntry(entry, path: path, index: nil, into: &payload)
                case .array(let entries):
                    // In the push shape every property is an array; only `multiple` properties
                    // (or entries that name themselves) have instances.
                    let multiple = Self.isMultiple(path, entries)
                    for (index, entry) in entries.enumerated() {
                        if case .object(let object) = entry {
                            readEntry(
                                object, path: path, index: multiple ? index : nil, keyedOnly: !multiple, into: &payload)
                        } else {
                            payload.failures.append(
                                PropertyFailure(
                                    property: path, reason: .unreadable,
                                    description: "array entry \(index) is not an object"))
                        }
                    }
                default:
                    payload.failures.append(
                        PropertyFailure(
                            property: path, reason: .unreadable,
                            description: "property is not an Auto API property object"))
                }
            }
        }
    }

    private func readEntry(
        _ entry: JSONObject, path: String, index: Int?, keyedOnly: Bool = false, into payload: inout NormalizedPayload
    ) {
        let timestamp = entry["timestamp"]?.stringValue.flatMap { Timestamp(iso8601: $0) }
        if let failure = entry["failure"] {
            payload.failures.append(
                PropertyFailure(
                    property: path,
                    instance: index.map { String($0) } ?? "",
                    reason: .init(rawValue: String((failure["reason"]?.stringValue ?? "unknown").prefix(64))),
                    description: failure["description"]?.stringValue.map { String($0.prefix(500)) },
                    observedAt: timestamp
                ))
            return
        }
        guard let data = entry["data"] else { return }
        if let raw = entry["timestamp"], timestamp == nil {
            let text = raw.stringValue ?? raw.serialized
            payload.failures.append(
                PropertyFailure(
                    property: path, reason: .invalidValue, description: "unreadable timestamp \"\(text.prefix(60))\""))
            return
        }
        if let timestamp, !Self.isPlausible(timestamp, receivedAt: receivedAt) {
            // A clock far off would pin `latest` to a value no newer reading could replace.
            payload.failures.append(
                PropertyFailure(
                    property: path, reason: .invalidValue,
                    description:
                        "implausible timestamp \(timestamp.iso8601): before 2000 or more than a year after the response"
                ))
            return
        }
        if data == .null {
            payload.failures.append(
                PropertyFailure(
                    property: path, reason: .invalidValue, description: "data is null", observedAt: timestamp))
            return
        }
        let observedAt = timestamp ?? receivedAt
        let source: ObservationTimeSource = timestamp == nil ? .received : .property
        var instance = ""
        var keyField: String?
        if let index {
            (instance, keyField) = Self.instance(of: data, index: index)
        }
        let emitter = SampleEmitter(vin: vin, instance: instance, observedAt: observedAt, timeSource: source)
        emitter.emit(data, path: path, skipping: keyField, into: &payload)
    }

    /// The earliest observation time accepted: 2000-01-01T00:00:00Z.
    static let earliestPlausible = Timestamp(millisecondsSince1970: 946_684_800_000)

    /// A property timestamp is plausible from 2000 up to a year after the response arrived (the
    /// emulator's simulated time runs ahead of the wall clock, by a day per minute in the demo).
    static func isPlausible(_ timestamp: Timestamp, receivedAt: Timestamp) -> Bool {
        timestamp >= earliestPlausible
            && timestamp <= receivedAt.adding(milliseconds: 366 * Timestamp.millisecondsPerDay)
    }

    /// Whether an array holds the instances of a `multiple` property (known as such, or several
    /// entries observed at one time) rather than readings of one series over time (the push shape).
    static func isMultiple(_ path: String, _ entries: [JSONValue]) -> Bool {
        if multipleProperties.contains(path) { return true }
        guard entries.count > 1 else { return false }
        let stamps = Set(entries.compactMap { $0["timestamp"]?.stringValue })
        return stamps.count <= 1
    }

    /// Auto API properties flagged `multiple`: arrays of entries told apart by an instance.
    static let multipleProperties: Set<String> = [
        "doors.inside_locks", "doors.locks", "doors.positions",
        "charging.departure_times", "charging.reduction_times", "charging.timers",
        "diagnostics.check_control_messages", "diagnostics.tire_pressures", "diagnostics.tire_temperatures",
        "diagnostics.wheel_rpms", "diagnostics.trouble_codes", "diagnostics.tire_pressure_statuses",
        "diagnostics.oem_trouble_code_values", "diagnostics.confirmed_trouble_codes",
        "diagnostics.diesel_exhaust_filter_status", "diagnostics.tire_pressures_targets",
        "diagnostics.tire_pressures_differences",
        "climate.hvac_weekday_starting_times", "dashboard_lights.dashboard_lights", "dashboard_lights.bulb_failures",
        "dashboard_lights.dynamic_warnings", "usage.trip_meters", "usage.acceleration_durations",
        "windows.open_percentages", "windows.positions", "lights.fog_lights", "lights.reading_lamps",
        "lights.interior_lights",
        "seats.persons_detected", "seats.seatbelts_state", "trunk.lock", "parking_brake.status",
    ]

    /// The instance of an array entry: its `location`, else `name`, else `id`, else the index;
    /// and the field that supplied it (not stored again as a sample).
    static func instance(of data: JSONValue, index: Int) -> (String, String?) {
        if case .object(let fields) = data {
            for key in ["location", "name", "id"] {
                switch fields[key] {
                case .string(let s)?: return (s, key)
                case .number(let n)?: return (SampleValue.number(n).description, key)
                default: continue
                }
            }
        }
        return (String(index), nil)
    }
}

/// Writes samples for one value, descending into structured values.
struct SampleEmitter {
    let vin: VIN
    let instance: String
    let observedAt: Timestamp
    let timeSource: ObservationTimeSource

    func emit(_ value: JSONValue, path: String, skipping keyField: String? = nil, into payload: inout NormalizedPayload)
    {
        switch value {
        case .null:
            return
        case .bool(let b):
            if UnitConversion.percentageProperties.contains(path) || Self.coordinateRange(path) != nil {
                fail(path, .invalidValue, "not a number: \(b)", into: &payload)
            } else {
                append(.text(b ? "true" : "false"), unit: nil, path: path, into: &payload)
            }
        case .string(let s):
            if let range = Self.coordinateRange(path) {
                switch Self.number(from: value) {
                case .number(let n): appendCoordinate(n, range: range, path: path, into: &payload)
                case .invalid(let raw), .notNumeric(let raw):
                    fail(path, .invalidValue, "not a number: \"\(raw)\"", into: &payload)
                }
            } else if UnitConversion.percentageProperties.contains(path) {
                // A number sent as text where a number is expected: parse it when unambiguous.
                switch Self.number(from: value) {
                case .number(let n): appendPercentage(n, path: path, into: &payload)
                case .invalid(let raw), .notNumeric(let raw):
                    fail(path, .invalidValue, "not a number: \"\(raw)\"", into: &payload)
                }
            } else if Self.isOutOfRangeNumber(s) {
                fail(path, .invalidValue, "number out of range: \(s.prefix(60))", into: &payload)
            } else {
                append(.text(s), unit: nil, path: path, into: &payload)
            }
        case .number(let n):
            if let range = Self.coordinateRange(path) {
                appendCoordinate(n, range: range, path: path, into: &payload)
            } else if UnitConversion.percentageProperties.contains(path) {
                appendPercentage(n, path: path, into: &payload)
            } else {
                append(.number(n), unit: nil, path: path, into: &payload)
            }
        case .object(let fields):
            if let valueField = fields["value"], let unitField = fields["unit"] {
                guard let rawUnit = unitField.stringValue else {
                    fail(
                        path, .invalidValue, "the unit is not text: \(unitField.serialized.prefix(40))", into: &payload)
                    return
                }
                // Units compare without case or surrounding spaces; the source keeps what was sent.
                let unit = Self.comparableUnit(rawUnit)
                for (field, extra) in fields where field != "value" && field != "unit" && Normalizer.isValidName(field)
                {
                    emit(extra, path: path + "." + field, into: &payload)
                }
                switch Self.number(from: valueField) {
                case .number(let number):
                    do {
                        let (converted, canonicalUnit) = try UnitConversion.convert(number, unit: unit)
                        append(
                            .number(converted), unit: canonicalUnit,
                            sourceUnit: canonicalUnit == rawUnit ? nil : String(rawUnit.prefix(64)), path: path,
                            into: &payload)
                    } catch {
                        fail(path, .invalidValue, error.reason, into: &payload)
                    }
                case .invalid(let raw), .notNumeric(let raw):
                    fail(path, .invalidValue, "not a number: \"\(raw.prefix(60))\" \(unit.prefix(40))", into: &payload)
                }
                return
            }
            for (field, fieldValue) in fields where field != keyField {
                guard Normalizer.isValidName(field) else {
                    payload.failures.append(
                        PropertyFailure(
                            property: path + "." + Normalizer.failureName(field), reason: .unreadable,
                            description: "field name is not snake_case"))
                    continue
                }
                emit(fieldValue, path: path + "." + field, into: &payload)
            }
        case .array(let items):
            // Nested arrays are rare (schedules, weekday lists); keep them whole as JSON text.
            append(.text(JSONValue.array(items).serialized), unit: nil, path: path, into: &payload)
        }
    }

    /// `unit` without surrounding spaces, in lower case; the common case (already plain lower-case
    /// ASCII) costs no copy.
    static func comparableUnit(_ unit: String) -> String {
        if unit.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || $0 == 95 }) { return unit }
        return unit.trimmingCharacters(in: .whitespaces).lowercased()
    }

    private func append(
        _ value: SampleValue, unit: String?, sourceUnit: String? = nil, path: String,
        into payload: inout NormalizedPayload
    ) {
        if case .number(let n) = value, !n.isFinite {
            fail(path, .invalidValue, "not a finite number", into: &payload)
            return
        }
        payload.samples.append(
            Sample(
                vin: vin, property: path, instance: instance, value: value, unit: unit, observedAt: observedAt,
                timeSource: timeSource, sourceUnit: sourceUnit))
    }

    /// The values a `vehicle_location` coordinate can take, in degrees, or `nil` for any other
    /// property: a coordinate out of range (or not a number) would move the vehicle across the map
    /// and fire `vehicle_moved`. Compared, not hashed: it runs for every value of every response.
    static func coordinateRange(_ path: String) -> ClosedRange<Double>? {
        switch path {
        case "vehicle_location.coordinates.latitude": return -90...90
        case "vehicle_location.coordinates.longitude": return -180...180
        default: return nil
        }
    }

    /// A latitude or longitude in degrees; outside `range` it is a failure.
    private func appendCoordinate(
        _ degrees: Double, range: ClosedRange<Double>, path: String, into payload: inout NormalizedPayload
    ) {
        guard range.contains(degrees) else {
            fail(
                path, .invalidValue,
                "\(path.hasSuffix("latitude") ? "latitude" : "longitude") \(SampleValue.number(degrees)) is outside \(SampleValue.number(range.lowerBound))…\(SampleValue.number(range.upperBound))",
                into: &payload)
            return
        }
        append(.number(degrees), unit: nil, path: path, into: &payload)
    }

    /// A 0.0–1.0 fraction as percent; outside 0…1 (0…2 for `state_of_health`) it is a failure.
    private func appendPercentage(_ fraction: Double, path: String, into payload: inout NormalizedPayload) {
        let upper = path.hasSuffix("state_of_health") ? 2.0 : 1.0
        guard fraction >= 0, fraction <= upper else {
            fail(
                path, .invalidValue,
                "percentage fraction \(SampleValue.number(fraction)) is outside 0…\(SampleValue.number(upper))",
                into: &payload)
            return
        }
        append(
            .number(UnitConversion.percent(fromFraction: fraction)), unit: "percent", sourceUnit: "fraction",
            path: path, into: &payload)
    }

    private func fail(
        _ path: String, _ reason: PropertyFailure.Reason, _ description: String, into payload: inout NormalizedPayload
    ) {
        payload.failures.append(
            PropertyFailure(
                property: path, instance: instance, reason: reason, description: description,
                observedAt: timeSource == .property ? observedAt : nil))
    }

    /// How a JSON value reads as a number.
    enum NumberReading {
        case number(Double)
        /// Looks like a number but is not a finite one (`"NaN"`, `1e999`).
        case invalid(String)
        /// Not a number at all; the text, for messages.
        case notNumeric(String)
    }

    /// A JSON number, or a string holding exactly a decimal number (`"12.3"`); `NaN`, infinities
    /// and out-of-range literals are invalid.
    static func number(from value: JSONValue) -> NumberReading {
        switch value {
        case .number(let n):
            return n.isFinite ? .number(n) : .invalid(String(n))
        case .string(let s):
            let trimmed = s.trimmingCharacters(in: .whitespaces)
            let lowered = trimmed.lowercased()
            if ["nan", "inf", "-inf", "infinity", "-infinity", "+inf"].contains(lowered) {
                return .invalid(String(s.prefix(60)))
            }
            guard !trimmed.isEmpty,
                trimmed.utf8.allSatisfy({
                    ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 43 || $0 == 101 || $0 == 69
                }),
                let n = Double(trimmed)
            else { return .notNumeric(String(s.prefix(60))) }
            return n.isFinite ? .number(n) : .invalid(String(s.prefix(60)))
        case .null:
            return .notNumeric("null")
        default:
            return .notNumeric(String(value.serialized.prefix(60)))
        }
    }

    /// True for the literal of a JSON number too large for `Double` (kept as text by the parser).
    static func isOutOfRangeNumber(_ text: String) -> Bool {
        guard let first = text.utf8.first, first == 45 || (first >= 48 && first <= 57),
            text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 43 || $0 == 101 || $0 == 69 }
            )
        else { return false }
        return Double(text).map { !$0.isFinite } ?? false
    }
}
