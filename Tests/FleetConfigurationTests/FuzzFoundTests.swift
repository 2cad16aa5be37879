import FleetConfiguration
import Testing

/// Config texts the config fuzz target found whose errors named neither a key nor a line.
@Suite struct ConfigFuzzFoundTests {
    func firstError(_ text: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(text, file: "c.yaml")
            return nil
        } catch {
            return error
        }
    }

    /// libyaml's reader refuses a control character; the error now names its line.
    @Test func aControlCharacterIsReportedAtItsLine() throws {
        let error = try #require(firstError("log_level: info\npolling:\n  interval: \u{16}5s\n"))
        #expect(error.line == 3)
        #expect(error.message.hasPrefix("not valid YAML: "))
    }

    /// A complex key (`? …`) at the top was reported without any location.
    @Test func aKeyThatIsNotAWordIsReportedAtItsLine() throws {
        let error = try #require(firstError("log_level: info\n? [a, b]\n: 1\n"))
        #expect(error.line == 2)
        #expect(error.message == "keys must be plain words")
    }
}

/// Found by the duration target's whole-verdict comparison: a number past 10^12 was called too
/// long before the rest was read, so a malformed value was reported as too long.
@Suite struct DurationFuzzFoundTests {
    @Test(arguments: ["10000000000000x", "99999999999999", "10000000000000s1h", "10000000000000"])
    func aMalformedValueIsMalformedWhateverItsNumber(_ text: String) {
        #expect(DurationParser.check(text) == .malformed)
    }

    @Test(arguments: ["10000000000000s", "99999999999999999999999ms", "1d10000000000000ms", "3651d"])
    func aWellFormedValueBeyondTenYearsIsTooLong(_ text: String) {
        #expect(DurationParser.check(text) == .tooLong)
    }
}
