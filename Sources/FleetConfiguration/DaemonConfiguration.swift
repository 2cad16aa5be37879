import FleetClient
import FleetEvents
import FleetModel
import FleetScheduling

/// Everything the daemon is configured with: the parsed `config.yaml`.
///
/// The file format, with every key, is `config/fleet-telemetry.yaml`; ``ConfigLoader`` reads it.
public struct DaemonConfiguration: Sendable {
    /// `api`: how to reach the High Mobility API.
    public struct API: Sendable, Hashable {
        /// `api.base_url`, e.g. `https://sandbox.api.high-mobility.com`.
        public var baseURL: String
        /// `api.client_id`.
        public var clientID: String
        /// `api.client_secret`: where the client secret is read from.
        public var clientSecret: SecretSource
        /// `api.connect_timeout` (default 10s).
        public var connectTimeout: Duration = .seconds(10)
        /// `api.request_timeout` (default 30s).
        public var requestTimeout: Duration = .seconds(30)
        /// `api.max_response_bytes` (default 4194304).
        public var maxResponseBytes: Int = 4 * 1024 * 1024
        /// `api.paths`: `platform` (default) or `document`.
        public var pathFamily: PathFamily = .platform
        /// `api.proxy`: `http://host:port`; when absent, `HTTPS_PROXY`/`NO_PROXY` from the environment.
        public var proxy: String?
        /// `api.insecure_skip_tls_verify` (default false); only accepted for a loopback `base_url`.
        public var insecureSkipTLSVerify = false
    }

    /// `fleet`: the fleet clearance sync.
    public struct Fleet: Sendable, Hashable {
        /// `fleet.sync`: list the fleet and poll its `approved` VINs (default: on when `vehicles` is empty).
        public var sync: Bool
        /// `fleet.sync_interval` (default 1h).
        public var syncInterval: Duration = .seconds(3600)

        public init(sync: Bool, syncInterval: Duration = .seconds(3600)) {
            self.sync = sync
            self.syncInterval = syncInterval
        }
    }

    /// `polling`: the schedule.
    public struct Polling: Sendable, Hashable {
        /// `polling.interval`: each VIN is polled this often (default 5m).
        public var interval: Duration = .seconds(300)
        /// `polling.max_backoff`: the longest wait after repeated failures (default 1h).
        public var maxBackoff: Duration = .seconds(3600)
        /// `polling.max_retry_after`: the longest `Retry-After` honoured as given (default 24h).
        public var maxRetryAfter: Duration = .seconds(86_400)
        /// `polling.max_concurrent_requests` (default 4).
        public var maxConcurrentRequests: Int = 4
        /// `polling.slow_interval`: cadence of a vehicle asleep, without data yet or not cleared
        /// (default 6 × interval).
        public var slowInterval: Duration?
        /// `polling.privacy_interval`: cadence of a vehicle in privacy mode (default 6h).
        public var privacyInterval: Duration = .seconds(6 * 3600)
        /// `polling.intervals.driving|charging|parked`: interval by the vehicle's last activity.
        public var activityIntervals: [PollSchedule.VehicleActivity: Duration] = [:]
        /// `polling.max_requests_per_second`: application-wide request rate cap (default none).
        public var maxRequestsPerSecond: Double?
        /// `polling.daily_budget_per_vehicle`: polls per VIN per UTC day (default none).
        public var dailyBudgetPerVIN: Int?
        /// `polling.daily_budget`: polls per UTC day for the whole application (default none).
        public var dailyBudgetApplication: Int?
        /// `polling.global_rate_limit_threshold`: 429s for this many VINs within a minute pause
        /// the whole fleet (default 3).
        public var globalRateLimitThreshold: Int = 3

        /// The scheduler's policy for these settings.
        public var policy: PollSchedule.Policy {
            PollSchedule.Policy(
                interval: interval, maxBackoff: maxBackoff, maxRetryAfter: maxRetryAfter, slowInterval: slowInterval,
                privacyInterval: privacyInterval, activityIntervals: activityIntervals,
                maxRequestsPerSecond: maxRequestsPerSecond,
                dailyBudgetPerVIN: dailyBudgetPerVIN, dailyBudgetApplication: dailyBudgetApplication,
                globalRateLimitThreshold: globalRateLimitThreshold)
        }

