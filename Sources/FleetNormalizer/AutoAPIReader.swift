import FleetModel

/// Reads the live platform's Auto API envelope into samples.
///
/// Each property is `{"data": …, "timestamp": "…"}`, `{"failure": {"reason", "description"}}`, or
/// (for properties flagged `multiple` in the Auto API) an array of those. `data` is a number, a
/// string, a boolean, a measurement `{value, unit}` or an object of such fields, which becomes one
/// sample per field (`vehicle_location.coordinates.latitude`).
struct AutoAPIReader {
    let vin: VIN
    let receivedAt: Timestamp

    mutating func read(_ capabilities: [String: JSONValue], into payload: inout NormalizedPayload) {
        for (capability, value) in capabilities {
            guard Normalizer.isValidName(capability) else {
                payload.failures.append(PropertyFailure(property: String(capability.prefix(64)), reason: "unreadable", description: "capability name is not snake_case"))
                continue
            }
            guard case .object(let properties) = value else {
                payload.failures.append(PropertyFailure(property: capability, reason: "unreadable", description: "capability is not an object"))
                continue
            }
            for (property, propertyValue) in properties {
                let path = capability + "." + property
                guard Normalizer.isValidName(property) else {
                    payload.failures.append(PropertyFailure(property: capability + "." + String(property.prefix(64)), reason: "unreadable", description: "property name is not snake_case"))
                    continue
                }
                switch propertyValue {
                case .object(let entry):
                    readEntry(entry, path: path, index: nil, into: &payload)
                case .array(let entries):
                    for (index, entry) in entries.enumerated() {
                        if case .object(let object) = entry {
                            readEntry(object, path: path, index: index, into: &payload)
                        } else {
                            payload.failures.append(PropertyFailure(property: path, reason: "unreadable", description: "array entry \(index) is not an object"))
                        }
                    }
                default:
                    payload.failures.append(PropertyFailure(property: path, reason: "unreadable", description: "property is not an Auto API property object"))
                }
            }
        }
    }

    private func readEntry(_ entry: [String: JSONValue], path: String, index: Int?, into payload: inout NormalizedPayload) {
        if let failure = entry["failure"] {
            payload.failures.append(PropertyFailure(
                property: path,
                reason: failure["reason"]?.stringValue ?? "unknown",
                description: failure["description"]?.stringValue
            ))
            return
        }
        guard let data = entry["data"], data != .null else { return }
        var observedAt = receivedAt
        var source = ObservationTimeSource.received
        if let text = entry["timestamp"]?.stringValue, let parsed = Timestamp(iso8601: text) {
            observedAt = parsed
            source = .property
        }
        var instance = ""
        var keyField: String?
        if let index {
            (instance, keyField) = Self.instance(of: data, index: index)
        }
        let emitter = SampleEmitter(vin: vin, instance: instance, observedAt: observedAt, timeSource: source)
        emitter.emit(data, path: path, skipping: keyField, into: &payload)
    }

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

    func emit(_ value: JSONValue, path: String, skipping keyField: String? = nil, into payload: inout NormalizedPayload) {
        switch value {
        case .null:
            return
        case .bool(let b):
            append(.text(b ? "true" : "false"), unit: nil, path: path, into: &payload)
        case .string(let s):
            append(.text(s), unit: nil, path: path, into: &payload)
        case .number(let n):
            if UnitConversion.percentageProperties.contains(path) {
                append(.number(UnitConversion.percent(fromFraction: n)), unit: "percent", path: path, into: &payload)
            } else {
                append(.number(n), unit: nil, path: path, into: &payload)
            }
        case .object(let fields):
            if fields.count == 2, let number = fields["value"]?.numberValue, let unit = fields["unit"]?.stringValue {
                let (converted, canonicalUnit) = UnitConversion.canonical(number, unit: unit)
                append(.number(converted), unit: canonicalUnit, path: path, into: &payload)
                return
            }
            for (field, fieldValue) in fields where field != keyField {
                guard Normalizer.isValidName(field) else {
                    payload.failures.append(PropertyFailure(property: path, reason: "unreadable", description: "field name is not snake_case"))
                    continue
                }
                emit(fieldValue, path: path + "." + field, into: &payload)
            }
        case .array(let items):
            // Nested arrays are rare (schedules, weekday lists); keep them whole as JSON text.
            append(.text(Self.jsonText(.array(items))), unit: nil, path: path, into: &payload)
        }
    }

    private func append(_ value: SampleValue, unit: String?, path: String, into payload: inout NormalizedPayload) {
        if case .number(let n) = value, !n.isFinite { return }
        payload.samples.append(Sample(vin: vin, property: path, instance: instance, value: value, unit: unit, observedAt: observedAt, timeSource: timeSource))
    }

    static func jsonText(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return SampleValue.number(n).description
        case .string(let s): return JSONValue.quoted(s)
        case .array(let a): return "[" + a.map(jsonText).joined(separator: ",") + "]"
        case .object(let o): return "{" + o.keys.sorted().map { JSONValue.quoted($0) + ":" + jsonText(o[$0]!) }.joined(separator: ",") + "}"
        }
    }
}
