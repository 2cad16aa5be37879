import FleetClient
import FleetEvents
import FleetModel
import FleetScheduling
import Foundation
import Yams

/// Reads `config.yaml` strictly: an unknown or misspelled key, a wrong type or a bad value is a
/// ``ConfigError`` that names the file, the key and the line — never silently ignored.
///
/// FleetConfiguration owns the config file's format and its defaults; it never opens the
/// database, calls the API or starts anything (the daemon assembly does).
public enum ConfigLoader {
    /// Loads and validates the config file at `path`.
    ///
    /// - Throws: ``ConfigError`` when the file is missing, is not YAML, or has a bad key or value.
    public static func load(path: String) throws(ConfigError) -> DaemonConfiguration {
        guard let text = readTextFile(path) else {
            throw ConfigError(
                file: path, key: nil, message: "cannot read the config file: \(FileProblem.describe(path))")
        }
        return try parse(text, file: path)
    }

    /// Parses config text; `file` is only used in errors.
    ///
    /// - Throws: The first ``ConfigError`` of ``validate(_:file:)``.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonConfiguration {
        let (configuration, errors, _) = try validate(text, file: file)
        if let first = errors.first { throw first }
        return configuration
    }

    /// Checks the config file at `path` and returns every error found, each with its file, line
    /// and key, for `fleet-telemetry check-config`; the configuration when its `api` section is
    /// usable (check the errors before using it). A value that depends on a bad one (a geofence
    /// with a bad latitude, the `api` section without a usable `base_url`) is reported once.
    public static func validate(path: String) -> (DaemonConfiguration?, [ConfigError]) {
        guard let text = readTextFile(path) else {
            return (
                nil,
                [
                    ConfigError(
                        file: path, key: nil, message: "cannot read the config file: \(FileProblem.describe(path))")
                ]
            )
        }
        do {
            let (configuration, errors, apiUsable) = try validate(text, file: path)
            // With a usable `api` section the configuration is returned even with other errors,
            // so that the secret is checked too.
            return (apiUsable ? configuration : nil, errors)
        } catch {
            return (nil, [error])
        }
    }

    /// Parses config text, collecting every error: each key is checked on its own, so one bad
    /// value does not hide the next. `apiUsable` is false when the `api` section could not be
    /// read (the configuration then holds a stand-in for it).
    ///
    /// - Throws: ``ConfigError`` when the text is not YAML or not a mapping at all.
    package static func validate(
        _ text: String, file: String
    ) throws(ConfigError) -> (DaemonConfiguration, [ConfigError], apiUsable: Bool) {
        let root = try ConfigNode.parse(text, file: file)
        var report = ConfigReport()
        let top = try root.mapping(
            allowed: [
                "api", "database", "polling", "fleet", "events", "retention", "archive", "vehicles", "log_level",
                "metrics", "sinks", "consent",
            ], errors: &report.errors)
        // A stand-in while `api` is checked, so that the other sections are checked too.
        let api = readAPI(top["api"], root: root, report: &report)
        var configuration = DaemonConfiguration(
            api: api ?? .init(baseURL: "http://127.0.0.1", clientID: "-", clientSecret: .environment("-")))

        let database = report.section(
            top["database"], allowed: ["path", "stale_after", "max_size_mb", "repeat_heartbeat"])
        report.read(database["max_size_mb"], into: &configuration.maxSizeMegabytes) { n throws(ConfigError) in
            try n.integer(in: 1...16_000_000)
        }
        report.read(database["stale_after"], into: &configuration.staleAfter) { n throws(ConfigError) in
            try n.duration(min: .seconds(1))
        }
        report.read(database["repeat_heartbeat"], into: &configuration.repeatHeartbeat) { n throws(ConfigError) in
            let text = try n.string()
            if text == "0" { return .zero }
            let value = try n.duration(min: .zero)
            // Kept in whole seconds (`repeat_heartbeat_seconds`): 100ms would become 0, "keep all".
            if value != .zero && value < .seconds(1) {
                throw n.error("must be 0 (keep every repeat) or at least 1s, got \(text)")
            }
            return value
        }
        report.read(database["path"], into: &configuration.databasePath) { n throws(ConfigError) in
            let path = try n.string()
            guard !path.isEmpty else { throw n.error("must not be empty") }
            return relativeToConfig(path, file: file)
        }

        readPolling(top["polling"], into: &configuration.polling, report: &report)
        readSinks(top["sinks"], into: &configuration, report: &report)

        let fleet = report.section(top["fleet"], allowed: ["sync", "sync_interval"])
        report.read(fleet["sync"], into: &configuration.fleet.sync) { n throws(ConfigError) in try n.boolean() }
        report.read(fleet["sync_interval"], into: &configuration.fleet.syncInterval) { n throws(ConfigError) in
            try n.duration(min: .seconds(10))
        }

        let retention = report.section(
            top["retention"], allowed: ["samples_days", "polls_days", "purge_revoked_days"])
        func days(_ range: ClosedRange<Int>) -> (ConfigNode) throws(ConfigError) -> Duration {
            { n throws(ConfigError) in .seconds(Int64(try n.integer(in: range)) * 86_400) }
        }
        report.read(retention["purge_revoked_days"], into: &configuration.retention.purgeRevoked, days(0...36_500))
        report.read(retention["samples_days"], into: &configuration.retention.samples, days(1...36_500))
        report.read(retention["polls_days"], into: &configuration.retention.polls, days(1...36_500))

        let consent = report.section(
            top["consent"], allowed: ["authorization_url", "redirect_uri", "scope", "state_file"])
        func url(_ n: ConfigNode) throws(ConfigError) -> String {
            let text = try n.string()
            guard let scheme = URLComponents(string: text)?.scheme?.lowercased(), scheme == "http" || scheme == "https",
                URLComponents(string: text)?.host?.isEmpty == false
            else { throw n.error("must be an http:// or https:// URL, got \(text)") }
            return text
        }
        report.read(consent["authorization_url"], into: &configuration.consent.authorizationURL) {
            n throws(ConfigError) -> String in try url(n)
        }
        report.read(consent["redirect_uri"], into: &configuration.consent.redirectURI, url)
        report.read(consent["scope"], into: &configuration.consent.scope) { n throws(ConfigError) in
            let scope = try n.string()
            guard !scope.trimmingCharacters(in: .whitespaces).isEmpty,
                scope.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F || $0 == " " })
            else { throw n.error("must be scope names separated by spaces, e.g. vehicle:data") }
            return scope
        }
        report.read(consent["state_file"], into: &configuration.consent.stateFile) { n throws(ConfigError) -> String in
            let path = try n.string()
            guard !path.isEmpty, !path.hasSuffix("/") else { throw n.error("must be a file path") }
            let resolved = relativeToConfig(path, file: file)
            let database = configuration.databasePath
            guard ![database, database + "-wal", database + "-shm", file].contains(resolved) else {
                throw n.error("must not be the database, its WAL or this config file, got \(path)")
            }
            return resolved
        }

        let archive = report.section(top["archive"], allowed: ["raw_days"])
        report.read(archive["raw_days"], into: &configuration.archiveRawDays) { n throws(ConfigError) in
            try n.integer(in: 0...3650)
        }

        if let eventsNode = top["events"] {
            configuration.events = readEvents(eventsNode, report: &report)
        }

        var vehiclesValid = true
        if let vehiclesNode = top["vehicles"] {
            var seen = Set<VIN>()
            for item in report.check({ () throws(ConfigError) in try vehiclesNode.sequence() }) ?? [] {
                let vin = report.check { () throws(ConfigError) -> VIN in
                    let text = try item.string()
                    let vin: VIN
                    do {
                        vin = try VIN(validating: text)
                    } catch {
                        throw item.error(String(describing: error))
                    }
                    guard seen.insert(vin).inserted else { throw item.error("VIN \(vin) is listed twice") }
                    return vin
                }
                if let vin { configuration.vehicles.append(vin) } else { vehiclesValid = false }
            }
            if fleet["sync"] == nil { configuration.fleet.sync = configuration.vehicles.isEmpty && vehiclesValid }
        }
        // Vehicles connected by consent (a `consent` section) are something to poll too.
        if !configuration.fleet.sync && configuration.vehicles.isEmpty && vehiclesValid && top["consent"] == nil {
            report.errors.append(
                (top["fleet"] ?? root).error(
                    "nothing to poll: list VINs under `vehicles`, turn on `fleet.sync`, or add a `consent` section for vehicles their owners connect"
                ))
        }

        report.read(top["log_level"], into: &configuration.logLevel) { n throws(ConfigError) in
            let level = try n.string()
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
                throw n.error("expected one of trace, debug, info, notice, warning, error, critical; got \"\(level)\"")
            }
            return level
        }

        let metrics = report.section(top["metrics"], allowed: ["listen"])
        report.read(metrics["listen"], into: &configuration.metricsListen) {
            n throws(ConfigError) -> DaemonConfiguration.ListenAddress in
            let text = try n.string()
            guard let address = DaemonConfiguration.ListenAddress(text) else {
                throw n.error("expected host:port such as 127.0.0.1:9464 or [::1]:9464, got \"\(text)\"")
            }
            return address
        }
        return (configuration, report.errors, api != nil)
    }

    /// The `api` section, or `nil` (with the errors in `report`) when a required key is missing or bad.
    static func readAPI(_ node: ConfigNode?, root: ConfigNode, report: inout ConfigReport) -> DaemonConfiguration.API? {
        guard let node else {
            report.errors.append(root.error("missing key `api`"))
            return nil
        }
        let api = report.section(
            node,
            allowed: [
                "base_url", "client_id", "client_secret", "connect_timeout", "request_timeout", "max_response_bytes",
                "paths", "proxy", "insecure_skip_tls_verify",
            ])
        let baseURL = report.require(api["base_url"], in: node, "missing key `base_url`") { n throws(ConfigError) in
            let baseURL = try n.string()
            guard baseURL.hasPrefix("https://") || baseURL.hasPrefix("http://"), baseURL.count > 8,
                !baseURL.contains(" "),
                let url = URL(string: baseURL), let host = url.host, !host.isEmpty, url.query == nil,
                url.fragment == nil
            else {
                let shown = baseURL.contains("@") ? "(a URL with a user part, not shown)" : "\"\(baseURL)\""
                throw n.error("expected an http:// or https:// URL, got \(shown)")
            }
            if let port = url.port, !(1...65535).contains(port) {
                throw n.error("the port must be between 1 and 65535, got \(port)")
            }
            guard url.user == nil && url.password == nil else {
                // Not repeated in the message: it may hold a password.
                throw n.error("must not contain a user name or password; the client secret goes in api.client_secret")
            }
            return baseURL
        }
        let clientID = report.require(api["client_id"], in: node, "missing key `client_id`") { n throws(ConfigError) in
            let clientID = try n.string()
            guard !clientID.isEmpty else { throw n.error("must not be empty") }
            return clientID
        }
        let secret = report.require(
            api["client_secret"], in: node, "missing key `client_secret` (one of file, env, credential)"
        ) { n throws(ConfigError) -> SecretSource in try readSecret(n) }
        var result = DaemonConfiguration.API(
            baseURL: baseURL ?? "", clientID: clientID ?? "", clientSecret: secret ?? .environment(""))
        report.read(api["connect_timeout"], into: &result.connectTimeout) { n throws(ConfigError) in
            try n.duration(min: .milliseconds(100))
        }
        report.read(api["request_timeout"], into: &result.requestTimeout) { n throws(ConfigError) in
            let timeout = try n.duration(min: .seconds(1))
            guard timeout <= .seconds(600) else { throw n.error("must be at most 10m, got \(try n.string())") }
            return timeout
        }
        report.read(api["max_response_bytes"], into: &result.maxResponseBytes) { n throws(ConfigError) in
            try n.integer(in: 1024...1_073_741_824)
        }
        report.read(api["paths"], into: &result.pathFamily) { n throws(ConfigError) in
            let text = try n.string()
            guard let family = PathFamily(rawValue: text) else {
                throw n.error("expected platform or document, got \"\(text)\"")
            }
            return family
        }
        report.read(api["proxy"], into: &result.proxy) { n throws(ConfigError) -> String in
            let text = try n.string()
            guard ClientConfiguration.Proxy(url: text) != nil else {
                throw n.error("expected a proxy URL such as http://proxy.example:3128, got \"\(text)\"")
            }
            return text
        }
        report.read(api["insecure_skip_tls_verify"], into: &result.insecureSkipTLSVerify) { n throws(ConfigError) in
            let skip = try n.boolean()
            if skip, let baseURL, !ClientConfiguration.isLoopback(baseURL) {
                throw n.error(
                    "certificate verification can only be skipped for a loopback base_url (an emulator on 127.0.0.1 or localhost)"
                )
            }
            return skip
        }
        guard baseURL != nil, clientID != nil, secret != nil else { return nil }
        return result
    }

    /// A path from the config file: an absolute one as it is, a relative one from the config
    /// file's folder (not from the current folder, so every command finds the same files; the
    /// target's folder for a symlinked config), made absolute.
    public static func relativeToConfig(_ path: String, file: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        // The real file's folder: a symlinked config reads the files beside its target.
        var real = file
        if let resolved = realpath(file, nil) {
            real = String(cString: resolved)
            free(resolved)
        }
        var folder = (real as NSString).deletingLastPathComponent
        if !folder.hasPrefix("/") {
            let current = FileManager.default.currentDirectoryPath
            folder = folder.isEmpty ? current : current + "/" + folder
        }
        return ((folder + "/" + path) as NSString).standardizingPath
    }

    /// A secret's source: exactly one of `file` (relative to the config file), `env` or
    /// `credential` (a systemd credential name).
    static func readSecret(_ n: ConfigNode) throws(ConfigError) -> SecretSource {
        let fields = try n.mapping(allowed: ["file", "env", "credential"])
        guard fields.count == 1, let (kind, valueNode) = fields.first else {
            throw n.error("give exactly one of `file`, `env` or `credential`")
        }
        let value = try valueNode.string()
        guard !value.isEmpty else { throw valueNode.error("must not be empty") }
        if kind == "credential", value.contains("/") || value == "." || value == ".." {
            throw valueNode.error("a credential name is a file name in $CREDENTIALS_DIRECTORY, without '/'")
        }
        switch kind {
        case "file": return .file(relativeToConfig(value, file: n.file))
        case "env": return .environment(value)
        default: return .credential(value)
        }
    }

    /// The `sinks` section: where events are delivered.
    static func readSinks(
        _ node: ConfigNode?, into configuration: inout DaemonConfiguration, report: inout ConfigReport
    ) {
        let sinks = report.section(node, allowed: ["webhooks", "mqtt"])
        if let mqtt = sinks["mqtt"] { configuration.mqtt = readMQTT(mqtt, report: &report) }
        guard let list = sinks["webhooks"] else { return }
        var names = Set<String>()
        let items = report.check({ () throws(ConfigError) in try list.sequence() }) ?? []
        for (position, item) in items.enumerated() {
            let fields = report.section(
                item, allowed: ["name", "url", "secret", "types", "vins", "max_age", "timeout"])
            let name = report.require(fields["name"], in: item, "a webhook needs a `name`") {
                n throws(ConfigError) -> String in
                let name = try n.string()
                guard !name.isEmpty, name.count <= 64,
                    name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
                else { throw n.error("a name of letters, digits, - and _ (at most 64), got \"\(name)\"") }
                guard name != DaemonConfiguration.MQTT.sinkName else {
                    throw n.error("`\(name)` is the MQTT sink's name in the outbox; choose another")
                }
                guard names.insert(name).inserted else { throw n.error("webhook \(name) is named twice") }
                return name
            }
            let url = report.require(fields["url"], in: item, "a webhook needs a `url`") {
                n throws(ConfigError) -> String in
                let text = try n.string()
                guard text.hasPrefix("https://") || text.hasPrefix("http://"), let parsed = URLComponents(string: text),
                    parsed.host?.isEmpty == false, !text.contains(" ")
                else { throw n.error("expected an http:// or https:// URL, got \"\(text)\"") }
                if let port = parsed.port, !(1...65535).contains(port) {
                    throw n.error("the port must be 1–65535, got \(port)")
                }
                return text
            }
            let secret = report.require(
                fields["secret"], in: item, "a webhook needs a `secret` (one of file, env, credential)", readSecret)
            var webhook = DaemonConfiguration.Webhook(
                name: name ?? "", url: url ?? "", secret: secret ?? .environment(""))
            webhook.position = position
            report.read(fields["types"], into: &webhook.types, readEventTypes)
            report.read(fields["vins"], into: &webhook.vins, readVINs)
            report.read(fields["max_age"], into: &webhook.maxAge) { n throws(ConfigError) in
                try n.duration(min: .seconds(60))
            }
            report.read(fields["timeout"], into: &webhook.timeout) { n throws(ConfigError) in
                try n.duration(min: .seconds(1))
            }
            if name != nil && url != nil && secret != nil { configuration.webhooks.append(webhook) }
        }
    }

    /// `sinks.webhooks[].types`, `sinks.mqtt.types`: known event type names.
    static func readEventTypes(_ n: ConfigNode) throws(ConfigError) -> Set<EventType> {
        var types = Set<EventType>()
        if try n.sequence().isEmpty {
            throw n.error("an empty list would deliver nothing; leave `types` out for every type")
        }
        for item in try n.sequence() {
            let text = try item.string()
            guard let type = EventType(rawValue: text) else {
                let known = EventType.allCases.map(\.rawValue).sorted().joined(separator: ", ")
                throw item.error("unknown event type \"\(text)\"; known: \(known)")
            }
            types.insert(type)
        }
        return types
    }

    /// `sinks.webhooks[].vins`, `sinks.mqtt.vins`: valid VINs.
    static func readVINs(_ n: ConfigNode) throws(ConfigError) -> Set<VIN> {
        var vins = Set<VIN>()
        for item in try n.sequence() {
            do {
                vins.insert(try VIN(validating: try item.string()))
            } catch let error as ConfigError {
                throw error
            } catch {
                throw item.error(String(describing: error))
            }
        }
        return vins
    }

    /// `sinks.mqtt`: the broker events and state are published to.
    static func readMQTT(_ node: ConfigNode, report: inout ConfigReport) -> DaemonConfiguration.MQTT? {
        let fields = report.section(
            node,
            allowed: [
                "url", "prefix", "username", "password", "client_id", "ca_file", "types", "vins", "max_age",
                "timeout", "keepalive", "home_assistant",
            ])
        let url = report.require(fields["url"], in: node, "the MQTT sink needs a `url` (mqtt:// or mqtts://)") {
            n throws(ConfigError) -> DaemonConfiguration.MQTT.BrokerURL in
            let text = try n.string()
            guard let url = DaemonConfiguration.MQTT.BrokerURL(text) else {
                throw n.error("expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got \"\(text)\"")
            }
            return url
        }
        // Read on without a good URL, so that every error is reported at once.
        var mqtt = DaemonConfiguration.MQTT(url: url ?? DaemonConfiguration.MQTT.BrokerURL("mqtt://invalid")!)
        report.read(fields["prefix"], into: &mqtt.prefix) { n throws(ConfigError) -> String in
            let text = try n.string()
            guard !text.isEmpty, !text.hasPrefix("/"), !text.hasPrefix("$"), !text.hasSuffix("/"), !text.contains("//"),
                !text.contains(where: { $0 == "+" || $0 == "#" || $0 == "\0" }), text.utf8.count <= 200
            else {
                throw n.error(
                    "a topic prefix without +, #, a leading $ (the broker's own topics), leading, trailing or doubled /, got \"\(text)\""
                )
            }
            return text
        }
        report.read(fields["username"], into: &mqtt.username) { n throws(ConfigError) -> String in
            let text = try n.string()
            guard !text.isEmpty else { throw n.error("must not be empty") }
            return text
        }
        report.read(fields["password"], into: &mqtt.password, readSecret)
        report.read(fields["client_id"], into: &mqtt.clientID) { n throws(ConfigError) -> String in
            let text = try n.string()
            guard !text.isEmpty, text.utf8.count <= 128 else { throw n.error("1 to 128 bytes") }
            return text
        }
        report.read(fields["ca_file"], into: &mqtt.caFile) { n throws(ConfigError) -> String in
            let text = try n.string()
            guard !text.isEmpty else { throw n.error("must not be empty") }
            return relativeToConfig(text, file: n.file)
        }
        report.read(fields["types"], into: &mqtt.types, readEventTypes)
        report.read(fields["vins"], into: &mqtt.vins, readVINs)
        report.read(fields["max_age"], into: &mqtt.maxAge) { n throws(ConfigError) in try n.duration(min: .seconds(60))
        }
        report.read(fields["timeout"], into: &mqtt.timeout) { n throws(ConfigError) in try n.duration(min: .seconds(1))
        }
        report.read(fields["keepalive"], into: &mqtt.keepAlive) { n throws(ConfigError) in
            let value = try n.duration(min: .seconds(5))
            guard value <= .seconds(65_535) else { throw n.error("must be at most 65535s") }
            return value
        }
        report.read(fields["home_assistant"], into: &mqtt.homeAssistant) { n throws(ConfigError) in try n.boolean() }
        if let url, mqtt.caFile != nil, !url.useTLS, let node = fields["ca_file"] {
            report.errors.append(node.error("a CA file is only used with mqtts://"))
        }
        return url == nil ? nil : mqtt
    }

    /// The `polling` section.
    static func readPolling(
        _ node: ConfigNode?, into polling: inout DaemonConfiguration.Polling, report: inout ConfigReport
    ) {
        let fields = report.section(
            node,
            allowed: [
                "interval", "max_backoff", "max_retry_after", "max_concurrent_requests", "slow_interval",
                "privacy_interval", "intervals", "max_requests_per_second", "daily_budget_per_vehicle", "daily_budget",
                "global_rate_limit_threshold",
            ])
        func duration(_ n: ConfigNode) throws(ConfigError) -> Duration { try n.duration(min: .seconds(1)) }
        report.read(fields["interval"], into: &polling.interval, duration)
        report.read(fields["max_backoff"], into: &polling.maxBackoff, duration)
        report.read(fields["max_retry_after"], into: &polling.maxRetryAfter, duration)
        report.read(fields["slow_interval"], into: &polling.slowInterval, duration)
        report.read(fields["privacy_interval"], into: &polling.privacyInterval, duration)
        report.read(fields["max_concurrent_requests"], into: &polling.maxConcurrentRequests) { n throws(ConfigError) in
            try n.integer(in: 1...1024)
        }
        let intervals = report.section(
            fields["intervals"], allowed: Set(PollSchedule.VehicleActivity.allCases.map(\.rawValue)))
        for (name, node) in intervals {
            guard let activity = PollSchedule.VehicleActivity(rawValue: name) else { continue }
            if let value = report.check({ () throws(ConfigError) in try duration(node) }) {
                polling.activityIntervals[activity] = value
            }
        }
        report.read(fields["max_requests_per_second"], into: &polling.maxRequestsPerSecond) {
            n throws(ConfigError) -> Double in
            let text = try n.string()
            guard let rate = Double(text), rate >= 0.001, rate <= 100_000,
                text.allSatisfy({ $0.isNumber || $0 == "." })
            else {
                throw n.error("expected a number of requests per second between 0.001 and 100000, got \"\(text)\"")
            }
            return rate
        }
        report.read(fields["daily_budget_per_vehicle"], into: &polling.dailyBudgetPerVIN) { n throws(ConfigError) in
            try n.integer(in: 1...86_400_000)
        }
        report.read(fields["daily_budget"], into: &polling.dailyBudgetApplication) { n throws(ConfigError) in
            try n.integer(in: 1...1_000_000_000)
        }
        report.read(fields["global_rate_limit_threshold"], into: &polling.globalRateLimitThreshold) {
            n throws(ConfigError) in try n.integer(in: 1...100_000)
        }
    }
}