        /// The settings of `policy` (what a test or an embedding program has as a policy).
        public init(policy: PollSchedule.Policy, maxConcurrentRequests: Int = 4) {
            self.init(
                interval: policy.interval, maxBackoff: policy.maxBackoff, maxRetryAfter: policy.maxRetryAfter,
                maxConcurrentRequests: maxConcurrentRequests)
            slowInterval = policy.slowInterval
            privacyInterval = policy.privacyInterval
            activityIntervals = policy.activityIntervals
            maxRequestsPerSecond = policy.maxRequestsPerSecond
            dailyBudgetPerVIN = policy.dailyBudgetPerVIN
            dailyBudgetApplication = policy.dailyBudgetApplication
            globalRateLimitThreshold = policy.globalRateLimitThreshold
        }

        public init(
            interval: Duration = .seconds(300), maxBackoff: Duration = .seconds(3600),
            maxRetryAfter: Duration = .seconds(86_400), maxConcurrentRequests: Int = 4
        ) {
            self.interval = interval
            self.maxBackoff = maxBackoff
            self.maxRetryAfter = maxRetryAfter
            self.maxConcurrentRequests = maxConcurrentRequests
        }
    }

    public var api: API
    /// `database.path` (default `/var/lib/fleet-telemetry/telemetry.sqlite`).
    public var databasePath: String = "/var/lib/fleet-telemetry/telemetry.sqlite"
    public var polling = Polling()
    /// `fleet`: the clearance sync.
    public var fleet = Fleet(sync: true)
    /// `events`: which rules fire, and their thresholds.
    public var events = EventRulesConfiguration()
    /// `retention`: how long history is kept.
    public var retention = Retention()

    /// `consent`: vehicles their owners connect (the `authorization_code` flow).
    public var consent = Consent()

    /// `consent`: how `fleet-telemetry consent` builds the authorization URL and where the grants live.
    public struct Consent: Sendable, Hashable {
        /// `consent.authorization_url`: the owner's consent page; `nil` (the default) is High
        /// Mobility's `https://owner-panel.high-mobility.com/oauth/new` for its API hosts, and
        /// `api.base_url` + `/oauth/new` for any other (the emulator). See ``authorizationURL(baseURL:)``.
        public var authorizationURL: String?
        /// `consent.redirect_uri`: where the owner's browser is sent back with the code (default
        /// `http://127.0.0.1:8765/callback`, the address `consent url --listen` listens on).
        public var redirectURI = "http://127.0.0.1:8765/callback"
        /// `consent.scope`: the scope asked for (default `vehicle:data`).
        public var scope = "vehicle:data"
        /// `consent.state_file`: the grants' file (default `database.path` + `-consent.json`).
        public var stateFile: String?

        public init() {}

        /// The consent page for an API at `baseURL` (``authorizationURL`` when set).
        public func authorizationURL(baseURL: String) -> String {
            if let authorizationURL { return authorizationURL }
            let host = URLComponents(string: baseURL)?.host ?? ""
            if host == "high-mobility.com" || host.hasSuffix(".high-mobility.com") {
                return "https://owner-panel.high-mobility.com/oauth/new"
            }
            return (baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL) + "/oauth/new"
        }
    }

    /// The consent state file (``Consent/stateFile``, else beside the database).
    public var consentStateFile: String { consent.stateFile ?? databasePath + "-consent.json" }

