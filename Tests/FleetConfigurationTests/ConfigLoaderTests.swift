import FleetClient
@testable import FleetConfiguration
import FleetScheduling
import FleetEvents
import FleetModel
import Foundation
import Testing

let exampleConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("config/fleet-telemetry.yaml").path

let minimal = """
    api:
      base_url: http://127.0.0.1:8080
      client_id: emulator-client
      client_secret:
        env: HM_SECRET
    vehicles: [1HMFT000000000001]
    """

@Suite struct ConfigLoaderTests {
    /// `sinks.webhooks`: names, URLs, secrets, filters and ages checked, each error with its key.
    @Test func webhookSinks() throws {
        let good = try ConfigLoader.parse(
            minimal + """

                sinks:
                  webhooks:
                    - name: ops
                      url: https://hooks.example.com/fleet
                      secret: {env: HOOK_SECRET}
                      types: [door_unlocked, charging_completed]
                      vins: [1HMFT000000000001]
                      max_age: 2h
                    - {name: all, url: "http://127.0.0.1:9000/hook", secret: {file: hook-secret}}
                """, file: "/etc/ft/c.yaml")
        #expect(good.webhooks.map(\.name) == ["ops", "all"])
        #expect(good.webhooks[0].types == [.doorUnlocked, .chargingCompleted])
        #expect(good.webhooks[0].vins == [VIN("1HMFT000000000001")!])
        #expect(good.webhooks[0].maxAge == .seconds(7200) && good.webhooks[1].maxAge == .seconds(86_400))
        #expect(good.webhooks[1].secret == .file("/etc/ft/hook-secret") && good.webhooks[1].types == nil)

        let secret = "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()
        var one = good
        one.webhooks = [good.webhooks[0]]
        #expect(try one.webhookSecrets(file: "c.yaml", environment: ["HOOK_SECRET": secret])["ops"] != nil)
        #expect {
            try good.webhookSecrets(file: "c.yaml", environment: ["HOOK_SECRET": "plain"])
        } throws: { error in
            (error as? ConfigError)?.key == "sinks.webhooks[0].secret"
                && !"\(error)".contains("plain")
        }

