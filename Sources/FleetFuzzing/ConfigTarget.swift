import FleetConfiguration

extension FuzzTarget {
    /// The config loader on any YAML text, with every section's checks.
    ///
    /// Checked: every error names a key or a line (only an empty file has neither) and has a
    /// message.
    public static let config = FuzzTarget(
        name: "config",
        summary: "Config loader on YAML text: every error names a key or a line",
        grow: [
            Growth("many unknown keys") { n in
                Array((0..<max(1, n / 10)).map { "key\($0): 1\n" }.joined().utf8)
            },
            Growth("a long vehicles list") { n in
                Array(
                    ("api:\n  base_url: http://127.0.0.1:1\n  client_id: c\n  client_secret: s\nvehicles:\n"
                        + (0..<max(1, n / 22)).map { "  - WF0FUZZ\(String(100_000_000 + $0).suffix(9)) \n" }.joined())
                        .utf8)
            },
            Growth("a long flow sequence") { n in
                Array(
                    ("vehicles: [" + Array(repeating: "x", count: max(1, n / 3)).joined(separator: ", ") + "]\n").utf8)
            },
        ]
    ) { input throws(FuzzFailure) in
        let text = String(decoding: input, as: UTF8.self)
        let errors: [ConfigError]
        do throws(ConfigError) {
            errors = try ConfigLoader.validate(text, file: "fuzz.yaml").1
        } catch {
            errors = [error]
        }
        for error in errors {
            guard !error.message.isEmpty else { throw FuzzFailure("config", "an error without a message: \(error)") }
            guard error.key != nil || error.line != nil || error.message == "the file is empty" else {
                throw FuzzFailure("config", "\(quoted(input)): an error naming neither a key nor a line: \(error)")
            }
        }
    }
}