    /// `retention`: rows older than these are pruned once a minute, in small batches.
    public struct Retention: Sendable, Hashable {
        /// `retention.samples_days`: samples observed longer ago are deleted (default: kept).
        public var samples: Duration?
        /// `retention.polls_days`: polls requested longer ago are deleted (default: kept).
        public var polls: Duration?
        /// `retention.purge_revoked_days`: a vehicle whose clearance ended (`revoked`, `rejected`,
        /// `canceled`) this long ago has all its rows purged, as `fleet-telemetry purge` does
        /// (default: kept; 0 purges at the next maintenance run).
        public var purgeRevoked: Duration?
        public init(samples: Duration? = nil, polls: Duration? = nil) {
            self.samples = samples
            self.polls = polls
        }
    }
    /// `archive.raw_days`: days each raw vehicle-data response is kept in `raw_responses`, for
    /// `fleet-telemetry reprocess` (default 7; 0 keeps none).
    public var archiveRawDays = DaemonConfiguration.defaultArchiveRawDays
    /// The default of `archive.raw_days`: 7.
    public static let defaultArchiveRawDays = 7
    /// `database.stale_after`: a `latest` value observed longer ago is shown `stale` in
    /// `latest_view` and `status` (default 1 h).
    public var staleAfter: Duration = .seconds(3600)
    /// `database.repeat_heartbeat`: a value re-observed unchanged is stored again in the history
    /// at most this often (default 1 h); in between a repeat only moves the series' newest
    /// observation time. `0` stores every repeat with a new observation time.
    public var repeatHeartbeat: Duration = .seconds(3600)
    /// `database.max_size_mb`: a cap on the database file, in MiB (default: none, the disk is the
    /// limit). At the cap, writes fail as on a full disk and are retried; retention makes room.
    public var maxSizeMegabytes: Int?
    /// `vehicles`: VINs always polled, whatever the fleet sync says (e.g. for an API without clearance).
    public var vehicles: [VIN] = []
    /// `log_level`: `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical` (default `info`).
    public var logLevel: String = "info"
    /// `metrics.listen`: the address of the metrics and health endpoint (`GET /metrics`,
    /// `GET /healthz`), `nil` (the default) for none.
    public var metricsListen: ListenAddress?

    /// A `host:port` to listen on.
    /// `sinks.webhooks[]`: an endpoint events are POSTed to, signed as Standard Webhooks says.
    public struct Webhook: Sendable, Hashable {
        /// `name`: the outbox's sink name, in the CLI and metrics.
        public var name: String
        /// `url`: `http://` or `https://`.
        public var url: String
        /// `secret`: `whsec_…`, read like the client secret.
        public var secret: SecretSource
        /// `types`: only these event types (default: every type).
        public var types: Set<EventType>?
        /// `vins`: only these vehicles' events (default: every vehicle).
        public var vins: Set<VIN>?
        /// `max_age`: an event still undelivered this long after its detection is dead (default 24h).
        public var maxAge: Duration = .seconds(86_400)
        /// `timeout`: the longest wait for the endpoint's answer (default 10s).
        public var timeout: Duration = .seconds(10)
        /// Its index in `sinks.webhooks`, for the keys of error messages.
        public var position = 0

        public init(name: String, url: String, secret: SecretSource) {
            self.name = name
            self.url = url
            self.secret = secret
        }
    }

    /// `sinks.webhooks`.
    public var webhooks: [Webhook] = []

    /// `sinks.mqtt`: the MQTT broker events and state are published to.
    public struct MQTT: Sendable, Hashable {
        /// The MQTT sink's name in the outbox, the CLI and metrics (no webhook may take it).
        public static let sinkName = "mqtt"

        /// `url`: `mqtt://HOST[:PORT]` (1883 by default) or `mqtts://HOST[:PORT]` (TLS, 8883).
        public struct BrokerURL: Sendable, Hashable, CustomStringConvertible {
            /// A host name, an IPv4 address or an IPv6 address (without brackets).
            public var host: String
            /// 1–65535; 1883 by default, 8883 with TLS.
            public var port: Int
            /// `mqtts://`: TLS, the broker's certificate and host name verified.
            public var useTLS: Bool

