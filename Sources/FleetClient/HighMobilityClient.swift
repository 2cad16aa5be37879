import AsyncHTTPClient
import FleetModel
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// The High Mobility API client: the only place in fleet-telemetry that knows HTTP.
///
/// It owns an `HTTPClient` with explicit connect and read timeouts, no redirects, an optional
/// proxy and certificate verification (skipped only when the config allows it for a loopback
/// emulator); obtains client-credentials access tokens through a ``TokenProvider``; speaks either
/// ``PathFamily``; and turns every failure into an ``APIError``, whose ``VehicleDataFailure``
/// says what it means for the vehicle. Call ``shutdown()`` before dropping it. FleetClient never
/// decides a schedule, stores anything or reads vehicle data beyond its envelope.
public final class HighMobilityClient: Sendable {
    public let configuration: ClientConfiguration
    let http: HTTPClient
    let clock: any WallClock
    private let logger: Logger
    private let tokens: TokenProvider

    /// - Parameters:
    ///   - configuration: Base URL, credentials, path family, timeouts and limits.
    ///   - clock: The wall clock for token expiry and `Retry-After` dates.
    public init(
        configuration: ClientConfiguration, clock: any WallClock = SystemWallClock(),
        logger: Logger = Logger(label: "fleet-telemetry.client")
    ) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(
            connect: .milliseconds(configuration.connectTimeout.milliseconds),
            read: .milliseconds(configuration.requestTimeout.milliseconds))
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60))
        // A refused connection is reported at once, not retried until the connect timeout: the
        // scheduler backs off and tries again itself, and an operator at a terminal wants to know.
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        if configuration.insecureSkipTLSVerify {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            httpConfiguration.tlsConfiguration = tls
        }
        if let proxy = configuration.proxy {
            httpConfiguration.proxy = .server(host: proxy.host, port: proxy.port)
        }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        self.http = http
        let configurationCopy = configuration
        self.tokens = TokenProvider(
            renewalMargin: configuration.tokenRenewalMargin, clock: clock,
            onRenewalFailure: { error, validUntil, retryIn in
                logger.warning(
                    "access token renewal failed, the current token is valid until \(validUntil); next try in \(retryIn.milliseconds / 1000) s: \(error)"
                )
            }
        ) {
            try await Self.requestToken(http: http, configuration: configurationCopy, clock: clock)
        }
    }

    /// Closes all connections. Call once, when done.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: - Vehicle data

    /// `GET /v1/vehicle-data/autoapi-13/{vin}`: the vehicle's latest data, as the raw body.
    ///
    /// - Returns: The body of a 200 response, with its timing.
    /// - Throws: ``APIError`` for every other status (with `Retry-After` on a 429), a transport
    ///   failure or timeout, or a body over ``ClientConfiguration/maxResponseBytes``.
    public func vehicleData(vin: VIN) async throws(APIError) -> VehicleDataResponse {
        let response = try await send(.GET, PathFamily.vehicleDataPath(vin.rawValue), vin: vin)
        return VehicleDataResponse(
            vin: vin, status: response.status, body: response.body, requestedAt: response.requestedAt,
            receivedAt: response.receivedAt)
    }

    // MARK: - Eligibility

    /// Checks whether a vehicle can be cleared: `POST /v1/eligibility` with `{vin, brand}`
    /// (platform) or `GET /v1/eligibility/{vin}` (document).
    ///
    /// - Parameter brand: Any form (`mercedes-benz`, `mercedes_benz`); sent in the fleet form.
    /// - Throws: ``APIError``, also for a 200 whose body is not an eligibility answer.
    public func eligibility(vin: VIN, brand: String) async throws(APIError) -> Eligibility {
        let response: Response
        switch configuration.pathFamily {
        case .platform:
            let body = JSONValue.object(["vin": .string(vin.rawValue), "brand": .string(Brand.fleetForm(brand))])
            response = try await send(.POST, "/v1/eligibility", json: body, vin: vin)
        case .document:
            response = try await send(.GET, "/v1/eligibility/" + vin.rawValue, vin: vin)
        }
        let json = try response.json()
        guard let eligible = json["eligible"], case .bool(let isEligible) = eligible else {
            throw response.invalid("no `eligible` in the eligibility answer")
        }
        var result = Eligibility(vin: vin, eligible: isEligible)
        result.dataDelivery = json["data_delivery"]?.arrayValue?.compactMap(\.stringValue) ?? []
        result.connectivityStatus = json["connectivity_status"]?.stringValue
        if case .bool(let b)? = json["primary_user_assigned"] { result.primaryUserAssigned = b }
        result.brand = json["brand"]?.stringValue.map(Brand.canonical)
        result.capabilities = json["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if case .bool(let b)? = json["clearance_required"] { result.clearanceRequired = b }
        return result
    }

    // MARK: - Fleet clearance

    /// Lists the fleet: `GET /v1/fleets/vehicles` (platform) or `GET /v1/fleet/vehicles` (document).
    ///
    /// Entries whose VIN is invalid or whose status is unknown are skipped with a warning, never
    /// passed on.
    public func fleetVehicles() async throws(APIError) -> [FleetVehicle] {
        let response = try await send(
            .GET, configuration.pathFamily.fleetPath, vin: nil,
            maxBytes: max(configuration.maxResponseBytes, configuration.maxFleetListBytes))
        let json = try response.json()
        let items = json.arrayValue ?? json["vehicles"]?.arrayValue
        guard let items else { throw response.invalid("the fleet list is not an array") }
        return items.compactMap { item in
            do {
                return try parseFleetVehicle(item, response: response)
            } catch {
                logger.warning("skipping a fleet entry: \(String(describing: error))")
                return nil
            }
        }
    }

    /// One vehicle's clearance: `GET /v1/fleets/vehicles/{vin}` (or `/v1/fleet/…`).
    ///
    /// - Throws: ``APIError`` with status 404 when the VIN is not in the fleet.
    public func fleetVehicle(vin: VIN) async throws(APIError) -> FleetVehicle {
        let response = try await send(.GET, configuration.pathFamily.fleetPath + "/" + vin.rawValue, vin: vin)
        return try parseFleetVehicle(try response.json(), response: response)
    }

    /// Registers vehicles for clearance: `POST /v1/fleets/vehicles` with `{"vehicles": [{vin,
    /// brand, tags}]}` (platform), or one `POST /v1/fleet/vehicles` with `{vin, brand,
    /// license_plate}` per vehicle (document).
    ///
    /// - Returns: Each vehicle's answer: `pending`, or `error` with a `description`.
    public func register(_ vehicles: [FleetVehicle]) async throws(APIError) -> [FleetVehicle] {
        switch configuration.pathFamily {
        case .platform:
            let items = vehicles.map { vehicle -> JSONValue in
                .object([
                    "vin": .string(vehicle.vin.rawValue),
                    "brand": .string(Brand.fleetForm(vehicle.brand ?? "")),
                    "tags": .object(JSONObject(strings: vehicle.tags)),
                ])
            }
            let response = try await send(
                .POST, configuration.pathFamily.fleetPath, json: .object(["vehicles": .array(items)]),
                vin: vehicles.count == 1 ? vehicles[0].vin : nil)
            guard let answers = try response.json()["vehicles"]?.arrayValue else {
                throw response.invalid("no `vehicles` in the answer")
            }
            let requestedBrands = Dictionary(vehicles.map { ($0.vin, $0.brand) }, uniquingKeysWith: { a, _ in a })
            var result: [FleetVehicle] = []
            for answer in answers {
                var vehicle = try parseFleetVehicle(answer, response: response)
                if vehicle.brand == nil { vehicle.brand = requestedBrands[vehicle.vin] ?? nil }
                result.append(vehicle)
            }
            return result
        case .document:
            var result: [FleetVehicle] = []
            for vehicle in vehicles {
                var body: JSONObject = [
                    "vin": .string(vehicle.vin.rawValue), "brand": .string(Brand.fleetForm(vehicle.brand ?? "")),
                ]
                if let plate = vehicle.licensePlate { body["license_plate"] = .string(plate) }
                let response = try await send(
                    .POST, configuration.pathFamily.fleetPath, json: .object(body), vin: vehicle.vin)
                result.append(try parseFleetVehicle(try response.json(), response: response))
            }
            return result
        }
    }

    /// Removes a vehicle from the fleet: `DELETE /v1/fleets/vehicles/{vin}` (or `/v1/fleet/…`).
    ///
    /// - Returns: The new status (`revoking` or `canceling` on the platform; the document answers
    ///   204 with no body, reported as `revoked`).
    public func remove(vin: VIN) async throws(APIError) -> FleetVehicle {
        let response = try await send(.DELETE, configuration.pathFamily.fleetPath + "/" + vin.rawValue, vin: vin)
        if response.status == 204 || response.body.isEmpty {
            return FleetVehicle(vin: vin, brand: nil, status: .revoked)
        }
        return try parseFleetVehicle(try response.json(), response: response)
    }

    private func parseFleetVehicle(_ json: JSONValue, response: Response) throws(APIError) -> FleetVehicle {
        guard let vinText = json["vin"]?.stringValue else { throw response.invalid("a fleet entry has no vin") }
        let vin: VIN
        do {
            vin = try VIN(validating: vinText)
        } catch {
            throw response.invalid(error.description)
        }
        let statusText = json["status"]?.stringValue ?? json["clearance_status"]?.stringValue ?? ""
        guard let status = ClearanceStatus(rawValue: statusText) else {
            throw response.invalid("unknown clearance status \"\(statusText.prefix(40))\" for \(vin)")
        }
        let tags = json["tags"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
        return FleetVehicle(
            vin: vin, brand: json["brand"]?.stringValue, status: status, tags: tags,
            licensePlate: json["license_plate"]?.stringValue, description: json["description"]?.stringValue)
    }

    // MARK: - Transport

    /// A response with a success status (2xx).
    struct Response: Sendable {
        var endpoint: String
        var status: Int
        var body: [UInt8]
        var requestedAt: Timestamp
        var receivedAt: Timestamp
        var vin: VIN?

        func json() throws(APIError) -> JSONValue {
            guard let value = try? JSONParser.parse(body) else {
                throw invalid("the body is not JSON")
            }
            return value
        }

        func invalid(_ detail: String) -> APIError {
            APIError(kind: .invalidResponse, endpoint: endpoint, status: status, detail: detail, vin: vin)
        }
    }

    /// Sends an authorized request. On a 401 `Invalid token` the application's token is renewed
    /// once and the request retried once; a given `bearer` (a vehicle's own token) is used as it
    /// is, and its 401 reaches the caller.
    ///
    /// - Throws: ``APIError`` for a non-2xx status, a transport failure or an oversized body.
    func send(
        _ method: HTTPMethod, _ path: String, json: JSONValue? = nil, vin: VIN?, maxBytes: Int? = nil,
        bearer: AccessToken? = nil
    ) async throws(APIError) -> Response {
        let endpoint = "\(method.rawValue) \(path)"
        var retried = bearer != nil
        while true {
            let token: AccessToken
            do {
                if let bearer { token = bearer } else { token = try await tokens.token() }
            } catch let error as APIError {
                throw error
            } catch {
                throw APIError(
                    kind: .transport, endpoint: "POST " + configuration.pathFamily.tokenPath,
                    detail: Self.transportDetail(error, timeout: configuration.requestTimeout))
            }
            var request = HTTPClientRequest(url: configuration.baseURL + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer " + token.value.value)
            request.headers.add(name: "Accept", value: "application/json")
            if let json {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: Self.encode(json)))
            }
            let requestedAt = clock.now()
            let (status, headers, body) = try await Self.send(
                request, http: http, endpoint: endpoint, vin: vin, maxBytes: maxBytes ?? configuration.maxResponseBytes,
                timeout: configuration.requestTimeout)
            let receivedAt = clock.now()
            if (200..<300).contains(status) {
                return Response(
                    endpoint: endpoint, status: status, body: body, requestedAt: requestedAt, receivedAt: receivedAt,
                    vin: vin)
            }
            let header = headers.first(name: "Retry-After")
            let retryAfter = header.flatMap { RetryAfter.parse($0, now: receivedAt) }
            let error = APIError.fromResponse(
                status: status, body: body, endpoint: endpoint, vin: vin, retryAfter: retryAfter,
                retryAfterHeader: header
            )
            .redacting([configuration.clientSecret.value, token.value.value])
            if error.isInvalidToken && !retried {
                logger.info("access token rejected; renewing once", metadata: ["endpoint": "\(endpoint)"])
                await tokens.invalidate(token)
                retried = true
                continue
            }
            throw error
        }
    }

    /// Sends a request and reads at most `maxBytes` of its body, all within `timeout`: a server
    /// that trickles its body cannot hold a poll (and a shutdown) longer than that.
    static func send(
        _ request: HTTPClientRequest, http: HTTPClient, endpoint: String, vin: VIN?, maxBytes: Int, timeout: Duration
    ) async throws(APIError) -> (Int, HTTPHeaders, [UInt8]) {
        do {
            return try await withThrowingTaskGroup(of: (Int, HTTPHeaders, [UInt8])?.self) { group in
                group.addTask {
                    try await sendUnbounded(
                        request, http: http, endpoint: endpoint, vin: vin, maxBytes: maxBytes, timeout: timeout)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let answer = first else {
                    throw APIError(
                        kind: .transport, endpoint: endpoint, detail: "no complete answer within \(readable(timeout))",
                        vin: vin)
                }
                return answer
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(
                kind: .transport, endpoint: endpoint, detail: transportDetail(error, timeout: timeout), vin: vin)
        }
    }

    private static func sendUnbounded(
        _ request: HTTPClientRequest, http: HTTPClient, endpoint: String, vin: VIN?, maxBytes: Int, timeout: Duration
    ) async throws(APIError) -> (Int, HTTPHeaders, [UInt8]) {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .milliseconds(timeout.milliseconds))
        } catch {
            throw APIError(
                kind: .transport, endpoint: endpoint, detail: transportDetail(error, timeout: timeout), vin: vin)
        }
        let status = Int(response.status.code)
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBytes {
            throw APIError(
                kind: .responseTooLarge, endpoint: endpoint, status: status,
                detail: "Content-Length \(length) exceeds the limit of \(maxBytes) bytes", vin: vin)
        }
        do {
            let buffer = try await response.body.collect(upTo: maxBytes)
            return (status, response.headers, Array(buffer.readableBytesView))
        } catch is NIOTooManyBytesError {
            throw APIError(
                kind: .responseTooLarge, endpoint: endpoint, status: status,
                detail: "body exceeds the limit of \(maxBytes) bytes", vin: vin)
        } catch {
            throw APIError(
                kind: .transport, endpoint: endpoint, status: status,
                detail: "body not received: " + transportDetail(error, timeout: timeout), vin: vin)
        }
    }

    /// Requests a client-credentials token: JSON to `POST /v1/access_tokens` (platform) or a form
    /// to `POST /v1/access_token` (document).
    static func requestToken(
        http: HTTPClient, configuration: ClientConfiguration, clock: any WallClock
    ) async throws -> AccessToken {
        let (json, receivedAt) = try await postTokenEndpoint(
            [
                ("grant_type", "client_credentials"), ("client_id", configuration.clientID),
                ("client_secret", configuration.clientSecret.value),
            ],
            http: http, configuration: configuration, clock: clock)
        return try accessToken(in: json, receivedAt: receivedAt, endpoint: "POST " + configuration.pathFamily.tokenPath)
    }

    /// POSTs `fields` to the token endpoint, as the path family sends them (JSON to `POST
    /// /v1/access_tokens`, a form to `POST /v1/access_token`); returns the JSON of a 200 or 201
    /// and when it arrived.
    ///
    /// - Throws: ``APIError`` for any other status (OAuth's `error` as its `title`, e.g.
    ///   `invalid_grant`), a transport failure, or a body that is not JSON; every secret in
    ///   `fields` is redacted from it.
    static func postTokenEndpoint(
        _ fields: [(String, String)], http: HTTPClient, configuration: ClientConfiguration, clock: any WallClock
    ) async throws(APIError) -> (JSONValue, Timestamp) {
        let endpoint = "POST " + configuration.pathFamily.tokenPath
        let request = tokenEndpointRequest(.POST, fields, configuration: configuration)
        let secrets = fields.filter {
            ["client_secret", "code", "code_verifier", "refresh_token", "token"].contains($0.0)
        }
        .map(\.1)
        let (status, headers, bytes) = try await send(
            request, http: http, endpoint: endpoint, vin: nil, maxBytes: configuration.maxResponseBytes,
            timeout: configuration.requestTimeout)
        let receivedAt = clock.now()
        guard status == 200 || status == 201 else {
            let retryAfter = headers.first(name: "Retry-After").flatMap { RetryAfter.parse($0, now: receivedAt) }
            throw APIError.fromResponse(
                status: status, body: bytes, endpoint: endpoint, vin: nil, retryAfter: retryAfter
            )
            .redacting(secrets)
        }
        guard let json = try? JSONParser.parse(bytes), json.objectValue != nil else {
            throw APIError(
                kind: .invalidResponse, endpoint: endpoint, status: status, detail: "the response is not a JSON object")
        }
        return (json, receivedAt)
    }

    /// A request to the token endpoint carrying `fields` as the path family sends them: JSON to
    /// `/v1/access_tokens` (platform), a form to `/v1/access_token` (document).
    static func tokenEndpointRequest(
        _ method: HTTPMethod, _ fields: [(String, String)], configuration: ClientConfiguration
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: configuration.baseURL + configuration.pathFamily.tokenPath)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        switch configuration.pathFamily {
        case .platform:
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(
                ByteBuffer(
                    string: encode(.object(JSONObject(members: fields.map { (key: $0.0, value: .string($0.1)) })))))
        case .document:
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(
                ByteBuffer(string: fields.map { "\($0.0)=\(formEncode($0.1))" }.joined(separator: "&")))
        }
        return request
    }

    /// The `access_token` of a token response, with its expiry (`expires_in`, 300 s when absent).
    static func accessToken(in json: JSONValue, receivedAt: Timestamp, endpoint: String) throws(APIError) -> AccessToken
    {
        guard let token = json["access_token"]?.stringValue, !token.isEmpty else {
            throw APIError(
                kind: .invalidResponse, endpoint: endpoint, status: 200, detail: "no access_token in the response")
        }
        // The token goes into a header: anything but visible ASCII would be a header injection.
        guard headerSafe(token) else {
            throw APIError(
                kind: .invalidResponse, endpoint: endpoint, status: 200,
                detail: "the access_token contains characters not allowed in an HTTP header")
        }
        let expiresIn = json["expires_in"]?.numberValue.map { max(1, min($0, 86_400 * 30)) } ?? 300
        return AccessToken(
            value: Secret(token), expiresAt: receivedAt.adding(milliseconds: Int64(expiresIn * 1000)),
            issuedAt: receivedAt)
    }

    /// True for a token that can go into an HTTP header or a form: 1 to 16 KiB of visible ASCII.
    static func headerSafe(_ token: String) -> Bool {
        !token.isEmpty && token.utf8.count <= 16 * 1024 && token.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// A readable line for a transport failure (NIO's descriptions are long and nested);
    /// `setting` is the config key that names the endpoint.
    static func transportDetail(_ error: any Error, timeout: Duration, setting: String = "api.base_url") -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout: return "no answer within \(readable(timeout))"
            case .connectTimeout: return "could not connect in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: break
            }
        }
        if error is CancellationError { return "cancelled" }
        let text = String(describing: error)
        for (needle, readable) in [
            ("Connection refused", "connection refused: nothing listens at \(setting)'s host and port"),
            ("No route to host", "no route to host"), ("Network is unreachable", "network unreachable"),
            ("Connection reset", "connection reset by peer"),
            ("certificate", "TLS certificate rejected: the server's certificate is not trusted for this host"),
            (
                "handshakeFailed",
                "TLS handshake failed: the server does not speak TLS there, or its certificate is not trusted (check \(setting))"
            ),
            ("uncleanShutdown", "the server closed the TLS connection without a proper close"),
            ("NXDOMAIN", "host not found"), ("UnknownHost", "host not found"), ("getaddrinfo", "host not found"),
            ("Connection timed out", "connection timed out"),
        ] where text.contains(needle) {
            return readable
        }
        return Self.withoutInternals(text)
    }

    /// A library's error text as one line without build paths or nested type dumps.
    static func withoutInternals(_ text: String) -> String {
        var words: [Substring] = []
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            // `/home/build/.../Sources/X.swift:12` and similar paths say nothing to an operator.
            if word.contains(".swift") || (word.hasPrefix("/") && word.count > 1) { continue }
            words.append(word)
        }
        var line = words.joined(separator: " ")
        if line.count > 160 { line = String(line.prefix(160)) + "…" }
        return line.isEmpty ? "a network error" : line
    }

    static func readable(_ duration: Duration) -> String {
        let ms = duration.milliseconds
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }

    static func encode(_ value: JSONValue) -> String {
        value.serialized
    }

    static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// A 200 response of `GET /v1/vehicle-data/autoapi-13/{vin}`.
public struct VehicleDataResponse: Sendable {
    public var vin: VIN
    /// The HTTP status: 200, or another 2xx the API chose.
    public var status: Int
    /// The raw JSON body, at most ``ClientConfiguration/maxResponseBytes``.
    public var body: [UInt8]
    /// When the request was sent, UTC.
    public var requestedAt: Timestamp
    /// When the response arrived, UTC.
    public var receivedAt: Timestamp

    /// Milliseconds from request to response.
    public var latencyMilliseconds: Int64 { receivedAt.millisecondsSince1970 - requestedAt.millisecondsSince1970 }
}
