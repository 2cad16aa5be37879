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
                file: path, key: nil, message: "cannot read the config file (missing, unreadable or not UTF-8)")
        }
        return try parse(text, file: path)
    }

    /// Parses config text; `file` is only used in errors.
    ///
    /// - Throws: The first ``ConfigError`` of ``validate(_:file:)``.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonConfiguration {
        let (configuration, errors) = try validate(text, file: file)
        if let first = errors.first { throw first }
        return configuration
    }

    /// Checks the config file at `path` and returns every error found (one per section at most:
    /// a section is read up to its first bad key), for `fleet-telemetry check-config`.
    public static func validate(path: String) -> (DaemonConfiguration?, [ConfigError]) {
        guard let text = readTextFile(path) else {
            return (
                nil,
                [
                    ConfigError(
                        file: path, key: nil, message: "cannot read the config file (missing, unreadable or not UTF-8)")
                ]
            )
        }
        do {
            let (configuration, errors) = try validate(text, file: path)
            return (errors.isEmpty ? configuration : nil, errors)
        } catch {
            return (nil, [error])
        }
    }

    /// Parses config text, collecting the errors of each section.
    ///
    /// - Throws: ``ConfigError`` when the text is not YAML or not a mapping at all.
    static func validate(_ text: String, file: String) throws(ConfigError) -> (DaemonConfiguration, [ConfigError]) {
        let root = try ConfigNode.parse(text, file: file)
        var errors: [ConfigError] = []
        let top = try root.mapping(
            allowed: [
                "api", "database", "polling", "fleet", "events", "retention", "archive", "vehicles", "log_level",
                "metrics",
            ], errors: &errors)
        func collect(_ body: () throws(ConfigError) -> Void) {
            do { try body() } catch { errors.append(error) }
        }
        // A stand-in while `api` is checked, so that the other sections are checked too.
        var configuration = DaemonConfiguration(
            api: .init(baseURL: "http://127.0.0.1", clientID: "-", clientSecret: .environment("-")))
        collect { () throws(ConfigError) in

            guard let apiNode = top["api"] else { throw root.error("missing key `api`") }
            let api = try apiNode.mapping(allowed: [
                "base_url", "client_id", "client_secret", "connect_timeout", "request_timeout", "max_response_bytes",
                "paths", "proxy", "insecure_skip_tls_verify",
            ])
            guard let baseURLNode = api["base_url"] else { throw apiNode.error("missing key `base_url`") }
            let baseURL = try baseURLNode.string()
            guard baseURL.hasPrefix("https://") || baseURL.hasPrefix("http://"), baseURL.count > 8,
                !baseURL.contains(" "),
                let url = URL(string: baseURL), let host = url.host, !host.isEmpty, url.query == nil,
                url.fragment == nil
            else {
                throw baseURLNode.error("expected an http:// or https:// URL, got \"\(baseURL)\"")
            }
            if let port = url.port, !(1...65535).contains(port) {
                throw baseURLNode.error("the port must be between 1 and 65535, got \(port)")
            }
            guard let clientIDNode = api["client_id"] else { throw apiNode.error("missing key `client_id`") }
            let clientID = try clientIDNode.string()
            guard !clientID.isEmpty else { throw clientIDNode.error("must not be empty") }
            guard let secretNode = api["client_secret"] else {
                throw apiNode.error("missing key `client_secret` (one of file, env, credential)")
            }
            let secretFields = try secretNode.mapping(allowed: ["file", "env", "credential"])
            guard secretFields.count == 1, let (kind, valueNode) = secretFields.first else {
                throw secretNode.error("give exactly one of `file`, `env` or `credential`")
            }
            let secretValue = try valueNode.string()
            guard !secretValue.isEmpty else { throw valueNode.error("must not be empty") }
            if kind == "credential", secretValue.contains("/") || secretValue == "." || secretValue == ".." {
                throw valueNode.error("a credential name is a file name in $CREDENTIALS_DIRECTORY, without '/'")
            }
            let secret: SecretSource =
                kind == "file"
                ? .file(secretValue) : kind == "env" ? .environment(secretValue) : .credential(secretValue)

            configuration = DaemonConfiguration(api: .init(baseURL: baseURL, clientID: clientID, clientSecret: secret))
            if let n = api["connect_timeout"] {
                configuration.api.connectTimeout = try n.duration(min: .milliseconds(100))
            }
            if let n = api["request_timeout"] {
                configuration.api.requestTimeout = try n.duration(min: .seconds(1))
                guard configuration.api.requestTimeout <= .seconds(600) else {
                    throw n.error("must be at most 10m, got \(try n.string())")
                }
            }
            if let n = api["max_response_bytes"] {
                configuration.api.maxResponseBytes = try n.integer(in: 1024...1_073_741_824)
            }
            if let n = api["paths"] {
                let text = try n.string()
                guard let family = PathFamily(rawValue: text) else {
                    throw n.error("expected platform or document, got \"\(text)\"")
                }
                configuration.api.pathFamily = family
            }
            if let n = api["proxy"] {
                let text = try n.string()
                guard ClientConfiguration.Proxy(url: text) != nil else {
                    throw n.error("expected a proxy URL such as http://proxy.example:3128, got \"\(text)\"")
                }
                configuration.api.proxy = text
            }
            if let n = api["insecure_skip_tls_verify"] {
                configuration.api.insecureSkipTLSVerify = try n.boolean()
                if configuration.api.insecureSkipTLSVerify && !ClientConfiguration.isLoopback(baseURL) {
                    throw n.error(
                        "certificate verification can only be skipped for a loopback base_url (an emulator on 127.0.0.1 or localhost)"
                    )
                }
            }
        }
        collect { () throws(ConfigError) in
            if let databaseNode = top["database"] {
                let database = try databaseNode.mapping(allowed: ["path", "stale_after", "max_size_mb"])
                if let n = database["max_size_mb"] {
                    configuration.maxSizeMegabytes = try n.integer(in: 1...16_000_000)
                }
                if let n = database["stale_after"] { configuration.staleAfter = try n.duration(min: .seconds(1)) }
                if let n = database["path"] {
                    configuration.databasePath = try n.string()
                    guard !configuration.databasePath.isEmpty else { throw n.error("must not be empty") }
                }
            }
        }
        collect { () throws(ConfigError) in
            if let pollingNode = top["polling"] {
                let polling = try pollingNode.mapping(allowed: [
                    "interval", "max_backoff", "max_retry_after", "max_concurrent_requests", "slow_interval",
                    "privacy_interval",
                    "intervals", "max_requests_per_second", "daily_budget_per_vehicle", "daily_budget",
                    "global_rate_limit_threshold",
                ])
                if let n = polling["interval"] { configuration.polling.interval = try n.duration(min: .seconds(1)) }
                if let n = polling["max_backoff"] {
                    configuration.polling.maxBackoff = try n.duration(min: .seconds(1))
                }
                if let n = polling["max_retry_after"] {
                    configuration.polling.maxRetryAfter = try n.duration(min: .seconds(1))
                }
                if let n = polling["max_concurrent_requests"] {
                    configuration.polling.maxConcurrentRequests = try n.integer(in: 1...1024)
                }
                if let n = polling["slow_interval"] {
                    configuration.polling.slowInterval = try n.duration(min: .seconds(1))
                }
                if let n = polling["privacy_interval"] {
                    configuration.polling.privacyInterval = try n.duration(min: .seconds(1))
                }
                if let n = polling["intervals"] {
                    let intervals = try n.mapping(allowed: Set(PollSchedule.VehicleActivity.allCases.map(\.rawValue)))
                    for (name, node) in intervals {
                        configuration.polling.activityIntervals[PollSchedule.VehicleActivity(rawValue: name)!] =
                            try node.duration(min: .seconds(1))
                    }
                }
                if let n = polling["max_requests_per_second"] {
                    let text = try n.string()
                    guard let rate = Double(text), rate >= 0.001, rate <= 100_000,
                        text.allSatisfy({ $0.isNumber || $0 == "." })
                    else {
                        throw n.error(
                            "expected a number of requests per second between 0.001 and 100000, got \"\(text)\"")
                    }
                    configuration.polling.maxRequestsPerSecond = rate
                }
                if let n = polling["daily_budget_per_vehicle"] {
                    configuration.polling.dailyBudgetPerVIN = try n.integer(in: 1...86_400_000)
                }
                if let n = polling["daily_budget"] {
                    configuration.polling.dailyBudgetApplication = try n.integer(in: 1...1_000_000_000)
                }
                if let n = polling["global_rate_limit_threshold"] {
                    configuration.polling.globalRateLimitThreshold = try n.integer(in: 1...100_000)
                }
            }
        }
        collect { () throws(ConfigError) in
            if let fleetNode = top["fleet"] {
                let fleet = try fleetNode.mapping(allowed: ["sync", "sync_interval"])
                if let n = fleet["sync"] { configuration.fleet.sync = try n.boolean() }
                if let n = fleet["sync_interval"] {
                    configuration.fleet.syncInterval = try n.duration(min: .seconds(10))
                }
            }
        }
        collect { () throws(ConfigError) in
            if let retentionNode = top["retention"] {
                let retention = try retentionNode.mapping(allowed: ["samples_days", "polls_days", "purge_revoked_days"])
                if let n = retention["purge_revoked_days"] {
                    configuration.retention.purgeRevoked = .seconds(Int64(try n.integer(in: 0...36_500)) * 86_400)
                }
                if let n = retention["samples_days"] {
                    configuration.retention.samples = .seconds(Int64(try n.integer(in: 1...36_500)) * 86_400)
                }
                if let n = retention["polls_days"] {
                    configuration.retention.polls = .seconds(Int64(try n.integer(in: 1...36_500)) * 86_400)
                }
            }
        }
        collect { () throws(ConfigError) in
            if let archiveNode = top["archive"] {
                let archive = try archiveNode.mapping(allowed: ["raw_days"])
                if let n = archive["raw_days"] { configuration.archiveRawDays = try n.integer(in: 0...3650) }
            }
        }
        collect { () throws(ConfigError) in
            if let eventsNode = top["events"] {
                configuration.events = try readEvents(eventsNode)
            }
        }
        collect { () throws(ConfigError) in
            if let vehiclesNode = top["vehicles"] {
                var seen = Set<VIN>()
                for item in try vehiclesNode.sequence() {
                    let text = try item.string()
                    let vin: VIN
                    do {
                        vin = try VIN(validating: text)
                    } catch {
                        throw item.error(String(describing: error))
                    }
                    guard seen.insert(vin).inserted else { throw item.error("VIN \(vin) is listed twice") }
                    configuration.vehicles.append(vin)
                }
            }
        }
        collect { () throws(ConfigError) in
            if top["vehicles"] != nil, top["fleet"]?.node.mapping?["sync"] == nil {
                configuration.fleet.sync = configuration.vehicles.isEmpty
            }
        }
        collect { () throws(ConfigError) in
            if !configuration.fleet.sync && configuration.vehicles.isEmpty {
                throw (top["fleet"] ?? root).error(
                    "nothing to poll: list VINs under `vehicles`, or turn on `fleet.sync`")
            }
        }
        collect { () throws(ConfigError) in
            if let n = top["log_level"] {
                let level = try n.string()
                guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
                    throw n.error(
                        "expected one of trace, debug, info, notice, warning, error, critical; got \"\(level)\"")
                }
                configuration.logLevel = level
            }
        }
        collect { () throws(ConfigError) in
            if let metricsNode = top["metrics"] {
                let metrics = try metricsNode.mapping(allowed: ["listen"])
                if let n = metrics["listen"] {
                    let text = try n.string()
                    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
                    guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
                        throw n.error("expected host:port such as 127.0.0.1:9464, got \"\(text)\"")
                    }
                    let host = parts[0].isEmpty ? "127.0.0.1" : String(parts[0])
                    configuration.metricsListen = .init(host: host, port: port)
                }
            }
        }
        return (configuration, errors)
    }
}