            /// `nil` unless `text` is `mqtt://` or `mqtts://`, a host (a name, an address or an
            /// IPv6 address in brackets) and an optional port 1–65535, with no path.
            public init?(_ text: String) {
                let rest: Substring
                if text.hasPrefix("mqtts://") {
                    useTLS = true
                    rest = text.dropFirst(8)
                } else if text.hasPrefix("mqtt://") {
                    useTLS = false
                    rest = text.dropFirst(7)
                } else {
                    return nil
                }
                var hostPart = rest
                var portPart: Substring?
                if rest.hasPrefix("[") {
                    guard let close = rest.firstIndex(of: "]") else { return nil }
                    hostPart = rest[rest.index(after: rest.startIndex)..<close]
                    let after = rest[rest.index(after: close)...]
                    if !after.isEmpty {
                        guard after.hasPrefix(":") else { return nil }
                        portPart = after.dropFirst()
                    }
                } else if let colon = rest.lastIndex(of: ":") {
                    hostPart = rest[..<colon]
                    portPart = rest[rest.index(after: colon)...]
                }
                guard !hostPart.isEmpty,
                    hostPart.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._:".contains($0)) })
                else { return nil }
                host = String(hostPart)
                if let portPart {
                    guard let port = Int(portPart), (1...65535).contains(port) else { return nil }
                    self.port = port
                } else {
                    port = useTLS ? 8883 : 1883
                }
            }

            public var description: String {
                "\(useTLS ? "mqtts" : "mqtt")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            }
        }

        /// `url`: the broker.
        public var url: BrokerURL
        /// `prefix`: the first topic level (default `fleet-telemetry`).
        public var prefix = "fleet-telemetry"
        /// `username`: MQTT user name (default none).
        public var username: String?
        /// `password`: read like the client secret (file, env, credential); default none.
        public var password: SecretSource?
        /// `client_id`: the MQTT client identifier (default `fleet-telemetry-<host name>-<process id>`).
        public var clientID: String?
        /// `ca_file`: the CA certificates (PEM) an `mqtts://` broker is checked against
        /// (default: the system's).
        public var caFile: String?
        /// `types`: only these event types (default: every type).
        public var types: Set<EventType>?
        /// `vins`: only these vehicles' events and state (default: every vehicle).
        public var vins: Set<VIN>?
        /// `max_age`: an event still unpublished this long after its detection is dead (default 24h).
        public var maxAge: Duration = .seconds(86_400)
        /// `timeout`: the longest wait for the broker's PUBACK (default 10s).
        public var timeout: Duration = .seconds(10)
        /// `keepalive`: the MQTT keep-alive interval (default 30s).
        public var keepAlive: Duration = .seconds(30)
        /// `home_assistant`: publish Home Assistant MQTT discovery for the state topics (default false).
        public var homeAssistant = false

        public init(url: BrokerURL) {
            self.url = url
        }
    }

    /// `sinks.mqtt`, `nil` for none.
    public var mqtt: MQTT?

    /// The MQTT password, read from its source; `nil` when none is configured.
    ///
    /// - Throws: ``ConfigError`` naming `sinks.mqtt.password` when it cannot be read.
    public func mqttPassword(file: String, environment: [String: String]) throws -> Secret? {
        guard let source = mqtt?.password else { return nil }
        do {
            return try source.resolve(file: file, environment: environment)
        } catch var error as ConfigError {
            error.key = "sinks.mqtt.password"
            throw error
        }
    }

    /// Every webhook's signing secret, read from its source, by webhook name.
    ///
    /// - Throws: The first webhook's error of ``webhookSecret(_:file:environment:)``.
    public func webhookSecrets(file: String, environment: [String: String]) throws -> [String: WebhookSecret] {
        var result: [String: WebhookSecret] = [:]
        for webhook in webhooks {
            result[webhook.name] = try Self.webhookSecret(webhook, file: file, environment: environment)
        }
        return result
    }

