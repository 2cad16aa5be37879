import Foundation
import Testing

extension CommandLineTests {
    /// `check-config`: every class of config error with its file, line and key, exit 78; a valid
    /// file (secret readable) exits 0 with a one-line summary.
    @Test func checkConfigReportsEveryErrorWithFileLineAndKey() throws {
        let directory = NSTemporaryDirectory() + "ft-check-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func check(_ text: String?, environment: [String: String] = ["PATH": "/usr/bin:/bin"]) throws -> CLI.Result {
            let path = directory + "/c.yaml"
            if let text { try text.write(toFile: path, atomically: true, encoding: .utf8) }
            return try CLI.execute(
                ["check-config", text == nil ? directory + "/missing.yaml" : path], environment: environment)
        }
        let valid = """
            api:
              base_url: https://api.example
              client_id: id
              client_secret:
                env: HM_SECRET
            vehicles:
              - 1HMFT000000000001
            """
        let ok = try check(valid, environment: ["HM_SECRET": "s", "PATH": "/usr/bin:/bin"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("OK: polls 1 vehicle every 5m from https://api.example"), "\(ok.stdout)")

        let secretMissing = try check(valid)
        #expect(secretMissing.status == 78)
        #expect(secretMissing.stderr.contains("api.client_secret: environment variable HM_SECRET is not set"))

        let many = try check(
            valid.replacingOccurrences(of: "https://api.example", with: "ftp://x")
                + "\npolling:\n  interval: 0s\n  intervall: 5m\nlog_level: loud\nextra: 1\n"
                + "events:\n  disabled: [door_unlocked, nope]\n  vehicle_moved_km: -1\n",
            environment: ["HM_SECRET": "s", "PATH": "/usr/bin:/bin"])
        #expect(many.status == 78)
        for expected in [
            "c.yaml:2: api.base_url: expected an http:// or https:// URL",
            "c.yaml:9: polling.interval: must be at least 1s, got 0s",
            "c.yaml:10: polling.intervall: unknown key (did you mean `interval`?)",
            "c.yaml:11: log_level: expected one of", "c.yaml:12: extra: unknown key",
            "c.yaml:14: events.disabled[1]: unknown event type \"nope\"",
            "c.yaml:15: events.vehicle_moved_km: must be between 0.01 and 100000.0, got -1", "c.yaml: 7 errors",
        ] {
            #expect(many.stderr.contains(expected), "\(expected) in \(many.stderr)")
        }
        let notYAML = try check("api: [unclosed\n")
        #expect(notYAML.status == 78)
        #expect(notYAML.stderr.contains("c.yaml"), "\(notYAML.stderr)")
        let missingKey = try check("database:\n  path: /tmp/x.sqlite\n")
        #expect(missingKey.status == 78)
        #expect(missingKey.stderr.contains("missing key `api`"), "\(missingKey.stderr)")
        let unreadable = try check(nil)
        #expect(unreadable.status == 78)
        #expect(unreadable.stderr.contains("missing.yaml: cannot read the config file"))
    }
}