extension ConfigLoader {
    /// The `events` section.
    static func readEvents(_ node: ConfigNode) throws(ConfigError) -> EventRulesConfiguration {
        var events = EventRulesConfiguration()
        let fields = try node.mapping(allowed: [
            "disabled", "battery_low", "fuel_low", "vehicle_moved_km", "geofences", "vehicle_silent_after",
            "charging_session_timeout",
        ])
        if let n = fields["vehicle_silent_after"] { events.silentAfter = try n.duration(min: .seconds(60)) }
        if let n = fields["charging_session_timeout"] {
            events.chargingSessionTimeout = try n.duration(min: .seconds(60))
        }
        if let n = fields["disabled"] {
            for item in try n.sequence() {
                let name = try item.string()
                guard let type = EventType(rawValue: name) else {
                    throw item.error(
                        "unknown event type \"\(name)\"; known: \(EventType.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                events.disabled.insert(type)
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
        if let n = fields["battery_low"] { events.batteryLow = try threshold(n) }
        if let n = fields["fuel_low"] { events.fuelLow = try threshold(n) }
        if let n = fields["vehicle_moved_km"] { events.movedDistanceKm = try n.number(in: 0.01...100_000) }
        if let n = fields["geofences"] {
            var names = Set<String>()
            for item in try n.sequence() {
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
                events.geofences.append(
                    .init(
                        name: text, latitude: try lat.number(in: -90...90), longitude: try lon.number(in: -180...180),
                        radiusMeters: try radius.number(in: 1...10_000_000)))
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
            guard case .scalar(let scalar) = keyNode else { throw error("keys must be plain words") }
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

/// Levenshtein distance, for "did you mean" hints on misspelled keys.
func editDistance(_ a: String, _ b: String) -> Int {
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