    /// One webhook's signing secret, read from its source.
    ///
    /// - Throws: ``ConfigError`` naming `sinks.webhooks[N].secret` when the secret cannot be read or
    ///   is not `whsec_` and base64 (the message never contains it).
    public static func webhookSecret(
        _ webhook: Webhook, file: String, environment: [String: String]
    ) throws -> WebhookSecret {
        let key = "sinks.webhooks[\(webhook.position)].secret"
        let secret: Secret
        do {
            secret = try webhook.secret.resolve(file: file, environment: environment)
        } catch var error as ConfigError {
            error.key = key
            throw error
        }
        guard let parsed = WebhookSecret(secret.value) else {
            throw ConfigError(
                file: file, key: key,
                message: "expected a Standard Webhooks secret: whsec_ and the base64 of at least 16 bytes")
        }
        return parsed
    }

    public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
        /// A host name or address (`127.0.0.1`, `::1`, `localhost`).
        public var host: String
        /// 1–65535.
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`, `[IPv6]:port` or `:port` (127.0.0.1); `nil` for anything else.
        public init?(_ text: String) {
            var host: Substring
            var portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                    return nil
                }
                host = text[text.index(after: text.startIndex)..<close]
                portText = text[text.index(close, offsetBy: 2)...]
                guard host.contains(":") else { return nil }
            } else {
                let parts = text.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2 else { return nil }
                (host, portText) = (parts[0], parts[1])
            }
            guard let port = Int(portText), (1...65535).contains(port), !host.contains(where: \.isWhitespace) else {
                return nil
            }
            self.init(host: host.isEmpty ? "127.0.0.1" : String(host), port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public init(
        api: API, databasePath: String = "/var/lib/fleet-telemetry/telemetry.sqlite", polling: Polling = Polling(),
        vehicles: [VIN] = [], logLevel: String = "info"
    ) {
        self.api = api
        self.databasePath = databasePath
        self.polling = polling
        self.vehicles = vehicles
        self.logLevel = logLevel
    }

    /// The API client's configuration, with the secret resolved.
    ///
    /// - Throws: ``ConfigError`` when the secret cannot be read.
    public func clientConfiguration(file: String, environment: [String: String]) throws -> ClientConfiguration {
        ClientConfiguration(
            baseURL: api.baseURL, clientID: api.clientID,
            clientSecret: try api.clientSecret.resolve(file: file, environment: environment),
            connectTimeout: api.connectTimeout, requestTimeout: api.requestTimeout,
            maxResponseBytes: api.maxResponseBytes, pathFamily: api.pathFamily,
            proxy: api.proxy.flatMap(ClientConfiguration.Proxy.init(url:))
                ?? ClientConfiguration.Proxy.fromEnvironment(environment, baseURL: api.baseURL),
            insecureSkipTLSVerify: api.insecureSkipTLSVerify)
    }
}

extension DaemonConfiguration.API {
    public init(baseURL: String, clientID: String, clientSecret: SecretSource) {
        self.baseURL = baseURL
        self.clientID = clientID
        self.clientSecret = clientSecret
    }
}

/// Where the client secret comes from. Never from the command line, never stored in the config.
public enum SecretSource: Sendable, Hashable {
    /// `api.client_secret.file`: a file holding the secret (surrounding whitespace is trimmed).
    case file(String)
    /// `api.client_secret.env`: an environment variable.
    case environment(String)
    /// `api.client_secret.credential`: a systemd credential (`LoadCredential=`), read from
    /// `$CREDENTIALS_DIRECTORY/<name>` under the unit; outside it (an operator running `vehicles`
    /// or `poll` by hand) from the file of that name in the config file's folder, where the
    /// unit's `LoadCredential=` reads it from (`/etc/fleet-telemetry/hm-client-secret`).
    case credential(String)
    /// A literal value; only for the built-in demo, never read from a config file.
    case literal(Secret)

    /// Reads the secret.
    ///
    /// - Throws: ``ConfigError`` naming `api.client_secret` when the file, variable or credential
    ///   is missing or empty. The message never contains the secret.
    public func resolve(file configFile: String, environment: [String: String]) throws -> Secret {
        func fail(_ message: String) -> ConfigError {
            ConfigError(file: configFile, key: "api.client_secret", message: message)
        }
        let value: String
        switch self {
        case .literal(let secret):
            return secret
        case .environment(let name):
            guard let v = environment[name] else { throw fail("environment variable \(name) is not set") }
            value = v
        case .file(let path):
            guard let v = readTextFile(path) else {
                throw fail("cannot read the secret file \(path): \(FileProblem.describe(path))")
            }
            value = v
        case .credential(let name):
            let path = credentialPath(name, file: configFile, environment: environment)
            guard let v = readTextFile(path) else {
                if environment["CREDENTIALS_DIRECTORY"] != nil {
                    throw fail(
                        "cannot read credential \(name) in $CREDENTIALS_DIRECTORY: \(FileProblem.describe(path))")
                }
                let hint =
                    getuid() == 0
                    ? "put the secret there (install -m 600 /dev/stdin \(path))"
                    : "run the command as root (sudo), which may read it"
                throw fail(
                    "credential \(name): not under systemd ($CREDENTIALS_DIRECTORY is not set), and its source file "
                        + "\(path) cannot be read: \(FileProblem.describe(path)); \(hint) (README: \"Commands on an installed host\")"
                )
            }
            value = v
        }
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw fail("the client secret is empty") }
        guard !trimmed.contains(where: { $0.isNewline }) else {
            throw fail("the client secret spans several lines; the file must hold the secret alone")
        }
        return Secret(trimmed)
    }

    /// The file a credential is read from: in `$CREDENTIALS_DIRECTORY` under systemd, else next
    /// to the config file.
    func credentialPath(_ name: String, file configFile: String, environment: [String: String]) -> String {
        if let directory = environment["CREDENTIALS_DIRECTORY"] { return directory + "/" + name }
        return ConfigLoader.relativeToConfig(name, file: configFile)
    }

    /// A warning when the secret's file is readable by every user (`nil` otherwise, and for an
    /// environment variable): `chmod 600` is what it needs.
    public func exposureWarning(file configFile: String, environment: [String: String]) -> String? {
        let path: String
        switch self {
        case .file(let p): path = p
        case .credential(let name):
            // systemd's copy in $CREDENTIALS_DIRECTORY is private to the service.
            guard environment["CREDENTIALS_DIRECTORY"] == nil else { return nil }
            path = credentialPath(name, file: configFile, environment: environment)
        case .environment, .literal: return nil
        }
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IROTH != 0 else { return nil }
        return "the secret file \(path) is readable by every user (mode \(String(status.st_mode & 0o777, radix: 8))); "
            + "chmod 600 \(path)"
    }
}

/// Why a file cannot be read, in words: for errors that name the path.
public enum FileProblem {
    /// `does not exist`, `permission denied (owner root, mode 600)`, `is a folder`, or the
    /// system's own words.
    public static func describe(_ path: String) -> String {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let code = errno
            if code == EACCES { return "permission denied on a folder of its path" }
            return code == ENOENT ? "does not exist" : String(cString: strerror(code))
        }
        if status.st_mode & S_IFMT == S_IFDIR { return "is a folder, not a file" }
        if access(path, R_OK) != 0 {
            let (owner, group, mode) = ownership(status)
            return "permission denied (owner \(owner), group \(group), mode \(mode))"
        }
        return "not UTF-8 text"
    }

    /// The owner's and group's names (or ids) and the octal mode of `path`, `nil` when it
    /// cannot be examined.
    public static func ownership(of path: String) -> (owner: String, group: String, mode: String)? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return ownership(status)
    }

    static func ownership(_ status: stat) -> (owner: String, group: String, mode: String) {
        let owner = getpwuid(status.st_uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(status.st_uid)"
        let group = getgrgid(status.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "gid \(status.st_gid)"
        return (owner, group, String(status.st_mode & 0o777, radix: 8))
    }
}

import Foundation

#if canImport(Glibc)
import Glibc
#endif

func readTextFile(_ path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return String(data: data, encoding: .utf8)
}
