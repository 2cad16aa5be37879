import AsyncHTTPClient
import FleetModel
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// The High Mobility API client: the only place in fleet-telemetry that knows HTTP.
///
/// It owns an `HTTPClient` with explicit connect and read timeouts, obtains client-credentials
/// access tokens through a ``TokenProvider``, and turns every failure into an ``APIError``.
/// Call ``shutdown()`` before dropping it.
public final class HighMobilityClient: Sendable {
    public let configuration: ClientConfiguration
    private let http: HTTPClient
    private let clock: any WallClock
    private let logger: Logger
    private let tokens: TokenProvider

    /// - Parameters:
    ///   - configuration: Base URL, credentials, timeouts and limits.
    ///   - clock: The wall clock for token expiry and `Retry-After` dates.
    public init(configuration: ClientConfiguration, clock: any WallClock = SystemWallClock(), logger: Logger = Logger(label: "fleet-telemetry.client")) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(
            connect: .milliseconds(configuration.connectTimeout.milliseconds),
            read: .milliseconds(configuration.requestTimeout.milliseconds))
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        self.http = http
        let base = configuration.baseURL
        let clientID = configuration.clientID
        let secret = configuration.clientSecret
        let maxBytes = configuration.maxResponseBytes
        let timeout = configuration.requestTimeout
        self.tokens = TokenProvider(renewalMargin: configuration.tokenRenewalMargin, clock: clock) {
            try await Self.requestToken(http: http, baseURL: base, clientID: clientID, secret: secret, maxBytes: maxBytes, timeout: timeout, clock: clock)
        }
    }

    /// Closes all connections. Call once, when done.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// `GET /v1/vehicle-data/autoapi-13/{vin}`: the vehicle's latest data, as the raw body.
    ///
    /// On a 401 `Invalid token` the token is renewed once and the request retried once.
    ///
    /// - Returns: The body of a 200 response, with its timing.
    /// - Throws: ``APIError`` for every non-200 status (with `Retry-After` on a 429), a transport
    ///   failure or timeout, or a body over ``ClientConfiguration/maxResponseBytes``.
    public func vehicleData(vin: VIN) async throws(APIError) -> VehicleDataResponse {
        let endpoint = "GET /v1/vehicle-data/autoapi-13/\(vin)"
        var retried = false
        while true {
            let token: AccessToken
            do {
                token = try await tokens.token()
            } catch let error as APIError {
                throw error
            } catch {
                throw APIError(kind: .transport, endpoint: "POST /v1/access_tokens", detail: String(describing: error))
            }
            var request = HTTPClientRequest(url: configuration.baseURL + "/v1/vehicle-data/autoapi-13/" + vin.rawValue)
            request.method = .GET
            request.headers.add(name: "Authorization", value: "Bearer " + token.value.value)
            request.headers.add(name: "Accept", value: "application/json")
            let requestedAt = clock.now()
            let (status, headers, body) = try await Self.send(request, http: http, endpoint: endpoint, vin: vin, maxBytes: configuration.maxResponseBytes, timeout: configuration.requestTimeout)
            let receivedAt = clock.now()
            if status == 200 {
                return VehicleDataResponse(vin: vin, body: body, requestedAt: requestedAt, receivedAt: receivedAt)
            }
            let retryAfter = headers.first(name: "Retry-After").flatMap { RetryAfter.parse($0, now: receivedAt) }
            let error = APIError.fromResponse(status: status, body: body, endpoint: endpoint, vin: vin, retryAfter: retryAfter)
            if error.isInvalidToken && !retried {
                logger.info("access token rejected; renewing once", metadata: ["vin": "\(vin)"])
                await tokens.invalidate(token)
                retried = true
                continue
            }
            throw error
        }
    }

    /// Sends a request and reads at most `maxBytes` of its body.
    static func send(_ request: HTTPClientRequest, http: HTTPClient, endpoint: String, vin: VIN?, maxBytes: Int, timeout: Duration) async throws(APIError) -> (Int, HTTPHeaders, [UInt8]) {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .milliseconds(timeout.milliseconds))
        } catch {
            throw APIError(kind: .transport, endpoint: endpoint, detail: String(describing: error), vin: vin)
        }
        let status = Int(response.status.code)
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maxBytes {
            throw APIError(kind: .responseTooLarge, endpoint: endpoint, status: status, detail: "Content-Length \(length) exceeds the limit of \(maxBytes) bytes", vin: vin)
        }
        do {
            let buffer = try await response.body.collect(upTo: maxBytes)
            return (status, response.headers, Array(buffer.readableBytesView))
        } catch is NIOTooManyBytesError {
            throw APIError(kind: .responseTooLarge, endpoint: endpoint, status: status, detail: "body exceeds the limit of \(maxBytes) bytes", vin: vin)
        } catch {
            throw APIError(kind: .transport, endpoint: endpoint, status: status, detail: "body not received: \(error)", vin: vin)
        }
    }

    /// `POST /v1/access_tokens` with the client-credentials grant (JSON body).
    static func requestToken(http: HTTPClient, baseURL: String, clientID: String, secret: Secret, maxBytes: Int, timeout: Duration, clock: any WallClock) async throws -> AccessToken {
        let endpoint = "POST /v1/access_tokens"
        var request = HTTPClientRequest(url: baseURL + "/v1/access_tokens")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        let body = "{\"grant_type\":\"client_credentials\",\"client_id\":\(JSONValue.quoted(clientID)),\"client_secret\":\(JSONValue.quoted(secret.value))}"
        request.body = .bytes(ByteBuffer(string: body))
        let (status, headers, bytes) = try await send(request, http: http, endpoint: endpoint, vin: nil, maxBytes: maxBytes, timeout: timeout)
        let receivedAt = clock.now()
        guard status == 200 || status == 201 else {
            let retryAfter = headers.first(name: "Retry-After").flatMap { RetryAfter.parse($0, now: receivedAt) }
            throw APIError.fromResponse(status: status, body: bytes, endpoint: endpoint, vin: nil, retryAfter: retryAfter)
        }
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)),
              let token = json["access_token"]?.stringValue, !token.isEmpty
        else {
            throw APIError(kind: .invalidResponse, endpoint: endpoint, status: status, detail: "no access_token in the response")
        }
        let expiresIn = json["expires_in"]?.numberValue.map { max(1, min($0, 86_400 * 30)) } ?? 300
        return AccessToken(value: Secret(token), expiresAt: receivedAt.adding(milliseconds: Int64(expiresIn * 1000)))
    }
}

/// A 200 response of `GET /v1/vehicle-data/autoapi-13/{vin}`.
public struct VehicleDataResponse: Sendable {
    public var vin: VIN
    /// The raw JSON body, at most ``ClientConfiguration/maxResponseBytes``.
    public var body: [UInt8]
    /// When the request was sent, UTC.
    public var requestedAt: Timestamp
    /// When the response arrived, UTC.
    public var receivedAt: Timestamp

    /// Milliseconds from request to response.
    public var latencyMilliseconds: Int64 { receivedAt.millisecondsSince1970 - requestedAt.millisecondsSince1970 }
}