/// The errors found while reading a config file: each key is read on its own, a bad one is
/// recorded and the reading goes on.
struct ConfigReport {
    var errors: [ConfigError] = []

    /// The body's value, or `nil` with its error recorded.
    mutating func check<T>(_ body: () throws(ConfigError) -> T) -> T? {
        do { return try body() } catch {
            errors.append(error)
            return nil
        }
    }

    /// A section's keys (an unknown key is recorded and skipped); empty when the section is
    /// absent or not a mapping.
    mutating func section(_ node: ConfigNode?, allowed: Set<String>) -> [String: ConfigNode] {
        guard let node else { return [:] }
        var found: [ConfigError] = []
        defer { errors += found }
        do { return try node.mapping(allowed: allowed, errors: &found) } catch {
            found.append(error)
            return [:]
        }
    }

    /// Reads an optional key into `target`; a bad value is recorded and `target` keeps its default.
    mutating func read<T>(_ node: ConfigNode?, into target: inout T, _ parse: (ConfigNode) throws(ConfigError) -> T) {
        guard let node, let value = check({ () throws(ConfigError) in try parse(node) }) else { return }
        target = value
    }

    /// Reads an optional key into an optional `target`.
    mutating func read<T>(_ node: ConfigNode?, into target: inout T?, _ parse: (ConfigNode) throws(ConfigError) -> T) {
        guard let node, let value = check({ () throws(ConfigError) in try parse(node) }) else { return }
        target = value
    }

