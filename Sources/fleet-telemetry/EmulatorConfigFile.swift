import FleetConfiguration
import FleetDaemon
import FleetEmulator
import FleetModel

/// The emulator's config file (`fleet-telemetry emulator --config FILE`), read as strictly as the
/// daemon's: an unknown key or a bad value names the file, the key and the line. Every key is
/// documented in `docs/emulator.md`.
///
/// ```yaml
/// vehicles: 5              # simulated vehicles
/// seed: 1
/// time_scale: 1440         # simulated seconds per wall-clock second
/// shape: auto_api          # or simplified
/// client_id: emulator-client
/// approval_delay: 5s       # pending → approved
/// removal_delay: 5s        # revoking → revoked, canceling → canceled
/// rate_limit:              # application-wide, on vehicle data: 429 with Retry-After
///   requests: 100
///   per: 1m
/// vehicle_quota:           # per vehicle: 403 "Quota exceeded for this vehicle" with Retry-After
///   requests: 24
///   per: 1d
/// faults:                  # served before real data, in order
///   - vin: all             # or one VIN; or `endpoint: token` for the token endpoint
///     status: 503          # default 503
///     retry_after: "30"    # sent as given: delta-seconds or an HTTP-date
///     body: "..."          # sent as given; default the platform's error body
///     delay: 2s            # before answering
///     drip: 50ms           # send the body byte by byte
///     drop: false          # close the connection instead
///     count: 3
/// ```
enum EmulatorConfigFile {
    struct Loaded {
        var configuration: EmulatorConfiguration
        var faults: [(vin: VIN?, fault: Emulator.Fault, count: Int)]
        var tokenFaults: [(fault: Emulator.Fault, count: Int)] = []
    }

    static func load(path: String) throws(ConfigError) -> Loaded {
        guard let text = readFile(path) else {
            throw ConfigError(
                file: path, key: nil, message: "cannot read the config file (missing, unreadable or not UTF-8)")
        }
        let root = try ConfigNode.parse(text, file: path)
        let top = try root.mapping(allowed: [
            "vehicles", "seed", "time_scale", "shape", "client_id", "approval_delay", "removal_delay", "rate_limit",
            "vehicle_quota", "faults", "consent_vehicles", "consent_token_lifetime", "refresh_token_lifetime",
            "consent_approval_delay",
        ])
        var configuration = EmulatorConfiguration()
        if let n = top["vehicles"] { configuration.vehicleCount = try n.integer(in: 1...100_000) }
        if let n = top["seed"] { configuration.seed = UInt64(try n.integer(in: 0...Int.max)) }
        if let n = top["time_scale"] {
            let text = try n.string()
            guard let scale = Double(text), scale > 0, scale <= 1_000_000 else {
                throw n.error("expected a number above 0 and at most 1000000, got \"\(text)\"")
            }
            configuration.timeScale = scale
        }
        if let n = top["shape"] {
            let text = try n.string()
            guard let shape = VehicleDataRenderer.Shape(rawValue: text) else {
                throw n.error("expected auto_api or simplified, got \"\(text)\"")
            }
            configuration.shape = shape
        }
        if let n = top["client_id"] {
            configuration.clientID = try n.string()
            guard !configuration.clientID.isEmpty else { throw n.error("must not be empty") }
        }
        if let n = top["approval_delay"] { configuration.approvalDelay = try n.duration(min: .zero) }
        if let n = top["removal_delay"] { configuration.removalDelay = try n.duration(min: .zero) }
        if let n = top["consent_vehicles"] { configuration.consentVehicleCount = try n.integer(in: 0...100_000) }
        if let n = top["consent_token_lifetime"] {
            configuration.consentTokenLifetime = try n.duration(min: .seconds(1))
        }
        if let n = top["refresh_token_lifetime"] {
            configuration.refreshTokenLifetime = try n.duration(min: .seconds(1))
        }
        if let n = top["consent_approval_delay"] { configuration.consentApprovalDelay = try n.duration(min: .zero) }
        if let n = top["rate_limit"] { configuration.rateLimit = try limit(n) }
        if let n = top["vehicle_quota"] { configuration.vehicleQuota = try limit(n) }
        var faults: [(vin: VIN?, fault: Emulator.Fault, count: Int)] = []
        var tokenFaults: [(fault: Emulator.Fault, count: Int)] = []
        if let n = top["faults"] {
            for item in try n.sequence() {
                let fields = try item.mapping(allowed: [
                    "vin", "endpoint", "status", "retry_after", "body", "delay", "drip", "drop", "count",
                ])
                var forToken = false
                if let endpoint = fields["endpoint"] {
                    let text = try endpoint.string()
                    guard text == "token" || text == "vehicle_data" else {
                        throw endpoint.error("expected token or vehicle_data, got \"\(text)\"")
                    }
                    forToken = text == "token"
                    if forToken, let vin = fields["vin"] {
                        throw vin.error("a fault of the token endpoint takes no `vin`")
                    }
                }
                guard forToken || fields["vin"] != nil else {
                    throw item.error("a fault needs `vin` (a VIN or all), or `endpoint: token`")
                }
                var vin: VIN?
                if let vinNode = fields["vin"], !forToken {
                    let vinText = try vinNode.string()
                    if vinText != "all" {
                        do {
                            vin = try VIN(validating: vinText)
                        } catch {
                            throw vinNode.error(error.description)
                        }
                    }
                }
                var fault = Emulator.Fault(status: try fields["status"]?.integer(in: 100...599) ?? 503)
                fault.retryAfter = try fields["retry_after"]?.string()
                fault.body = try fields["body"]?.string()
                fault.delay = try fields["delay"]?.duration(min: .zero)
                fault.drip = try fields["drip"]?.duration(min: .milliseconds(1))
                fault.drop = try fields["drop"]?.boolean() ?? false
                let count = try fields["count"]?.integer(in: 1...1_000_000) ?? 1
                if forToken {
                    tokenFaults.append((fault, count))
                } else {
                    faults.append((vin, fault, count))
                }
            }
        }
        return Loaded(configuration: configuration, faults: faults, tokenFaults: tokenFaults)
    }

    /// A `{requests, per}` limit.
    private static func limit(_ node: ConfigNode) throws(ConfigError) -> EmulatorConfiguration.RateLimit {
        let limit = try node.mapping(allowed: ["requests", "per"])
        guard let requests = limit["requests"], let per = limit["per"] else {
            throw node.error("give both `requests` and `per`")
        }
        return .init(requests: try requests.integer(in: 1...1_000_000), per: try per.duration(min: .milliseconds(1)))
    }

    private static func readFile(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}

import Foundation