        let (_, errors, _) = try ConfigLoader.validate(
            minimal + """

                sinks:
                  webhooks:
                    - {name: "bad name", url: ftp://x, secret: {env: A}, types: [door_exploded]}
                    - {name: ok, url: "http://h/x", secret: {env: A}, max_age: 1s}
                    - {name: ok, url: "http://h/x"}
                    - {name: p, url: "http://h:99999/x", secret: {env: A}, types: []}
                """, file: "c.yaml")
        for expected in [
            "sinks.webhooks[0].name: a name of letters", "sinks.webhooks[0].url: expected an http",
            "sinks.webhooks[0].types[0]: unknown event type", "sinks.webhooks[1].max_age: must be at least 1m",
            "sinks.webhooks[2].name: webhook ok is named twice", "a webhook needs a `secret`",
            "sinks.webhooks[3].url: the port must be 1–65535", "sinks.webhooks[3].types: an empty list",
        ] {
            #expect(errors.contains { "\($0)".contains(expected) }, "\(expected) in \(errors)")
        }
    }

    @Test func mqttSink() throws {
        let good = try ConfigLoader.parse(
            minimal + """

                sinks:
                  mqtt:
                    url: mqtts://broker.example.com
                    prefix: fleet/north
                    username: fleet
                    password: {env: MQTT_PASSWORD}
                    ca_file: broker-ca.pem
                    types: [door_unlocked]
                    home_assistant: true
                """, file: "/etc/ft/c.yaml")
        let mqtt = try #require(good.mqtt)
        #expect(mqtt.url.host == "broker.example.com" && mqtt.url.port == 8883 && mqtt.url.useTLS)
        #expect(mqtt.prefix == "fleet/north" && mqtt.username == "fleet" && mqtt.homeAssistant)
        #expect(mqtt.caFile == "/etc/ft/broker-ca.pem" && mqtt.types == [.doorUnlocked] && mqtt.vins == nil)
        #expect(mqtt.maxAge == .seconds(86_400) && mqtt.keepAlive == .seconds(30) && mqtt.timeout == .seconds(10))
        #expect(try good.mqttPassword(file: "c.yaml", environment: ["MQTT_PASSWORD": "pw"])?.value == "pw")
        #expect {
            try good.mqttPassword(file: "c.yaml", environment: [:])
        } throws: { error in
            (error as? ConfigError)?.key == "sinks.mqtt.password"
        }
        let plain = try ConfigLoader.parse(minimal + "\nsinks:\n  mqtt:\n    url: mqtt://[::1]:1884\n", file: "c.yaml")
        #expect(
            plain.mqtt?.url.host == "::1" && plain.mqtt?.url.port == 1884 && plain.mqtt?.prefix == "fleet-telemetry")
        #expect(plain.mqtt?.url.description == "mqtt://[::1]:1884")

        let (_, errors, _) = try ConfigLoader.validate(
            minimal + """

                sinks:
                  mqtt:
                    url: mqtt://broker:99999
                    prefix: fleet/#
                    keepalive: 1s
                    qos: 2
                  webhooks:
                    - {name: mqtt, url: "http://h/x", secret: {env: A}}
                """, file: "c.yaml")
        for expected in [
            "sinks.mqtt.url: expected mqtt://HOST[:PORT]", "sinks.webhooks[0].name: `mqtt` is the MQTT sink",
            "sinks.mqtt.qos: unknown key",
        ] {
            #expect(errors.contains { "\($0)".contains(expected) }, "\(expected) in \(errors)")
        }
        let (_, more, _) = try ConfigLoader.validate(
            minimal
                + "\nsinks:\n  mqtt:\n    url: mqtt://b:0\n    prefix: $SYS/x\n    keepalive: 1s\n    ca_file: ca.pem\n",
            file: "c.yaml")
        for expected in [
            "sinks.mqtt.prefix: a topic prefix", "sinks.mqtt.keepalive: must be at least 5s",
            "sinks.mqtt.url: expected mqtt://",
        ] {
            #expect(more.contains { "\($0)".contains(expected) }, "\(expected) in \(more)")
        }
    }

    /// Every unreadable secret is reported, each under its own webhook's index (a webhook
    /// dropped for a bad URL does not shift the others').
    @Test func everySinkSecretProblemAtOnce() throws {
        let (loaded, _, _) = try ConfigLoader.validate(
            minimal + """

                sinks:
                  webhooks:
                    - {name: a, url: "ftp://x", secret: {env: A}}
                    - {name: b, url: "http://h/x", secret: {env: B}}
                    - {name: c, url: "http://h/x", secret: {env: C}}
                  mqtt:
                    url: mqtts://broker
                    password: {env: P}
                    ca_file: /nonexistent/ca.pem
                """, file: "c.yaml")
        let configuration = loaded
        let problems = SinkSecrets.problems(configuration: configuration, file: "c.yaml", environment: ["B": "plain"])
        #expect(
            problems.compactMap(\.key) == [
                "sinks.webhooks[1].secret", "sinks.webhooks[2].secret", "sinks.mqtt.password", "sinks.mqtt.ca_file",
            ])
    }

    @Test func theShippedExampleLoads() throws {
        let configuration = try ConfigLoader.load(path: exampleConfig)
        #expect(configuration.api.baseURL == "https://sandbox.api.high-mobility.com")
        #expect(configuration.api.clientSecret == .credential("hm-client-secret"))
        #expect(configuration.polling.interval == .seconds(300))
        #expect(configuration.polling.maxConcurrentRequests == 4)
        // Commented out in the example: `interval` holds for every activity unless the operator says.
        #expect(configuration.polling.activityIntervals == [:])
        #expect(configuration.polling.policy.slowInterval == .seconds(1800))
        #expect(configuration.polling.policy.privacyInterval == .seconds(6 * 3600))
        #expect(configuration.polling.maxRequestsPerSecond == nil)
        #expect(configuration.databasePath == "/var/lib/fleet-telemetry/telemetry.sqlite")
        #expect(configuration.vehicles.isEmpty)
        #expect(configuration.fleet.sync)
        #expect(configuration.fleet.syncInterval == .seconds(3600))
        #expect(configuration.api.pathFamily == .platform)
        #expect(!configuration.api.insecureSkipTLSVerify)
    }

    @Test func defaultsApply() throws {
        let configuration = try ConfigLoader.parse(minimal, file: "c.yaml")
        #expect(configuration.polling.interval == .seconds(300))
        #expect(configuration.polling.maxBackoff == .seconds(3600))
        #expect(configuration.api.requestTimeout == .seconds(30))
        #expect(configuration.logLevel == "info")
        #expect(configuration.repeatHeartbeat == .seconds(3600))
    }

    /// `database.repeat_heartbeat`: a duration, or 0 to keep every repeat.
    @Test func repeatHeartbeat() throws {
        for (text, expected) in [
            ("0", Duration.zero), ("0s", .zero), ("30m", .seconds(1800)), ("1d", .seconds(86_400)),
        ] {
            let configuration = try ConfigLoader.parse(
                minimal + "\ndatabase:\n  repeat_heartbeat: \(text)\n", file: "c.yaml")
            #expect(configuration.repeatHeartbeat == expected, "\(text)")
        }
        #expect {
            try ConfigLoader.parse(minimal + "\ndatabase:\n  repeat_heartbeat: hourly\n", file: "c.yaml")
        } throws: { error in
            "\(error)".contains("c.yaml:8: database.repeat_heartbeat: expected a duration")
        }
        #expect {
            try ConfigLoader.parse(minimal + "\ndatabase:\n  repeat_heartbeat: 100ms\n", file: "c.yaml")
        } throws: { error in
            "\(error)".contains("c.yaml:8: database.repeat_heartbeat: must be 0 (keep every repeat) or at least 1s")
        }
    }

    /// `consent`: the consent page's URL (a default per API host), the redirect URI, the scope and
    /// the state file (beside the database unless set; relative to the config file).
    @Test func consentKeys() throws {
        let defaults = try ConfigLoader.parse(minimal, file: "/etc/ft/c.yaml")
        #expect(defaults.consent.redirectURI == "http://127.0.0.1:8765/callback")
        #expect(defaults.consent.scope == "vehicle:data")
        #expect(defaults.consentStateFile == defaults.databasePath + "-consent.json")
        #expect(
            defaults.consent.authorizationURL(baseURL: "https://sandbox.api.high-mobility.com")
                == "https://owner-panel.high-mobility.com/oauth/new")
        #expect(
            defaults.consent.authorizationURL(baseURL: "http://127.0.0.1:8080/") == "http://127.0.0.1:8080/oauth/new")
        let set = try ConfigLoader.parse(
            minimal
                + "\nconsent:\n  authorization_url: https://example.com/consent\n  redirect_uri: https://app.example.com/cb\n"
                + "  scope: vehicle:data doors.get.locks\n  state_file: grants.json\n",
            file: "/etc/ft/c.yaml")
        #expect(set.consent.authorizationURL(baseURL: "https://api.high-mobility.com") == "https://example.com/consent")
        #expect(set.consent.redirectURI == "https://app.example.com/cb")
        #expect(set.consent.scope == "vehicle:data doors.get.locks")
        #expect(set.consentStateFile == "/etc/ft/grants.json")
        #expect {
            try ConfigLoader.parse(minimal + "\nconsent:\n  redirect_uri: callback\n", file: "c.yaml")
        } throws: { error in
            "\(error)".contains("c.yaml:8: consent.redirect_uri: must be an http:// or https:// URL, got callback")
        }
    }

    @Test(arguments: [
        (
            minimal + "\npolling:\n  intervall: 5m\n",
            "c.yaml:8: polling.intervall: unknown key (did you mean `interval`?)"
        ),
        (
            minimal + "\npolling:\n  interval: 5 minutes\n",
            "c.yaml:8: polling.interval: expected a duration such as 30s, 5m, 1h or 1h30m; got \"5 minutes\""
        ),
        (minimal + "\npolling:\n  interval: 0s\n", "c.yaml:8: polling.interval: must be at least 1s, got 0s"),
        (
            minimal + "\npolling:\n  max_concurrent_requests: many\n",
            "c.yaml:8: polling.max_concurrent_requests: expected a whole number, got \"many\""
        ),
        (
            minimal + "\npolling:\n  intervals:\n    sleeping: 1h\n",
            "c.yaml:9: polling.intervals.sleeping: unknown key; allowed here: charging, driving, parked"
        ),
        (
            minimal + "\npolling:\n  max_requests_per_second: 0\n",
            "c.yaml:8: polling.max_requests_per_second: expected a number of requests per second between 0.001 and 100000, got \"0\""
        ),
        (
            minimal + "\npolling:\n  daily_budget: -3\n",
            "c.yaml:8: polling.daily_budget: must be between 1 and 1000000000, got -3"
        ),
        (
            minimal + "\npolling:\n  interval: 10000000000d\n",
            "c.yaml:8: polling.interval: must be at most 3650d (10 years), got 10000000000d"
        ),
        (
            minimal.replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:99999"),
            "c.yaml:2: api.base_url: the port must be between 1 and 65535, got 99999"
        ),
        (
            minimal.replacingOccurrences(of: "env: HM_SECRET", with: "credential: ../etc/shadow"),
            "c.yaml:5: api.client_secret.credential: a credential name is a file name in $CREDENTIALS_DIRECTORY, without '/'"
        ),
        (
            minimal + "\n\tpolling: 1\n",
            "c.yaml:7: not valid YAML: while scanning for the next token: found character that cannot start any token"
        ),
        (minimal + "\nvehicles: [1HMFT000000000002]\n", "c.yaml:6: key given twice: vehicles"),
        (
            minimal + "\nevents:\n  disabled: [door_exploded]\n",
            "c.yaml:8: events.disabled[0]: unknown event type \"door_exploded\""
        ),
        (
            minimal + "\nevents:\n  battery_low: {below: 30, rearm_above: 20}\n",
            "c.yaml:8: events.battery_low.rearm_above: must be at least `below` (30.0)"
        ),
        (
            minimal + "\nevents:\n  geofences:\n    - {name: depot, latitude: 95, longitude: 13, radius_m: 100}\n",
            "c.yaml:9: events.geofences[0].latitude: must be between -90.0 and 90.0, got 95"
        ),
        (
            minimal + "\nlog_level: loud\n",
            "c.yaml:7: log_level: expected one of trace, debug, info, notice, warning, error, critical; got \"loud\""
        ),
        (
            minimal + "\ndatabse:\n  path: x\n",
            "c.yaml:7: databse: unknown key (did you mean `database`?); allowed here: api, archive, consent, database, events, fleet, log_level, metrics, polling, retention, sinks, vehicles"
        ),
        (
            minimal.replacingOccurrences(of: "[1HMFT000000000001]", with: "[1HMFT00000000000I]"),
            "c.yaml:6: vehicles[0]: invalid VIN \"1HMFT00000000000I\": character 17 ('I') is not in the ISO 3779 alphabet (0-9, A-Z without I, O, Q)"
        ),
        (
            minimal.replacingOccurrences(of: "[1HMFT000000000001]", with: "[1HMFT000000000001, 1hmft000000000001]"),
            "c.yaml:6: vehicles[1]: VIN 1HMFT000000000001 is listed twice"
        ),
        (
            minimal.replacingOccurrences(of: "    env: HM_SECRET", with: "    env: A\n    file: /x"),
            "c.yaml:5: api.client_secret: give exactly one of `file`, `env` or `credential`"
        ),
        (
            minimal.replacingOccurrences(of: "http://127.0.0.1:8080", with: "ftp://x"),
            "c.yaml:2: api.base_url: expected an http:// or https:// URL, got \"ftp://x\""
        ),
        ("vehicles: []\n", "c.yaml:1: missing key `api`"),
        ("api: [1, 2\n", "c.yaml:2: not valid YAML: while parsing a flow sequence: did not find expected ',' or ']'"),
        ("", "c.yaml: the file is empty"),
    ])
    func badInputNamesFileKeyAndLine(text: String, message: String) {
        #expect {
            try ConfigLoader.parse(text, file: "c.yaml")
        } throws: { error in
            (error as? ConfigError)?.description.hasPrefix(message) == true
        }
    }

    @Test func pathsProxyAndFleetSync() throws {
        let reordered = """
            api:
              base_url: http://127.0.0.1:8080
              client_id: emulator-client
              client_secret:
                env: HM_SECRET
              paths: document
              proxy: http://proxy.example:3128
              insecure_skip_tls_verify: true
            fleet:
              sync_interval: 10m
            """
        let configuration = try ConfigLoader.parse(reordered, file: "c.yaml")
        #expect(configuration.api.pathFamily == .document)
        #expect(configuration.fleet.sync, "no static vehicles: the fleet sync is on")
        #expect(configuration.fleet.syncInterval == .seconds(600))
        let client = try configuration.clientConfiguration(file: "c.yaml", environment: ["HM_SECRET": "x"])
        #expect(client.proxy == .init(host: "proxy.example", port: 3128))
        #expect(client.insecureSkipTLSVerify)
        #expect(
            try ConfigLoader.parse(minimal, file: "c.yaml").fleet.sync == false,
            "static vehicles only: no sync unless asked")
    }

    @Test(arguments: [
        (
            "api:\n  base_url: https://api.high-mobility.com\n  client_id: x\n  client_secret: {env: S}\n  insecure_skip_tls_verify: true\n",
            "c.yaml:5: api.insecure_skip_tls_verify: certificate verification can only be skipped for a loopback base_url"
        ),
        (
            "api:\n  base_url: https://api.high-mobility.com\n  client_id: x\n  client_secret: {env: S}\n  paths: v2\n",
            "c.yaml:5: api.paths: expected platform or document, got \"v2\""
        ),
        (
            "api:\n  base_url: https://api.high-mobility.com\n  client_id: x\n  client_secret: {env: S}\nfleet:\n  sync: false\n",
            "c.yaml:6: fleet: nothing to poll"
        ),
        (
            "api:\n  base_url: https://api.high-mobility.com\n  client_id: x\n  client_secret: {env: S}\nfleet:\n  sync: maybe\n",
            "c.yaml:6: fleet.sync: expected true or false, got \"maybe\""
        ),
    ])
    func fleetAndTransportKeysAreChecked(text: String, message: String) {
        #expect {
            try ConfigLoader.parse(text, file: "c.yaml")
        } throws: { error in
            (error as? ConfigError)?.description.hasPrefix(message) == true
        }
    }

    @Test func proxyFromEnvironmentHonoursNoProxy() {
        let base = "https://api.high-mobility.com"
        #expect(
            ClientConfiguration.Proxy.fromEnvironment(["HTTPS_PROXY": "http://p.example:8080"], baseURL: base)
                == .init(host: "p.example", port: 8080))
        #expect(
            ClientConfiguration.Proxy.fromEnvironment(["https_proxy": "p.example:3128"], baseURL: base)
                == .init(host: "p.example", port: 3128))
        #expect(
            ClientConfiguration.Proxy.fromEnvironment(
                ["HTTPS_PROXY": "http://p.example:8080", "NO_PROXY": "localhost,.high-mobility.com"], baseURL: base)
                == nil)
        #expect(
            ClientConfiguration.Proxy.fromEnvironment(
                ["HTTPS_PROXY": "http://p.example:8080", "no_proxy": "*"], baseURL: base) == nil)
        #expect(
            ClientConfiguration.Proxy.fromEnvironment(["HTTP_PROXY": "http://p.example:8080"], baseURL: base) == nil,
            "HTTP_PROXY is not for https")
        #expect(
            ClientConfiguration.isLoopback("http://127.0.0.1:8080")
                && ClientConfiguration.isLoopback("https://localhost")
                && ClientConfiguration.isLoopback("http://[::1]:80"))
        #expect(!ClientConfiguration.isLoopback("https://127.evil.example"))
    }

    @Test func eventsSection() throws {
        let configuration = try ConfigLoader.parse(
            minimal + """

                events:
                  disabled: [door_opened, door_closed]
                  battery_low: {below: 15, rearm_above: 30}
                  vehicle_moved_km: 2.5
                  geofences:
                    - {name: depot, latitude: 52.5, longitude: 13.4, radius_m: 300}
                """, file: "c.yaml")
        #expect(configuration.events.disabled == [.doorOpened, .doorClosed])
        let retained = try ConfigLoader.parse(
            minimal + "\nretention:\n  samples_days: 30\n  polls_days: 7\n", file: "c.yaml")
        #expect(retained.retention == .init(samples: .seconds(30 * 86_400), polls: .seconds(7 * 86_400)))
        #expect(configuration.events.batteryLow == .init(below: 15, rearmAbove: 30))
        #expect(configuration.events.movedDistanceKm == 2.5)
        #expect(
            configuration.events.geofences == [.init(name: "depot", latitude: 52.5, longitude: 13.4, radiusMeters: 300)]
        )
    }

    @Test func missingFileIsAClearError() {
        #expect {
            try ConfigLoader.load(path: "/nonexistent/config.yaml")
        } throws: { error in
            (error as? ConfigError)?.description
                == "/nonexistent/config.yaml: cannot read the config file: does not exist"
        }
    }

    @Test func secretSources() throws {
        let directory = NSTemporaryDirectory() + "ft-secret-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "s3cret\n".write(toFile: directory + "/hm", atomically: true, encoding: .utf8)
        #expect(try SecretSource.file(directory + "/hm").resolve(file: "c.yaml", environment: [:]).value == "s3cret")
        #expect(
            try SecretSource.credential("hm").resolve(file: "c.yaml", environment: ["CREDENTIALS_DIRECTORY": directory])
                .value == "s3cret")
        #expect(try SecretSource.environment("HM").resolve(file: "c.yaml", environment: ["HM": "abc"]).value == "abc")
        #expect {
            try SecretSource.environment("HM").resolve(file: "c.yaml", environment: [:])
        } throws: { error in
            (error as? ConfigError)?.description == "c.yaml: api.client_secret: environment variable HM is not set"
        }
        #expect(throws: ConfigError.self) {
            try SecretSource.environment("HM").resolve(file: "c.yaml", environment: ["HM": "  \n"])
        }
        #expect(throws: ConfigError.self) {
            try SecretSource.environment("HM").resolve(file: "c.yaml", environment: ["HM": "line1\nline2"])
        }
        #expect(throws: ConfigError.self) {
            try SecretSource.credential("hm").resolve(file: "c.yaml", environment: [:])
        }
    }

    @Test func secretNeverPrints() {
        let secret = Secret("hunter2")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
    }
}

@Suite struct DurationParserTests {
    @Test(
        arguments: [
            ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("1h30m", 5_400_000), ("250ms", 250),
            ("2d", 172_800_000),
        ] as [(String, Int64)])
    func parses(text: String, milliseconds: Int64) {
        #expect(DurationParser.parse(text)?.milliseconds == milliseconds)
    }

    @Test(arguments: [
        "", "5", "m", "5 m", "-5s", "5x", "1.5h", "99999999999999s", "3651d", "1h1h", "30m1h", "1s500ms1s",
    ])
    func rejects(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test func formats() {
        #expect(DurationParser.format(.seconds(5400)) == "1h30m")
        #expect(DurationParser.format(.milliseconds(1500)) == "1s500ms")
    }
}