    /// Reads a required key; a missing one is recorded as `missing` located at `parent`.
    mutating func require<T>(
        _ node: ConfigNode?, in parent: ConfigNode, _ missing: String, _ parse: (ConfigNode) throws(ConfigError) -> T
    ) -> T? {
        guard let node else {
            errors.append(parent.error(missing))
            return nil
        }
        return check { () throws(ConfigError) in try parse(node) }
    }
}

extension ConfigLoader {
    /// The `events` section; each bad key, event type or geofence is recorded in `report`.
    static func readEvents(_ node: ConfigNode, report: inout ConfigReport) -> EventRulesConfiguration {
        var events = EventRulesConfiguration()
        let fields = report.section(
            node,
            allowed: [
                "disabled", "battery_low", "fuel_low", "vehicle_moved_km", "geofences", "vehicle_silent_after",
                "charging_session_timeout",
            ])
        report.read(fields["vehicle_silent_after"], into: &events.silentAfter) { n throws(ConfigError) in
            try n.duration(min: .seconds(60))
        }
        report.read(fields["charging_session_timeout"], into: &events.chargingSessionTimeout) {
            n throws(ConfigError) in try n.duration(min: .seconds(60))
        }
        if let n = fields["disabled"] {
            for item in report.check({ () throws(ConfigError) in try n.sequence() }) ?? [] {
                let type = report.check { () throws(ConfigError) -> EventType in
                    let name = try item.string()
                    guard let type = EventType(rawValue: name) else {
                        throw item.error(
                            "unknown event type \"\(name)\"; known: \(EventType.allCases.map(\.rawValue).joined(separator: ", "))"
                        )
                    }
                    return type
                }
                if let type { events.disabled.insert(type) }
            }
        }
        func threshold(_ node: ConfigNode) throws(ConfigError) -> EventRulesConfiguration.Threshold {
            let fields = try node.mapping(allowed: ["below", "rearm_above"])
            guard let below = fields["below"], let rearm = fields["rearm_above"] else {
                throw node.error("give `below` and `rearm_above` (percent)")
            }
            let low = try below.number(in: 0...100)
            let high = try rearm.number(in: 0...100)
            guard high >= low else { throw rearm.error("must be at least `below` (\(low))") }
            return .init(below: low, rearmAbove: high)
        }
        report.read(fields["battery_low"], into: &events.batteryLow, threshold)
        report.read(fields["fuel_low"], into: &events.fuelLow, threshold)
        report.read(fields["vehicle_moved_km"], into: &events.movedDistanceKm) { n throws(ConfigError) in
            try n.number(in: 0.01...100_000)
        }
        if let n = fields["geofences"] {
            var names = Set<String>()
            for item in report.check({ () throws(ConfigError) in try n.sequence() }) ?? [] {
                let fence = report.check { () throws(ConfigError) -> EventRulesConfiguration.Geofence in
                    let fence = try item.mapping(allowed: ["name", "latitude", "longitude", "radius_m"])
                    guard let name = fence["name"], let lat = fence["latitude"], let lon = fence["longitude"],
                        let radius = fence["radius_m"]
                    else {
                        throw item.error("a geofence needs name, latitude, longitude and radius_m")
                    }
                    let text = try name.string()
                    guard !text.isEmpty, names.insert(text).inserted else {
                        throw name.error("geofence names must be non-empty and unique")
                    }
                    return .init(
                        name: text, latitude: try lat.number(in: -90...90), longitude: try lon.number(in: -180...180),
                        radiusMeters: try radius.number(in: 1...10_000_000))
                }
                if let fence { events.geofences.append(fence) }
            }
        }
        return events
    }

