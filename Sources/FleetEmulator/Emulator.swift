import FleetModel
import Foundation
import Synchronization

/// The High Mobility API emulator's state and behaviour, independent of HTTP.
///
/// It owns the simulated fleet, the access tokens it issued, the faults waiting to be served and
/// a log of the vehicle-data requests it answered. Simulated time runs ``EmulatorConfiguration/timeScale``
/// times faster than the injected wall clock, from the moment the emulator was created.
/// ``EmulatorServer`` serves it over HTTP.
public final class Emulator: Sendable {
    public let configuration: EmulatorConfiguration
    private let wallClock: any WallClock
    private let wallStart: Timestamp
    private let state: Mutex<State>

    /// A response the emulator serves instead of vehicle data, for testing error handling.
    public struct Fault: Sendable, Hashable {
        /// The HTTP status.
        public var status: Int
        /// The `Retry-After` header value, sent as given (delta-seconds or an HTTP-date), or none.
        public var retryAfter: String?
        /// The body, sent as given; `nil` serves the platform's error body for the status.
        public var body: String?
        /// Wait this long (wall-clock) before answering, e.g. to trigger the client's read timeout.
        public var delay: Duration?
        /// Close the connection without an answer.
        public var drop: Bool
        /// Send the body one byte at a time, this long apart (a server that trickles).
        public var drip: Duration?

        public init(
            status: Int, retryAfter: String? = nil, body: String? = nil, delay: Duration? = nil, drop: Bool = false,
            drip: Duration? = nil
        ) {
            self.drip = drip
            self.status = status
            self.retryAfter = retryAfter
            self.body = body
            self.delay = delay
            self.drop = drop
        }

        /// HTTP 429 with `Retry-After: <seconds>`.
        public static func rateLimited(retryAfterSeconds: Int) -> Fault {
            Fault(status: 429, retryAfter: String(retryAfterSeconds))
        }
    }

    /// One vehicle-data request the emulator answered.
    public struct LoggedRequest: Sendable, Hashable {
        /// The VIN in the path, as sent.
        public var vin: String
        /// Wall-clock time of the request.
        public var at: Timestamp
        /// The HTTP status served.
        public var status: Int
    }

    /// An HTTP response, before it is put on the wire.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String
        /// Wait this long before answering.
        public var delay: Duration? = nil
        /// Close the connection instead of answering.
        public var drop = false
        /// Send the body one byte at a time, this long apart.
        public var drip: Duration? = nil

