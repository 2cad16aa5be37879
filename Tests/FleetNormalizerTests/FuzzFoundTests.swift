import FleetModel
import FleetNormalizer
import Testing

/// Inputs the normalizer fuzz target found (docs/fuzzing.md), with the outcome each must have.
@Suite struct FuzzFoundTests {
    /// A simplified-shape response's top-level `timestamp` of 1999 dated every value in 1999:
    /// it is now checked like a property timestamp, and the values are dated when received.
    @Test(arguments: ["1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "0000-01-01T00:00:00Z"])
    func anImplausibleSimplifiedTimestampIsNotTaken(_ timestamp: String) throws {
        let payload = try normalize(#"{"timestamp":"\#(timestamp)","diagnostics":{"mileage":100,"speed":3}}"#)
        #expect(payload.shape == .simplified)
        #expect(payload.samples.count == 2)
        #expect(payload.samples.allSatisfy { $0.observedAt == receivedAt && $0.timeSource == .received })
    }

    @Test func aPlausibleSimplifiedTimestampIsTaken() throws {
        let payload = try normalize(#"{"timestamp":"2026-11-28T08:00:00Z","diagnostics":{"mileage":100}}"#)
        #expect(payload.samples.first?.observedAt == Timestamp(iso8601: "2026-11-28T08:00:00Z"))
        #expect(payload.samples.first?.timeSource == .response)
    }
}

/// A failure for a name that is not snake_case stored the name as it came: `Zharging` looked like
/// a capability, an empty name gave an empty path, a DEL reached the database. It is now quoted.
@Suite struct InvalidNameFailureTests {
    @Test func anInvalidCapabilityNameIsQuoted() throws {
        let payload = try normalize(#"{"Zharging":{"battery_level":{"data":0.5}},"":{"x":{"data":1}}}"#)
        #expect(Set(payload.failures.map(\.property)) == [#""Zharging""#, #""""#])
        #expect(payload.samples.isEmpty)
    }

    @Test func controlCharactersInANameAreEscaped() throws {
        let payload = try normalize("{\"charging\":{\"battery\u{7F}\":{\"data\":0.5},\"a\\nb\":{\"data\":1}}}")
        #expect(Set(payload.failures.map(\.property)) == [#"charging."battery\u007f""#, #"charging."a\nb""#])
    }
}