    /// A YAML syntax error as one line with the line number and the parser's own reason.
    static func describe(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let reason = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return ConfigError(file: file, key: nil, line: mark.line, message: "not valid YAML: \(reason)")
        case .reader(let problem, let offset, _, let yaml):
            // The reader stops at a byte (a control character, invalid UTF-8): its line.
            let line = offset.map { offset in yaml.utf8.prefix(offset).reduce(1) { $1 == 0x0A ? $0 + 1 : $0 } }
            return ConfigError(file: file, key: nil, line: line ?? 1, message: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                file: file, key: nil, line: context.mark.line,
                message: "key given twice: \(duplicates.joined(separator: ", "))")
        default:
            return ConfigError(
                file: file, key: nil,
                message: "not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
    }
}

/// A YAML node with the dotted key that led to it, for precise errors: the strict reader every
/// fleet-telemetry config file goes through.
public struct ConfigNode {
    let node: Node
    /// The dotted key of this node (`polling.interval`, `faults[2].status`), `nil` at the root.
    public let key: String?
    let file: String

    init(node: Node, key: String?, file: String) {
        self.node = node
        self.key = key
        self.file = file
    }

    /// Parses a whole file's text.
    ///
    /// - Throws: ``ConfigError`` for a YAML syntax error or an empty file.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigNode {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigLoader.describe(error, file: file)
        } catch {
            throw ConfigError(
                file: file, key: nil,
                message: "not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let node else { throw ConfigError(file: file, key: nil, message: "the file is empty") }
        return ConfigNode(node: node, key: nil, file: file)
    }

    /// An error located at this node.
    public func error(_ message: String) -> ConfigError {
        ConfigError(file: file, key: key, line: node.mark.map { $0.line }, message: message)
    }

    private func child(_ name: String, _ node: Node) -> ConfigNode {
        ConfigNode(node: node, key: key.map { "\($0).\(name)" } ?? name, file: file)
    }

    /// The mapping's values by key; a key outside `allowed` is added to `errors` and skipped.
    public func mapping(allowed: Set<String>, errors: inout [ConfigError]) throws(ConfigError) -> [String: ConfigNode] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping of keys") }
        var result: [String: ConfigNode] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode, allowed.contains(scalar.string) else {
                do {
                    _ = try ConfigNode(node: .mapping([keyNode: valueNode]), key: key, file: file).mapping(
                        allowed: allowed)
                } catch {
                    errors.append(error)
                }
                continue
            }
            result[scalar.string] = child(scalar.string, valueNode)
        }
        return result
    }

    /// The mapping's values by key; any key outside `allowed` is an error.
    public func mapping(allowed: Set<String>) throws(ConfigError) -> [String: ConfigNode] {
        guard case .mapping(let mapping) = node else { throw error("expected a mapping of keys") }
        var result: [String: ConfigNode] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                // At the key's own line (this node may be one built to check a single key).
                throw ConfigNode(node: keyNode, key: key, file: file).error("keys must be plain words")
            }
            let name = scalar.string
            let childNode = child(name, valueNode)
            guard allowed.contains(name) else {
                let suggestion = allowed.sorted().min { editDistance($0, name) < editDistance($1, name) }
                let hint = suggestion.map { editDistance($0, name) <= 3 ? " (did you mean `\($0)`?)" : "" } ?? ""
                let keyLocation = ConfigNode(node: keyNode, key: childNode.key, file: file)
                throw keyLocation.error("unknown key\(hint); allowed here: \(allowed.sorted().joined(separator: ", "))")
            }
            guard result[name] == nil else { throw childNode.error("key given twice") }
            result[name] = childNode
        }
        return result
    }

    /// The items of a YAML list, keyed `key[index]`.
    ///
    /// - Throws: ``ConfigError`` when the node is not a list.
    public func sequence() throws(ConfigError) -> [ConfigNode] {
        guard case .sequence(let sequence) = node else { throw error("expected a list") }
        return sequence.enumerated().map { ConfigNode(node: $0.element, key: "\(key ?? "")[\($0.offset)]", file: file) }
    }

    /// The scalar as written (numbers and booleans as their text).
    ///
    /// - Throws: ``ConfigError`` when the node is a list or a mapping.
    public func string() throws(ConfigError) -> String {
        guard case .scalar(let scalar) = node else { throw error("expected a single value") }
        return scalar.string
    }

    /// `true`/`yes`/`on` or `false`/`no`/`off`.
    ///
    /// - Throws: ``ConfigError`` for anything else.
    public func boolean() throws(ConfigError) -> Bool {
        let text = try string()
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false, got \"\(text)\"")
        }
    }

    /// A finite decimal number within `range`.
    ///
    /// - Throws: ``ConfigError`` naming the range or the bad text.
    public func number(in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        let text = try string()
        guard let value = Double(text), value.isFinite else { throw error("expected a number, got \"\(text)\"") }
        guard range.contains(value) else {
            throw error("must be between \(range.lowerBound) and \(range.upperBound), got \(text)")
        }
        return value
    }

    /// A whole number within `range`.
    ///
    /// - Throws: ``ConfigError`` naming the range or the bad text.
    public func integer(in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try string()
        guard let value = Int(text) else { throw error("expected a whole number, got \"\(text)\"") }
        guard range.contains(value) else {
            throw error("must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    /// A duration (`250ms`, `30s`, `5m`, `1h`, `2d`, `1h30m`) of at least `min` and at most 10 years.
    ///
    /// - Throws: ``ConfigError`` for a malformed, too short or too long value.
    public func duration(min: Duration) throws(ConfigError) -> Duration {
        let text = try string()
        let value: Duration
        switch DurationParser.check(text) {
        case .valid(let duration): value = duration
        case .tooLong: throw error("must be at most 3650d (10 years), got \(text)")
        case .malformed: throw error("expected a duration such as 30s, 5m, 1h or 1h30m; got \"\(text)\"")
        }
        guard value >= min else { throw error("must be at least \(DurationParser.format(min)), got \(text)") }
        return value
    }
}

/// Levenshtein distance, for "did you mean" hints on misspelled keys and property names.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = Swift.min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
