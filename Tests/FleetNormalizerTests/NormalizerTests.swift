import FleetModel
@testable import FleetNormalizer
import Testing

@Suite struct NormalizerTests {
    let normalizer = Normalizer()

    @Test(arguments: [
        ("vehicle_data_autoapi13_full.json", "1HMFT000000000001", Expected.full, 0),
        ("vehicle_data_autoapi13_minimal.json", "1HMFT000000000002", Expected.minimal, 0),
        ("vehicle_data_autoapi13_with_property_failures.json", "1HMFT000000000003", Expected.withFailures, 4),
    ])
    func autoAPIFixtures(file: String, vin: String, expected: [E], failures: Int) throws {
        let payload = try normalizer.normalize(body: try fixture(file), vin: VIN(vin)!, receivedAt: receivedAt)
        #expect(payload.shape == .autoAPI)
        #expect(payload.samples.map(E.init) == expected)
        #expect(payload.failures.count == failures)
        #expect(payload.samples.allSatisfy { $0.timeSource == .property && $0.vin.rawValue == vin })
    }

    @Test func propertyFailuresAreReportedNotStored() throws {
        let payload = try normalizer.normalize(
            body: try fixture("vehicle_data_autoapi13_with_property_failures.json"), vin: VIN("1HMFT000000000003")!,
            receivedAt: receivedAt)
        let byProperty = Dictionary(uniqueKeysWithValues: payload.failures.map { ($0.property, $0.reason) })
        #expect(
            byProperty == [
                "diagnostics.fuel_level": "oem_error",
                "diagnostics.tire_pressures": "pending",
                "vehicle_location.coordinates": "privacy_mode_active",
                "charging.status": "unauthorised",
            ])
        #expect(
            !payload.samples.contains { $0.property == "charging.status" || $0.property.hasPrefix("vehicle_location") })
    }

    @Test func simplifiedShapeFixture() throws {
        let payload = try normalizer.normalize(
            body: try fixture("vehicle_data_seed_simplified_schema.json"), vin: VIN("1HMFT000000000001")!,
            receivedAt: receivedAt)
        #expect(payload.shape == .simplified)
        #expect(payload.samples.map(E.init) == Expected.simplified)
        #expect(payload.samples.allSatisfy { $0.timeSource == .received })
    }

    /// The seed fixture describes the same car as the full Auto API fixture: every sample it gives
    /// must have the same path, instance, value and unit there.
    @Test func simplifiedShapeGivesTheSamePathsAsTheAutoAPI() throws {
        let vin = VIN("1HMFT000000000001")!
        let simplified = try normalizer.normalize(
            body: try fixture("vehicle_data_seed_simplified_schema.json"), vin: vin, receivedAt: receivedAt)
        let full = try normalizer.normalize(
            body: try fixture("vehicle_data_autoapi13_full.json"), vin: vin, receivedAt: receivedAt)
        let fullByKey = Dictionary(full.samples.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for sample in simplified.samples {
            let match = try #require(
                fullByKey[sample.key], "\(sample.property)[\(sample.instance)] missing from the Auto API fixture")
            #expect(match.value == sample.value, "\(sample.property)[\(sample.instance)]")
            #expect(match.unit == sample.unit, "\(sample.property)[\(sample.instance)]")
        }
    }

    @Test func simplifiedShapeUsesTopLevelTimestamp() throws {
        let body =
            #"{"vin":"1HMFT000000000001","timestamp":"2026-11-28T08:00:00Z","charging":{"charging_state":"completed"},"diagnostics":{"mileage":100}}"#
        let payload = try normalizer.normalize(
            body: Array(body.utf8), vin: VIN("1HMFT000000000001")!, receivedAt: receivedAt)
        #expect(
            payload.samples.map(E.init) == [
                E("charging.plugged_in", "", .text("plugged_in"), nil, "2026-11-28T08:00:00.000Z"),
                E("charging.status", "", .text("charging_complete"), nil, "2026-11-28T08:00:00.000Z"),
                E("diagnostics.odometer", "", .number(100), "kilometers", "2026-11-28T08:00:00.000Z"),
            ])
        #expect(payload.samples.allSatisfy { $0.timeSource == .response })
    }

    @Test(arguments: [
        ("not json at all", "not valid JSON"),
        ("[1,2,3]", "not a JSON object"),
        (#"{"vin":"1HMFT000000000009","charging":{}}"#, "another vehicle"),
        (#"{"vin":"short"}"#, "not a valid VIN"),
        (#"{"vin": 12}"#, "not a valid VIN"),
    ])
    func malformedBodiesThrowClearErrors(body: String, message: String) {
        let vin = VIN("1HMFT000000000001")!
        #expect {
            try normalizer.normalize(body: Array(body.utf8), vin: vin, receivedAt: receivedAt)
        } throws: { error in
            String(describing: error).contains(message) && String(describing: error).contains("1HMFT000000000001")
        }
    }

    @Test func oddValuesBecomeFailuresNotCrashes() throws {
        let body = #"""
            {"charging": {"battery_level": {"data": 0.5, "timestamp": "2026-11-28T09:00:00Z"},
                          "status": "charging",
                          "Bad Name": {"data": 1},
                          "estimated_range": {"data": {"value": 10, "unit": "miles"}, "timestamp": "not a time"}},
             "doors": "closed",
             "diagnostics": {"tire_pressures": [1, {"data": {"location": "front_left", "pressure": {"value": 36, "unit": "pounds_force_per_square_inch"}}, "timestamp": "2026-11-28T09:00:00+01:00"}]}}
            """#
        let payload = try normalizer.normalize(
            body: Array(body.utf8), vin: VIN("1HMFT000000000001")!, receivedAt: receivedAt)
        #expect(
            payload.samples.map(E.init) == [
                E("charging.battery_level", "", .number(50), "percent", "2026-11-28T09:00:00.000Z"),
                E(
                    "diagnostics.tire_pressures.pressure", "front_left", .number(248.21136), "kilopascals",
                    "2026-11-28T08:00:00.000Z"),
            ])
        #expect(Set(payload.failures.map(\.reason)) == ["unreadable", "invalid_value"])
        #expect(
            payload.failures.first { $0.reason == "invalid_value" }?.description
                == "unreadable timestamp \"not a time\"", "a bad timestamp is never replaced by the receive time")
        #expect(payload.failures.count == 5)
    }

    @Test func arrayEntriesWithoutKeyUseTheirIndex() throws {
        let body =
            #"{"charging":{"departure_times":[{"data":{"state":"active"},"timestamp":"2026-11-28T09:00:00Z"},{"data":{"state":"inactive"},"timestamp":"2026-11-28T09:00:00Z"}]}}"#
        let payload = try normalizer.normalize(
            body: Array(body.utf8), vin: VIN("1HMFT000000000001")!, receivedAt: receivedAt)
        #expect(
            payload.samples.map { "\($0.property)[\($0.instance)]=\($0.value)" } == [
                "charging.departure_times.state[0]=active", "charging.departure_times.state[1]=inactive",
            ])
    }
}

@Suite struct UnitConversionTests {
    @Test(arguments: [
        (1500.0, "meters", 1.5, "kilometers"),
        (10.0, "miles", 16.09344, "kilometers"),
        (36.0, "kilometers_per_hour", 36.0, "kilometers_per_hour"),
        (10.0, "meters_per_second", 36.0, "kilometers_per_hour"),
        (300.15, "kelvin", 27.0, "celsius"),
        (212.0, "fahrenheit", 100.0, "celsius"),
        (2.3, "bars", 230.0, "kilopascals"),
        (95.0, "minutes", 5700.0, "seconds"),
        (11_000.0, "watts", 11.0, "kilowatts"),
        (12.6, "volts", 12.6, "volts"),
    ])
    func canonical(value: Double, unit: String, expected: Double, expectedUnit: String) {
        let (converted, canonicalUnit) = UnitConversion.canonical(value, unit: unit)
        #expect(converted == expected)
        #expect(canonicalUnit == expectedUnit)
    }
}

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-11-28T09:14:03.000Z", Int64(1_795_857_243_000)),
        ("2026-11-28T09:14:03Z", 1_795_857_243_000),
        ("2026-11-28T09:14:03.5Z", 1_795_857_243_500),
        ("2026-11-28T10:14:03.123456+01:00", 1_795_857_243_123),
        ("2023-02-24T06:07:56", 1_677_218_876_000),
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
    ])
    func parses(text: String, milliseconds: Int64) {
        #expect(Timestamp(iso8601: text)?.millisecondsSince1970 == milliseconds)
    }

    @Test(arguments: [
        "", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-28 09:14", "2026-11-28T09:14:03Zjunk",
        "2026-11-28T25:00:00Z", "2026-11-28T09:14:03.Z",
    ])
    func rejects(text: String) {
        #expect(Timestamp(iso8601: text) == nil)
    }

    @Test func printsRFC3339() {
        #expect(Timestamp(millisecondsSince1970: 1_795_857_243_007).iso8601 == "2026-11-28T09:14:03.007Z")
        #expect(Timestamp(millisecondsSince1970: -1).iso8601 == "1969-12-31T23:59:59.999Z")
    }
}

@Suite struct VINTests {
    @Test func acceptsAndUppercases() throws {
        #expect(try VIN(validating: "1hmft000000000001").rawValue == "1HMFT000000000001")
        // The bounds of the alphabet, as sent (no upper-casing needed).
        #expect(try VIN(validating: "ABHJNPRZ099876543").rawValue == "ABHJNPRZ099876543")
    }

    @Test(arguments: [
        "", "1HMFT00000000001", "1HMFT0000000000012", "1HMFT00000000000I", "1HMFT0000000000/1", "1HMFT00000000000\n",
        "1HMEMU0000000000ſ", "1HMEMU000000000ﬀ", "1HMEMU0000000000ß",
        "1HMFT0000000000@1", "1HMFT0000000000[1", "1HMFT0000000000:1", "1HMFT0000000000/1", "1HMFT00000000000O",
        "1HMFT00000000000Q",
    ])
    func rejects(text: String) {
        #expect(throws: VINError.self) { try VIN(validating: text) }
    }

    @Test func errorEscapesControlCharacters() {
        #expect(throws: VINError.self) { try VIN(validating: "1HMFT00000000000\n") }
        do {
            _ = try VIN(validating: "1HMFT00000000000\n")
        } catch {
            #expect(!error.description.contains("\n"))
        }
    }
}