        public init(
            status: Int, headers: [(String, String)], body: String, delay: Duration? = nil, drop: Bool = false,
            drip: Duration? = nil
        ) {
            self.drip = drip
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
            self.drop = drop
        }
    }

    struct State {
        var vehicles: [VIN: VehicleSimulation]
        var tokens: [String: Timestamp] = [:]
        /// Queued faults per VIN, each with how many requests it still answers.
        var faults: [VIN: [(fault: Fault, remaining: Int)]] = [:]
        var requests: [LoggedRequest] = []
        var tokenRequests = 0
        var tokenPaths: [String] = []
        var requestCounter: UInt64 = 0
        var clearances: [VIN: Clearance] = [:]
        var windowStart: Timestamp?
        var windowCount = 0
        /// The limits in force (the configuration's, changed at run time by ``setLimits(_:)``).
        var limits: Limits
        /// Per VIN: the start of its quota window and the requests in it.
        var quotaWindows: [VIN: (start: Timestamp, count: Int)] = [:]
        /// Faults served instead of access tokens, each with how many requests it still answers.
        var tokenFaults: [(fault: Fault, remaining: Int)] = []
        var scripts: [VIN: [[String: [String: JSONValue]]]] = [:]
        /// The consent flow's codes, grants and tokens (``Emulator/consentVINs``).
        var consent = ConsentState()
    }

    /// Creates the fleet of ``EmulatorConfiguration/vehicleCount`` vehicles, parked at the
    /// current wall-clock time (which is also simulated time zero).
    public init(configuration: EmulatorConfiguration = .init(), wallClock: any WallClock = SystemWallClock()) {
        self.configuration = configuration
        self.wallClock = wallClock
        let start = wallClock.now()
        self.wallStart = start
        var vehicles: [VIN: VehicleSimulation] = [:]
        for (offset, vin) in configuration.vins.enumerated() {
            let seed = configuration.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(offset + 1)
            // The first vehicle starts low enough to charge after its first trip and the second
            // to run low (battery_low) on its first trip, so every run shows both.
            vehicles[vin] = VehicleSimulation(
                vin: vin, seed: seed, start: start, initialBatteryPercent: offset == 0 ? 52 : offset == 1 ? 24 : nil)
        }
        var initial = State(
            vehicles: vehicles,
            limits: Limits(rateLimit: configuration.rateLimit, vehicleQuota: configuration.vehicleQuota))
        for vin in vehicles.keys {
            initial.clearances[vin] = Clearance(
                brand: "sandbox", status: .approved, changelog: [(.pending, start), (.approved, start)],
                createdAt: start)
        }
        // Vehicles that only their owner's consent reaches: simulated, never in the fleet.
        for (offset, vin) in configuration.consentVINs.enumerated() {
            let seed = configuration.seed &* 0xC2B2_AE3D_27D4_EB4F &+ UInt64(offset + 1)
            initial.vehicles[vin] = VehicleSimulation(vin: vin, seed: seed, start: start)
        }
        state = Mutex(initial)
    }

    /// Simulated time now: the start plus the elapsed wall time × ``EmulatorConfiguration/timeScale``.
    public func simulatedNow() -> Timestamp {
        let elapsed = Double(wallClock.now().millisecondsSince1970 - wallStart.millisecondsSince1970)
        return wallStart.adding(milliseconds: Int64(elapsed * configuration.timeScale))
    }

    /// Queues `fault` to be served for the next `count` vehicle-data requests of `vin`, or of
    /// any vehicle when `vin` is `nil` (faults for one VIN are served first).
    public func inject(_ fault: Fault, vin: VIN?, count: Int = 1) {
        guard count > 0 else { return }
        state.withLock { $0.faults[vin ?? Self.allVehicles, default: []].append((fault, count)) }
    }

    /// A fault waiting to be served: for one VIN, for any vehicle (`vin` `nil`) or for the token
    /// endpoint, the next `remaining` times.
    public struct QueuedFault: Sendable, Hashable {
        /// `token` for the token endpoint, `all` for any vehicle, or a VIN.
        public var target: String
        /// What is served.
        public var fault: Fault
        /// How many more requests get it.
        public var remaining: Int
    }

    /// Every fault still queued, token faults first, then per VIN and for all vehicles, each in
    /// the order they are served.
    public var queuedFaults: [QueuedFault] {
        state.withLock { state in
            var result = state.tokenFaults.map {
                QueuedFault(target: "token", fault: $0.fault, remaining: $0.remaining)
            }
            for (vin, queue) in state.faults.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                let target = vin == Self.allVehicles ? "all" : vin.rawValue
                result += queue.map { QueuedFault(target: target, fault: $0.fault, remaining: $0.remaining) }
            }
            return result
        }
    }

    /// Removes every queued fault; how many there were.
    @discardableResult
    public func clearFaults() -> Int {
        state.withLock { state in
            let count = state.tokenFaults.count + state.faults.values.reduce(0) { $0 + $1.count }
            state.tokenFaults = []
            state.faults = [:]
            return count
        }
    }

    /// The request limits the emulator enforces; both can change while it runs.
    public struct Limits: Sendable, Hashable {
        /// Vehicle-data requests of the whole application per window: 429 `Rate limit exceeded`.
        public var rateLimit: EmulatorConfiguration.RateLimit?
        /// Vehicle-data requests per vehicle per window: 403 `Quota exceeded for this vehicle`.
        public var vehicleQuota: EmulatorConfiguration.RateLimit?

        public init(
            rateLimit: EmulatorConfiguration.RateLimit? = nil, vehicleQuota: EmulatorConfiguration.RateLimit? = nil
        ) {
            self.rateLimit = rateLimit
            self.vehicleQuota = vehicleQuota
        }
    }

    /// The limits in force.
    public var limits: Limits { state.withLock { $0.limits } }

    /// Replaces the limits in force (windows start afresh).
    public func setLimits(_ limits: Limits) {
        state.withLock { state in
            state.limits = limits
            state.windowStart = nil
            state.windowCount = 0
            state.quotaWindows = [:]
        }
    }

    /// Queues `fault` to be served instead of an access token for the next `count` token requests
    /// (an outage of the token endpoint).
    public func injectTokenFault(_ fault: Fault, count: Int = 1) {
        guard count > 0 else { return }
        state.withLock { $0.tokenFaults.append((fault, count)) }
    }

    /// Counts a request of `vin` against its quota; how long to wait when the quota is spent.
    private func admitVehicle(_ vin: VIN, now: Timestamp) -> Duration? {
        state.withLock { state in
            guard let quota = state.limits.vehicleQuota else { return nil }
            if let window = state.quotaWindows[vin], now < window.start.adding(quota.per) {
                if window.count >= quota.requests { return window.start.adding(quota.per).duration(since: now) }
                state.quotaWindows[vin] = (window.start, window.count + 1)
                return nil
            }
            state.quotaWindows[vin] = (now, 1)
            return nil
        }
    }

    /// The key of faults that apply to every vehicle (not a VIN the emulator ever serves).
    static let allVehicles = VIN("00000000000000000")!

    /// Counts a vehicle-data request against the application-wide limit; returns how long to
    /// wait when it is exceeded (a fixed window of `limit.per`).
    private func admitRequest(now: Timestamp) -> Duration? {
        state.withLock { state in
            guard let limit = state.limits.rateLimit else { return nil }
            if let start = state.windowStart, now < start.adding(limit.per) {
                if state.windowCount >= limit.requests {
                    return start.adding(limit.per).duration(since: now)
                }
                state.windowCount += 1
                return nil
            }
            state.windowStart = now
            state.windowCount = 1
            return nil
        }
    }

    /// Drives `vin` through an exact sequence of states: each vehicle-data request for it takes the
    /// next step and serves the simulated data with the step's properties replaced.
    ///
    /// - Parameter steps: Per step, `capability → property → data` (the Auto API `data` value;
    ///   an array for `multiple` properties' entries). Each replaced property is stamped with the
    ///   simulated time of the request.
    public func script(_ vin: VIN, steps: [[String: [String: JSONValue]]]) {
        state.withLock { $0.scripts[vin, default: []].append(contentsOf: steps) }
    }

    /// Every vehicle-data request answered so far, oldest first.
    public var requestLog: [LoggedRequest] { state.withLock { $0.requests } }

    /// How many token requests were answered (successfully or not).
    public var tokenRequestCount: Int { state.withLock { $0.tokenRequests } }

    /// The path and body type of each token request, e.g. `POST /v1/access_tokens json`.
    public var tokenRequestLog: [String] { state.withLock { $0.tokenPaths } }

    /// The snapshot of a simulated vehicle at the current simulated time.
    public func snapshot(vin: VIN) -> VehicleSimulation.Snapshot? {
        let now = simulatedNow()
        return state.withLock { $0.vehicles[vin]?.snapshot(at: now) }
    }

    // MARK: - Endpoints

    /// `POST /v1/access_tokens` (JSON) and `POST /v1/access_token` (form), every grant: a queued
    /// token fault first, then `client_credentials`, `authorization_code` or `refresh_token`
    /// (``authorizationCodeGrant(_:)``, ``refreshTokenGrant(_:)``) by `grant_type`.
    public func accessToken(fields: [String: String], via route: String = "POST /v1/access_tokens json") -> Reply {
        switch fields["grant_type"] {
        case "authorization_code", "refresh_token", "refresh":
            if let fault = takeTokenFault(route: route) { return fault }
            return fields["grant_type"] == "authorization_code"
                ? authorizationCodeGrant(fields) : refreshTokenGrant(fields)
        default:
            return accessToken(
                grantType: fields["grant_type"], clientID: fields["client_id"], clientSecret: fields["client_secret"],
                via: route)
        }
    }

    /// Counts a token request and serves the next queued token fault, if any.
    private func takeTokenFault(route: String) -> Reply? {
        let fault = state.withLock { state -> Fault? in
            state.tokenRequests += 1
            state.tokenPaths.append(route)
            guard !state.tokenFaults.isEmpty else { return nil }
            let fault = state.tokenFaults[0].fault
            state.tokenFaults[0].remaining -= 1
            if state.tokenFaults[0].remaining == 0 { state.tokenFaults.removeFirst() }
            return fault
        }
        guard let fault else { return nil }
        var headers = [("Content-Type", "application/json")]
        if let retryAfter = fault.retryAfter { headers.append(("Retry-After", retryAfter)) }
        return Reply(
            status: fault.status, headers: headers,
            body: fault.body ?? Self.encode(Self.errorBody(fault.status, requestID: nextRequestID())),
            delay: fault.delay, drop: fault.drop, drip: fault.drip)
    }

    /// The client-credentials grant.
    public func accessToken(
        grantType: String?, clientID: String?, clientSecret: String?, via route: String = "POST /v1/access_tokens json"
    ) -> Reply {
        if let fault = takeTokenFault(route: route) { return fault }
        guard let grantType, let clientID, let clientSecret, !grantType.isEmpty, !clientID.isEmpty,
            !clientSecret.isEmpty
        else {
            return Self.oauthError(
                400, "invalid_request",
                "client_id can't be blank, client_secret can't be blank, grant_type can't be blank")
        }
        guard grantType == "client_credentials" else {
            return Self.oauthError(400, "unsupported_grant_type", "only client_credentials is emulated")
        }
        guard clientID == configuration.clientID else {
            return Self.oauthError(401, "invalid_client", "client_id is invalid")
        }
        guard clientSecret == configuration.clientSecret else {
            return Self.oauthError(401, "invalid_client", "client_secret is invalid")
        }
        let token = "emu." + UUID().uuidString.lowercased()
        let expiresAt = wallClock.now().adding(configuration.tokenLifetime)
        state.withLock { state in
            let now = wallClock.now()
            state.tokens = state.tokens.filter { $0.value > now }
            state.tokens[token] = expiresAt
        }
        let body = JSONValue.object([
            "access_token": .string(token),
            "expires_in": .number(Double(configuration.tokenLifetime.components.seconds)),
            "scope": .string("fleet:clearance vehicle:eligibility-check vehicle:data"),
            "token_type": .string("bearer"),
        ])
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
    }

    /// `GET /v1/vehicle-data/autoapi-13/{vin}`.
    public func vehicleData(vinText: String, authorization: String?) -> Reply {
        let now = wallClock.now()
        let reply = makeVehicleData(vinText: vinText, authorization: authorization, now: now)
        state.withLock { $0.requests.append(LoggedRequest(vin: vinText, at: now, status: reply.status)) }
        return reply
    }

    func withState<T>(_ body: (inout State) -> T) -> T {
        state.withLock { body(&$0) }
    }

    var now: Timestamp { wallClock.now() }

    private func makeVehicleData(vinText: String, authorization: String?, now: Timestamp) -> Reply {
        let requestID = nextRequestID()
        guard let authorization, authorization.hasPrefix("Bearer ") else {
            return Self.apiError(401, "Not Authorized", "Missing or invalid authorization header", requestID: requestID)
        }
        let token = String(authorization.dropFirst(7))
        let valid = state.withLock { state in state.tokens[token].map { $0 > now } ?? false }
        // A vehicle token (consent) reaches its own vehicle once its grant is approved.
        let vehicleToken = valid ? nil : self.vehicleToken(token, now: now)
        guard valid || vehicleToken != nil else {
            return Self.apiError(401, "Not Authorized", "Invalid token", requestID: requestID)
        }
        guard let vin = VIN(vinText),
            vehicleToken.map({ $0.vin == vin && $0.approved })
                ?? state.withLock({ state in
                    advanceClearances(&state, now: now)
                    return state.clearances[vin]?.status == .approved && state.vehicles[vin] != nil
                })
        else {
            return Self.apiError(403, "Forbidden", "No active consent for this vehicle", requestID: requestID)
        }
        if let wait = admitRequest(now: now) {
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            var reply = Self.apiError(429, "Too Many Requests", "Rate limit exceeded", requestID: requestID)
            reply.headers.append(("Retry-After", String(seconds)))
            return reply
        }
        if let wait = admitVehicle(vin, now: now) {
            let seconds = max(1, Int(wait.seconds.rounded(.up)))
            var reply = Self.apiError(403, "Forbidden", "Quota exceeded for this vehicle", requestID: requestID)
            reply.headers.append(("Retry-After", String(seconds)))
            return reply
        }
        if let fault = state.withLock({ state -> Fault? in
            for key in [vin, Self.allVehicles] {
                guard var queue = state.faults[key], !queue.isEmpty else { continue }
                let fault = queue[0].fault
                queue[0].remaining -= 1
                if queue[0].remaining == 0 { queue.removeFirst() }
                state.faults[key] = queue.isEmpty ? nil : queue
                return fault
            }
            return nil
        }) {
            var headers = [("Content-Type", "application/json")]
            if let retryAfter = fault.retryAfter { headers.append(("Retry-After", retryAfter)) }
            let body = fault.body ?? Self.encode(Self.errorBody(fault.status, requestID: requestID))
            return Reply(
                status: fault.status, headers: headers, body: body, delay: fault.delay, drop: fault.drop,
                drip: fault.drip)
        }
        let simulated = simulatedNow()
        guard let snapshot = state.withLock({ $0.vehicles[vin]?.snapshot(at: simulated) }) else {
            return Self.apiError(403, "Forbidden", "No active consent for this vehicle", requestID: requestID)
        }
        var body = VehicleDataRenderer.render(snapshot, shape: configuration.shape, requestID: requestID)
        let step = state.withLock { state -> [String: [String: JSONValue]]? in
            guard var steps = state.scripts[vin], !steps.isEmpty else { return nil }
            let step = steps.removeFirst()
            state.scripts[vin] = steps
            return step
        }
        if let step, case .object(var root) = body {
            let stamp = JSONValue.string(simulated.iso8601)
            for (capability, properties) in step {
                var fields = root[capability]?.objectValue ?? [:]
                for (property, data) in properties {
                    if case .array(let entries) = data {
                        fields[property] = .array(entries.map { .object(["data": $0, "timestamp": stamp]) })
                    } else {
                        fields[property] = .object(["data": data, "timestamp": stamp])
                    }
                }
                root[capability] = .object(fields)
            }
            body = .object(root)
        }
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
    }

    /// Checks a bearer token; `nil` when it is valid, else the 401 to serve.
    func unauthorized(_ authorization: String?, now: Timestamp) -> Reply? {
        let requestID = nextRequestID()
        guard let authorization, authorization.hasPrefix("Bearer ") else {
            return Self.apiError(401, "Not Authorized", "Missing or invalid authorization header", requestID: requestID)
        }
        let token = String(authorization.dropFirst(7))
        let valid = state.withLock { state in state.tokens[token].map { $0 > now } ?? false }
        return valid ? nil : Self.apiError(401, "Not Authorized", "Invalid token", requestID: requestID)
    }

    func nextRequestID() -> String {
        let n = state.withLock { state -> UInt64 in
            state.requestCounter += 1
            return state.requestCounter
        }
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 32 - hex.count) + hex
    }

    // MARK: - Bodies

    static func errorBody(_ status: Int, requestID: String) -> JSONValue {
        let (title, detail): (String, String)
        switch status {
        case 400: (title, detail) = ("Bad Request", "The request is invalid")
        case 401: (title, detail) = ("Not Authorized", "Invalid token")
        case 404: (title, detail) = ("Not found", "Not found")
        case 409: (title, detail) = ("Conflict", "Conflict")
        case 403: (title, detail) = ("Forbidden", "No active consent for this vehicle")
        case 408: (title, detail) = ("Request Timeout", "Vehicle is offline or asleep")
        case 422: (title, detail) = ("Pending", "Vehicle data is not available yet")
        case 429: (title, detail) = ("Too Many Requests", "Rate limit exceeded")
        case 503: (title, detail) = ("Service Unavailable", "Failure when fetching data from OEM")
        case 504: (title, detail) = ("Timeout", "OEM didn't response in the expected time")
        default: (title, detail) = ("Internal Server Error", "Please contact support")
        }
        return .object([
            "errors": .array([.object(["title": .string(title), "detail": .string(detail)])]),
            "request_id": .string(requestID),
        ])
    }

    static func apiError(_ status: Int, _ title: String, _ detail: String, requestID: String) -> Reply {
        let body = JSONValue.object([
            "errors": .array([.object(["title": .string(title), "detail": .string(detail)])]),
            "request_id": .string(requestID),
        ])
        return Reply(status: status, headers: [("Content-Type", "application/json")], body: encode(body))
    }

    static func oauthError(_ status: Int, _ error: String, _ description: String) -> Reply {
        Reply(
            status: status, headers: [("Content-Type", "application/json")],
            body: encode(.object(["error": .string(error), "error_description": .string(description)])))
    }

    static func encode(_ value: JSONValue) -> String {
        value.serialized
    }
}
