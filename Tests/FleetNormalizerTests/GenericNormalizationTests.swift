import FleetModel
@testable import FleetNormalizer
import Testing

let testVIN = VIN("1HMFT000000000001")!

func normalize(_ body: String) throws -> NormalizedPayload {
    try Normalizer().normalize(body: Array(body.utf8), vin: testVIN, receivedAt: receivedAt)
}

@Suite struct UnitFamilyTests {
    /// One conversion per unit family of the Auto API, with exact expected values.
    @Test(arguments: [
        (1500.0, "meters", 1.5, "kilometers"),
        (72.0, "kilometers_per_hour", 72.0, "kilometers_per_hour"),
        (20.0, "meters_per_second", 72.0, "kilometers_per_hour"),
        (2.0, "gravity", 19.62, "meters_per_second_squared"),
        (50.0, "fahrenheit", 10.0, "celsius"),
        (35.0, "pounds_force_per_square_inch", 241.3166, "kilopascals"),
        (2.0, "hours", 7200.0, "seconds"),
        (3_600_000.0, "joules", 1.0, "kilowatt_hours"),
        (500.0, "milliampere_hours", 0.5, "ampere_hours"),
        (100.0, "horsepower", 74.57, "kilowatts"),
        (10.0, "gallons", 37.85411784, "liters"),
        (12_600.0, "millivolts", 12.6, "volts"),
        (1500.0, "milliamperes", 1.5, "amperes"),
        (Double.pi, "radians", 180.0, "degrees"),
        (60.0, "degrees_per_second", 10.0, "revolutions_per_minute"),
        (120.0, "beats_per_minute", 2.0, "hertz"),
        (800.0, "lux", 800.0, "lux"),
        (10.0, "pounds", 4.5359237, "kilograms"),
        (100.0, "pound_feet", 135.58179483314, "newton_meters"),
        (40.0, "miles_per_gallon", 5.880364583, "liters_per_100_kilometers"),
        (4.0, "miles_per_kwh", 15.5342798059, "kwh_per_100_kilometers"),
    ])
    func everyFamily(value: Double, unit: String, expected: Double, canonical: String) throws {
        let (converted, target) = try UnitConversion.convert(value, unit: unit)
        #expect(target == canonical)
        #expect(abs(converted - expected) < 1e-9 * max(1, abs(expected)), "\(value) \(unit) → \(converted) \(target)")
    }

