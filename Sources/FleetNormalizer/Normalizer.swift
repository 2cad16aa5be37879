import FleetModel
import Foundation

/// Turns a vehicle-data response body into canonical samples.
///
/// It reads two shapes of `GET /v1/vehicle-data/autoapi-13/{vin}`:
/// - the live platform's **Auto API** envelope: `{capability: {property: {data, timestamp} |
///   {failure} | [{data, timestamp}, …]}}`, measurements as `{value, unit}`, percentages as
///   0.0–1.0;
/// - the **simplified shape** of the OpenAPI document our user handed over (`doors.locks[].lock`,
///   `mileage`, `charging_state`, integers in km, km/h, °C and percent), mapped onto the same
///   property paths.
///
/// The shape is detected per response. The normalizer is a pure function of its input: it never
/// touches the network, the database or the clock.
public struct Normalizer: Sendable {
    /// The normalizer has no state; one can be shared.
    public init() {}

    /// Parses and normalizes a response body.
    ///
    /// - Parameters:
    ///   - body: The HTTP response body (UTF-8 JSON).
    ///   - vin: The VIN that was requested; every sample carries it.
    ///   - receivedAt: When the response arrived (UTC); the observation time of values that carry
    ///     no timestamp of their own.
    /// - Returns: The samples (in canonical units) and the property-level failures.
    /// - Throws: ``NormalizationError`` when the body is not JSON, not an object, or names another VIN.
    public func normalize(
        body: some Collection<UInt8>, vin: VIN, receivedAt: Timestamp
    ) throws(NormalizationError) -> NormalizedPayload {
        let json: JSONValue
        do {
            json = try JSONParser.parse(body)
        } catch {
            let snippet = String(decoding: body.prefix(60), as: UTF8.self).unicodeScalars
                .map { $0.value < 0x20 || $0.value == 0x7F ? " " : String($0) }.joined()
            throw NormalizationError(
                vin: vin, path: nil,
                reason:
                    "the body is not valid JSON (\(error), \(body.count) bytes: \"\(snippet)\(body.count > 60 ? "…" : "")\")"
            )
        }
        return try normalize(json: json, vin: vin, receivedAt: receivedAt)
    }

    /// Normalizes an already parsed response. See ``normalize(body:vin:receivedAt:)``.
    public func normalize(
        json: JSONValue, vin: VIN, receivedAt: Timestamp
    ) throws(NormalizationError) -> NormalizedPayload {
        guard case .object(let root) = json else {
            throw NormalizationError(vin: vin, path: nil, reason: "the body is not a JSON object")
        }
        if let sent = root["vin"] {
            guard let text = sent.stringValue, let sentVIN = VIN(text) else {
                throw NormalizationError(vin: vin, path: "vin", reason: "the response's vin is not a valid VIN")
            }
            guard sentVIN == vin else {
                throw NormalizationError(
                    vin: vin, path: "vin", reason: "the response is for another vehicle (\(sentVIN))")
            }
        }
        var payload = NormalizedPayload(vin: vin, shape: .autoAPI, requestID: root["request_id"]?.stringValue)
        payload.brand = root["brand"]?.stringValue.flatMap { Brand.isValid($0) ? Brand.canonical($0) : nil }
        var capabilities = root.filter { !Self.envelopeKeys.contains($0.key) }
        // A push message (MQTT v1/v2, Kinesis): {version, message_id, vin, data: {capability: …}}.
        if case .object(let data)? = root["data"], root["message_id"] != nil || root["version"] != nil {
            payload.messageID = root["message_id"].flatMap {
                $0.stringValue ?? $0.numberValue.map { SampleValue.number($0).description }
            }
            capabilities = data
        }
        capabilities = Self.resolvingDeprecatedAliases(capabilities)
        if Self.looksSimplified(capabilities) {
            payload.shape = .simplified
            var reader = SimplifiedShapeReader(vin: vin, receivedAt: receivedAt, root: root)
            reader.read(capabilities, into: &payload)
        } else {
            var reader = AutoAPIReader(vin: vin, receivedAt: receivedAt)
            reader.read(capabilities, into: &payload)
        }
        payload.samples.sort { ($0.property, $0.instance) < ($1.property, $1.instance) }
        return payload
    }

    /// Top-level keys that are part of the envelope, not capabilities.
    static let envelopeKeys: Set<String> = [
        "request_id", "vin", "brand", "timestamp", "message_id", "version", "application_id", "data",
    ]

