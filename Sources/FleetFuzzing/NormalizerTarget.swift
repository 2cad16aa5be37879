import FleetModel
import FleetNormalizer

extension FuzzTarget {
    /// The normalizer on a whole response body: the Auto API shape, the OpenAPI document's
    /// simplified shape and the push shape (`{version, message_id, vin, data}`), told apart by the
    /// normalizer itself.
    ///
    /// Checked for every sample: the requested VIN; a property path of non-empty `[a-z0-9_]` parts;
    /// a finite number; an observation time from 2000 up to a year after the response. Every
    /// failure names its property; a refused body names the byte (not JSON) or the key (`vin`) at fault, or
    /// says it is not an object; no more samples
    /// than the body has bytes.
    public static let normalizer = FuzzTarget(
        name: "normalizer",
        summary: "Normalizer on whole bodies (Auto API, simplified, push): paths, finite values, plausible times",
        grow: [
            Growth("one capability of many properties") { n in
                let properties = (0..<max(1, n / 60)).map {
                    #""p\#($0)":{"data":{"value":\#($0).5,"unit":"kilometers"},"timestamp":"2026-11-30T10:00:00Z"}"#
                }
                return Array("{\"diagnostics\":{\(properties.joined(separator: ","))}}".utf8)
            },
            Growth("one property of many readings") { n in
                let readings = (0..<max(1, n / 64)).map {
                    let time = "2026-11-30T10:\(String(format2: $0 / 60 % 60)):\(String(format2: $0 % 60))Z"
                    return #"{"data":\#($0 % 100),"timestamp":"\#(time)"}"#
                }
                let data = #"{"charging":{"battery_level":["# + readings.joined(separator: ",") + "]}}"
                return Array(
                    #"{"version":2,"message_id":"m","vin":"\#(NormalizerInvariants.vin)","data":\#(data)}"#.utf8)
            },
            Growth("one data object of many fields") { n in
                let fields = (0..<max(1, n / 12)).map { #""f\#($0)":\#($0)"# }.joined(separator: ",")
                return Array((#"{"charging":{"x":{"data":{"# + fields + "}}}}").utf8)
            },
        ]
    ) { input throws(FuzzFailure) in
        let receivedAt = NormalizerInvariants.receivedAt
        // The body's own VIN when it has a valid one (the corpus holds several vehicles'), except for
        // inputs of odd length, which ask for ours: a body for another vehicle must be refused.
        let bodyVIN = (try? JSONParser.parse(input))?["vin"]?.stringValue.flatMap { VIN($0) }
        let requested = input.count % 2 == 0 ? bodyVIN ?? NormalizerInvariants.vin : NormalizerInvariants.vin
        let otherVehicle = bodyVIN.map { $0 != requested } ?? false
        let payload: NormalizedPayload
        do throws(NormalizationError) {
            payload = try Normalizer().normalize(body: input, vin: requested, receivedAt: receivedAt)
        } catch {
            guard error.path != nil || error.reason.contains("at byte ") || error.reason.hasSuffix("not a JSON object")
            else {
                throw FuzzFailure("normalizer", "refusal naming neither a byte nor a key: \(error)")
            }
            if otherVehicle, error.path != "vin" {
                throw FuzzFailure("normalizer", "a body for \(bodyVIN!) refused for another reason: \(error)")
            }
            return
        }
        if otherVehicle {
            throw FuzzFailure("normalizer", "a body for \(bodyVIN!) accepted as \(requested)'s")
        }
        try NormalizerInvariants.check(payload, vin: requested, receivedAt: receivedAt, inputSize: input.count)
    }
}

extension String {
    fileprivate init(format2 value: Int) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}

/// The invariants of a normalized payload (shared by the fuzz target and its tests).
public enum NormalizerInvariants {
    /// The VIN requested for a body that names none.
    public static let vin = VIN("WF0FUZZ0000000001")!
    /// When every fuzzed response arrives: 2026-12-01T00:00:00Z.
    public static let receivedAt = Timestamp(millisecondsSince1970: 1_796_083_200_000)

    /// The earliest and latest observation times a sample may carry for a response received at
    /// `receivedAt`: 2000-01-01T00:00:00Z to 366 days after it.
    public static func plausible(receivedAt: Timestamp) -> ClosedRange<Timestamp> {
        Timestamp(millisecondsSince1970: 946_684_800_000)...receivedAt.adding(milliseconds: 366 * 86_400_000)
    }

    /// - Throws: ``FuzzFailure`` naming the first sample or failure that breaks an invariant.
    public static func check(
        _ payload: NormalizedPayload, vin: VIN, receivedAt: Timestamp, inputSize: Int
    ) throws(FuzzFailure) {
        func fail(_ message: String) -> FuzzFailure { FuzzFailure("normalizer", message) }
        guard payload.samples.count <= inputSize else {
            throw fail("\(payload.samples.count) samples from \(inputSize) bytes")
        }
        let window = plausible(receivedAt: receivedAt)
        for sample in payload.samples {
            guard sample.vin == vin else { throw fail("sample of \(sample.property) for \(sample.vin), not \(vin)") }
            guard isPropertyPath(sample.property) else {
                throw fail("sample with property path \"\(sample.property)\"")
            }
            if case .number(let value) = sample.value, !value.isFinite {
                throw fail("sample \(sample.property) with the value \(value)")
            }
            guard window.contains(sample.observedAt) else {
                throw fail("sample \(sample.property) observed at \(sample.observedAt), outside \(window)")
            }
        }
        // A failure may name what the API sent under an invalid name, quoted (`diagnostics."Odo"`).
        for failure in payload.failures
        where failure.property.isEmpty || failure.property.utf8.count > 1024
            || !FuzzTarget.isOneLine(failure.property)
        {
            throw fail("failure with property path \(quoted(failure.property.utf8)) (\(failure.reason))")
        }
    }

    /// True for `capability.property[.field…]`: at least two non-empty parts of `[a-z0-9_]`.
    static func isPropertyPath(_ path: String) -> Bool {
        let parts = path.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count >= 2
            && parts.allSatisfy { part in
                !part.isEmpty && part.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
            }
    }
}