    /// A timestamp before 2000 or more than a year ahead of the response is refused: it would pin
    /// `latest` to a value no real reading could replace.
    @Test(arguments: [
        ("2200-01-01T00:00:00Z", false), ("1900-01-01T00:00:00Z", false), ("1999-12-31T23:59:59Z", false),
        ("2000-01-01T00:00:00Z", true), ("RECEIVED+1D", true),
    ])
    func implausibleTimestampsAreFailures(time: String, accepted: Bool) throws {
        let stamp = time == "RECEIVED+1D" ? receivedAt.adding(milliseconds: 86_400_000).iso8601 : time
        let payload = try normalize(
            #"{"vin":"1HMFT000000000001","charging":{"battery_level":{"data":0.5,"timestamp":"\#(stamp)"}}}"#)
        #expect(payload.samples.count == (accepted ? 1 : 0))
        #expect(payload.failures.map(\.reason) == (accepted ? [] : ["invalid_value"]))
    }

    @Test func reciprocalOfZeroIsAFailure() throws {
        let payload = try normalize(
            #"{"usage":{"fuel_efficiency":{"data":{"value":0,"unit":"miles_per_gallon"},"timestamp":"2026-11-28T09:00:00Z"}}}"#
        )
        #expect(payload.samples.isEmpty)
        #expect(payload.failures.map(\.reason) == ["invalid_value"])
    }

    /// Coordinates outside the globe, or not numbers, are failures: stored, they would move the
    /// vehicle across the map and fire `vehicle_moved`. A number sent as text is read.
    @Test(arguments: [
        (#"95"#, #"200"#, [String](), ["latitude 95 is outside -90…90", "longitude 200 is outside -180…180"]),
        (#"1e300"#, #"-180"#, ["vehicle_location.coordinates.longitude"], ["latitude 1e+300 is outside -90…90"]),
        (#""NaN""#, #"true"#, [], ["not a number: \"NaN\"", "not a number: true"]),
        (
            #""52.52""#, #"13.405"#,
            ["vehicle_location.coordinates.latitude", "vehicle_location.coordinates.longitude"], []
        ),
    ])
    func coordinatesMustBeOnTheGlobe(latitude: String, longitude: String, stored: [String], failures: [String]) throws {
        let payload = try normalize(
            #"{"vehicle_location":{"coordinates":{"data":{"latitude":"# + latitude + #","longitude":"# + longitude
                + #"},"timestamp":"2026-11-28T09:00:00Z"}}}"#)
        #expect(payload.samples.map(\.property).sorted() == stored)
        #expect(payload.failures.map(\.reason).allSatisfy { $0 == "invalid_value" })
        #expect(payload.failures.compactMap(\.description).sorted() == failures.sorted())
        #expect(payload.samples.first { $0.property.hasSuffix("latitude") }.map { $0.value == .number(52.52) } ?? true)
    }

    @Test func sourceUnitIsKept() throws {
        let payload = try normalize(
            #"{"diagnostics":{"odometer":{"data":{"value":100,"unit":"miles"},"timestamp":"2026-11-28T09:00:00Z"}},"charging":{"battery_level":{"data":0.5,"timestamp":"2026-11-28T09:00:00Z"}}}"#
        )
        let odometer = try #require(payload.samples.first { $0.property == "diagnostics.odometer" })
        #expect(odometer.value == .number(160.9344) && odometer.unit == "kilometers" && odometer.sourceUnit == "miles")
        #expect(payload.samples.first { $0.property == "charging.battery_level" }?.sourceUnit == "fraction")
    }
}

@Suite struct GenericNormalizationTests {
    /// One property of each value shape the Auto API uses, plus an unknown capability.
    @Test func everyValueShape() throws {
        let payload = try normalize(
            #"""
            {"vin":"1HMFT000000000001",
             "charging": {"battery_level": {"data": 0.5, "timestamp": "2026-11-28T09:00:00Z"},
                          "status": {"data": "charging", "timestamp": "2026-11-28T09:00:00Z"},
                          "charge_port_state": {"data": "open", "timestamp": "2026-11-28T09:00:00Z"}},
             "climate": {"hvac_state": {"data": "active", "timestamp": "2026-11-28T09:00:00Z"}},
             "lights": {"emergency_brake_light": {"data": true, "timestamp": "2026-11-28T09:00:00Z"}},
             "diagnostics": {"speed": {"data": {"value": 50, "unit": "kilometers_per_hour"}, "timestamp": "2026-11-28T09:00:00Z"},
                             "trouble_codes": [{"data": {"id": "P0420", "occurrences": 2, "ecu_id": "ECU1", "status": "active", "system": "powertrain"}, "timestamp": "2026-11-28T09:00:00Z"}]},
             "vehicle_location": {"coordinates": {"data": {"latitude": 52.5, "longitude": 13.4}, "timestamp": "2026-11-28T09:00:00Z"}},
             "dashboard_lights": {"dashboard_lights": [{"data": {"name": "low_beam", "state": "on"}, "timestamp": "2026-11-28T09:00:00Z"}]},
             "windows": {"open_percentages": [{"data": {"location": "front_left", "open_percentage": 0.25}, "timestamp": "2026-11-28T09:00:00Z"}]},
             "climate_extra": {"weekday_schedule": {"data": {"days": [1, 2]}, "timestamp": "2026-11-28T09:00:00Z"}},
             "future_capability": {"new_property": {"data": {"value": 3, "unit": "newton_meters"}, "timestamp": "2026-11-28T09:00:00Z"}}}
            """#)
        let rows = Set(payload.samples.map { "\($0.property)[\($0.instance)]=\($0.value) \($0.unit ?? "-")" })
        #expect(
            rows == [
                "charging.battery_level[]=50 percent",
                "charging.status[]=charging -",
                "charging.charge_port_state[]=open -",
                "climate.hvac_state[]=active -",
                "lights.emergency_brake_light[]=true -",
                "diagnostics.speed[]=50 kilometers_per_hour",
                "diagnostics.trouble_codes.occurrences[P0420]=2 -",
                "diagnostics.trouble_codes.ecu_id[P0420]=ECU1 -",
                "diagnostics.trouble_codes.status[P0420]=active -",
                "diagnostics.trouble_codes.system[P0420]=powertrain -",
                "vehicle_location.coordinates.latitude[]=52.5 -",
                "vehicle_location.coordinates.longitude[]=13.4 -",
                "dashboard_lights.dashboard_lights.state[low_beam]=on -",
                "windows.open_percentages.open_percentage[front_left]=25 percent",
                "climate_extra.weekday_schedule.days[]=[1,2] -",
                "future_capability.new_property[]=3 newton_meters",
            ])
        #expect(payload.failures.isEmpty)
    }

    /// The push shape: every property is an array; a single-valued one has no instance.
    @Test func pushShape() throws {
        let payload = try normalize(
            #"""
            {"version": 2, "message_id": "abc", "vin": "1HMFT000000000001", "application_id": "app",
             "data": {"diagnostics": {"odometer": [{"data": {"value": 100, "unit": "kilometers"}, "timestamp": "2026-11-28T09:00:00Z"}]},
                      "doors": {"locks": [{"data": {"location": "front_left", "lock_state": "locked"}, "timestamp": "2026-11-28T09:00:00Z"}]}}}
            """#)
        #expect(payload.messageID == "abc")
        #expect(
            payload.samples.map { "\($0.property)[\($0.instance)]" } == [
                "diagnostics.odometer[]", "doors.locks.lock_state[front_left]",
            ])
    }

    /// Type drift: numbers as text, null, NaN and numbers beyond Double never crash; unusable
    /// values become failures with the raw text, the rest of the response is kept.
    @Test func typeDrift() throws {
        let payload = try normalize(
            #"""
            {"charging": {"battery_level": {"data": "0.42", "timestamp": "2026-11-28T09:00:00Z"},
                          "charge_limit": {"data": "NaN", "timestamp": "2026-11-28T09:00:00Z"},
                          "status": {"data": null, "timestamp": "2026-11-28T09:00:00Z"}},
             "diagnostics": {"odometer": {"data": {"value": "12.5", "unit": "kilometers"}, "timestamp": "2026-11-28T09:00:00Z"},
                             "speed": {"data": {"value": 1e999, "unit": "kilometers_per_hour"}, "timestamp": "2026-11-28T09:00:00Z"},
                             "engine_rpm": {"data": 1e999, "timestamp": "2026-11-28T09:00:00Z"},
                             "fuel_level": {"data": {"value": "lots", "unit": "liters"}, "timestamp": "2026-11-28T09:00:00Z"}}}
            """#)
        #expect(
            Set(payload.samples.map { "\($0.property)=\($0.value)" }) == [
                "charging.battery_level=42", "diagnostics.odometer=12.5",
            ])
        let failures = Dictionary(uniqueKeysWithValues: payload.failures.map { ($0.property, $0.description ?? "") })
        #expect(
            failures.keys.sorted() == [
                "charging.charge_limit", "charging.status", "diagnostics.engine_rpm", "diagnostics.fuel_level",
                "diagnostics.speed",
            ])
        #expect(failures["diagnostics.speed"]?.contains("1e999") == true)
        #expect(failures["diagnostics.fuel_level"]?.contains("lots") == true)
        #expect(payload.failures.allSatisfy { $0.reason == "invalid_value" })
    }

    @Test func deprecatedAliasesMapToCurrentNamesAndTheCurrentOneWins() throws {
        let both = try normalize(
            #"{"diagnostics":{"mileage":{"data":{"value":1,"unit":"kilometers"},"timestamp":"2026-11-28T09:00:00Z"},"odometer":{"data":{"value":2,"unit":"kilometers"},"timestamp":"2026-11-28T09:00:00Z"}},"charging":{"charging_rate_kw":{"data":{"value":11,"unit":"kilowatts"},"timestamp":"2026-11-28T09:00:00Z"},"battery_tempretature_extremes":{"data":{"value":30,"unit":"celsius"},"timestamp":"2026-11-28T09:00:00Z"}}}"#
        )
        #expect(
            Set(both.samples.map { "\($0.property)=\($0.value)" }) == [
                "diagnostics.odometer=2", "charging.charging_rate=11", "charging.battery_temperature_extremes=30",
            ])
        let old = try normalize(
            #"{"diagnostics":{"mileage":{"data":{"value":1,"unit":"kilometers"},"timestamp":"2026-11-28T09:00:00Z"}},"ignition":{"status":{"data":"on","timestamp":"2026-11-28T09:00:00Z"}}}"#
        )
        #expect(Set(old.samples.map(\.property)) == ["diagnostics.odometer", "ignition.state"])
    }

    @Test func failuresCarryTheirTime() throws {
        let payload = try normalize(
            #"{"charging":{"status":{"failure":{"reason":"rate_limit","description":"slow down"},"timestamp":"2026-11-28T09:00:00Z"}}}"#
        )
        #expect(
            payload.failures == [
                PropertyFailure(
                    property: "charging.status", reason: .rateLimit, description: "slow down",
                    observedAt: ts("2026-11-28T09:00:00Z"))
            ])
    }
}

@Suite struct JSONParserTests {
    @Test(arguments: [
        "{\"a\":[1,2.5,-3e2,true,false,null,\"x\\u00e9\\ud83d\\ude00\"]}", " [] ", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    ])
    func parsesValidJSON(text: String) throws {
        _ = try JSONParser.parse(text)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "\"\u{01}\"", "[1] 2", "\"\\ud800\"", "nul"])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(text) }
    }

    @Test func outOfRangeNumbersAreKeptAsText() throws {
        #expect(try JSONParser.parse("[1e999]") == .array([.string("1e999")]))
        #expect(try JSONParser.parse("{\"a\":\"\\u00e9\"}") == .object(["a": .string("é")]))
    }

    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(deep) }
    }
}