    /// Deprecated Auto API property names and their current names (per capability).
    static let deprecatedAliases: [String: [String: String]] = [
        "diagnostics": [
            "mileage": "odometer", "mileage_meters": "odometer",
            "engine_total_operating_hours": "engine_total_operating_time",
        ],
        "charging": [
            "charging_rate_kw": "charging_rate", "battery_current_ac": "battery_current",
            "battery_current_dc": "battery_current",
            "charger_voltage_ac": "charger_voltage", "charger_voltage_dc": "charger_voltage",
            "battery_tempretature_extremes": "battery_temperature_extremes",
        ],
        "ignition": ["status": "state", "accessories_status": "state"],
    ]

    /// ``deprecatedAliases`` in a fixed order, so that renaming is deterministic.
    private static let sortedAliases: [(String, [(String, String)])] = deprecatedAliases.sorted { $0.key < $1.key }
        .map { ($0.key, $0.value.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }) }

    /// Renames deprecated properties to their current names; when both arrive, the current one wins.
    static func resolvingDeprecatedAliases(_ capabilities: JSONObject) -> JSONObject {
        var result = capabilities
        for (capability, aliases) in sortedAliases {
            guard case .object(var properties)? = result[capability] else { continue }
            var changed = false
            for (old, new) in aliases {
                guard let value = properties[old] else { continue }
                properties[old] = nil
                changed = true
                if properties[new] == nil { properties[new] = value }
            }
            if changed { result[capability] = .object(properties) }
        }
        return result
    }

    /// True when no property has the Auto API form (`{data|failure|timestamp}` or an array of
    /// them) but some property exists: the OpenAPI document's simplified shape.
    static func looksSimplified(_ capabilities: JSONObject) -> Bool {
        var sawProperty = false
        for (_, capability) in capabilities {
            guard case .object(let properties) = capability else { continue }
            for (_, property) in properties {
                sawProperty = true
                if isAutoAPIProperty(property) { return false }
            }
        }
        return sawProperty
    }

    static func isAutoAPIProperty(_ value: JSONValue) -> Bool {
        switch value {
        case .object(let o):
            return !o.isEmpty && o.keys.allSatisfy { $0 == "data" || $0 == "timestamp" || $0 == "failure" }
        case .array(let items):
            return !items.isEmpty
                && items.allSatisfy { item in
                    if case .object = item { return isAutoAPIProperty(item) }
                    return false
                }
        default:
            return false
        }
    }

    /// How a failure names a capability, property or field whose name is not ``isValidName(_:)``:
    /// its first 64 characters as a JSON string literal (`"Charging"`, `""`, `"a\u0007"`), so that
    /// the name the API sent is shown exactly, on one line, and cannot be taken for a valid one.
    /// Control characters (C0, DEL, C1, U+2028, U+2029) are written as `\uXXXX`.
    static func failureName(_ name: String) -> String {
        guard !isValidName(name) else { return name }
        var out = ""
        for scalar in JSONValue.quoted(String(name.prefix(64))).unicodeScalars {
            let v = scalar.value
            if (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 {
                let hex = String(v, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Capability and property names become parts of a property path: only `[a-z0-9_]` is kept.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }
}

/// The result of normalizing one response.
public struct NormalizedPayload: Sendable, Hashable {
    /// Which shape the response had.
    public enum Shape: String, Sendable, Hashable {
        /// The live platform's Auto API envelope.
        case autoAPI = "auto_api"
        /// The OpenAPI document's simplified shape.
        case simplified
    }

    public var vin: VIN
    public var shape: Shape
    /// The API's `request_id`, when the response carried one.
    public var requestID: String?
    /// The push message's `message_id` (MQTT/Kinesis shape), when the body was one.
    public var messageID: String?
    /// The vehicle-data `brand`, canonical (`mercedes_benz`), when the response carried a valid one.
    public var brand: String?
    /// Samples sorted by property path, then instance; values in canonical units.
    public var samples: [Sample] = []
    /// Properties the API reported as failed (`{"failure": {reason, description}}`) or that could
    /// not be read. A failure is never a change: it writes no sample and emits no event.
    public var failures: [PropertyFailure] = []

    public init(
        vin: VIN, shape: Shape, requestID: String? = nil, samples: [Sample] = [], failures: [PropertyFailure] = []
    ) {
        self.vin = vin
        self.shape = shape
        self.requestID = requestID
        self.samples = samples
        self.failures = failures
    }
}

/// A response that could not be normalized at all.
public struct NormalizationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var vin: VIN
    /// The JSON key at fault, when one is.
    public var path: String?
    public var reason: String

    public var description: String {
        "malformed vehicle data for \(vin)\(path.map { " at \"\($0)\"" } ?? ""): \(reason)"
    }
}
