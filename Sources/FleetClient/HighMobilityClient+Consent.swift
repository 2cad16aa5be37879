import AsyncHTTPClient
import FleetModel
import Foundation
import NIOCore

/// The consent flow of the token endpoint (the OpenAPI document's `authorizationCode` flow): a
/// vehicle owner's authorization code exchanged for the vehicle's own tokens, their refresh, their
/// revocation, and the vehicle a token belongs to. Both path families: JSON to `POST
/// /v1/access_tokens` (platform) or a form to `POST /v1/access_token` (document).
extension HighMobilityClient {
    /// The authorization URL the owner opens: `authorizationURL` with `response_type=code`, the
    /// client id, `redirect_uri`, `scope`, `state` and the PKCE `S256` challenge (and `vin`, a
    /// hint some consent pages take).
    public func authorizationURL(
        _ authorizationURL: String, redirectURI: String, scope: String, state: String, pkce: PKCE, vin: VIN?
    ) -> String {
        var components = URLComponents(string: authorizationURL) ?? URLComponents()
        var items = components.queryItems ?? []
        items += [
            URLQueryItem(name: "response_type", value: "code"),
            URLQueryItem(name: "client_id", value: configuration.clientID),
            URLQueryItem(name: "redirect_uri", value: redirectURI),
            URLQueryItem(name: "scope", value: scope),
            URLQueryItem(name: "state", value: state),
            URLQueryItem(name: "code_challenge", value: pkce.challenge),
            URLQueryItem(name: "code_challenge_method", value: "S256"),
        ]
        if let vin { items.append(URLQueryItem(name: "vin", value: vin.rawValue)) }
        components.queryItems = items
        // `+` in a query is a space to form decoders: encode it.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        return components.string ?? authorizationURL
    }

    /// Exchanges an authorization code: `grant_type=authorization_code` with the code, the
    /// `redirect_uri` of the authorization request, the PKCE `code_verifier` and the client's
    /// credentials.
    ///
    /// - Throws: ``APIError``: `invalid_grant` (as its ``APIError/title``) for a code that is
    ///   unknown, expired, already used or does not match the verifier; a transport failure.
    public func exchangeAuthorizationCode(
        _ code: String, redirectURI: String, codeVerifier: Secret
    ) async throws(APIError) -> ConsentGrant {
        try await consentTokenRequest([
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
            ("code_verifier", codeVerifier.value), ("client_id", configuration.clientID),
            ("client_secret", configuration.clientSecret.value),
        ])
    }

    /// Renews a vehicle's tokens: `grant_type=refresh_token`. The answer may carry a new refresh
    /// token (rotation): from then on only that one works.
    ///
    /// - Throws: ``APIError``: `invalid_grant` (its ``APIError/title``) when the refresh token is
    ///   spent, expired or revoked (the owner must consent again); a transport failure or 5xx,
    ///   after which the same refresh token may be tried again.
    public func refreshConsent(_ refreshToken: Secret) async throws(APIError) -> ConsentGrant {
        var grant = try await consentTokenRequest([
            ("grant_type", "refresh_token"), ("refresh_token", refreshToken.value),
            ("client_id", configuration.clientID), ("client_secret", configuration.clientSecret.value),
        ])
        // A response without a new refresh token leaves the old one in force.
        if grant.refreshToken == nil { grant.refreshToken = refreshToken }
        return grant
    }

    /// Revokes a vehicle's grant at the platform (RFC 7009: `DELETE` on the token endpoint with the
    /// token and the client's credentials). An unknown token is not an error.
    public func revokeConsent(_ token: Secret, hint: String = "refresh_token") async throws(APIError) {
        let endpoint = "DELETE " + configuration.pathFamily.tokenPath
        let request = Self.tokenEndpointRequest(
            .DELETE,
            [
                ("token", token.value), ("token_type_hint", hint), ("client_id", configuration.clientID),
                ("client_secret", configuration.clientSecret.value),
            ], configuration: configuration)
        let (status, _, body) = try await Self.send(
            request, http: http, endpoint: endpoint, vin: nil, maxBytes: configuration.maxResponseBytes,
            timeout: configuration.requestTimeout)
        guard (200..<300).contains(status) else {
            throw APIError.fromResponse(status: status, body: body, endpoint: endpoint, vin: nil, retryAfter: nil)
                .redacting([token.value, configuration.clientSecret.value])
        }
    }

    /// `GET /v1/vehicleinfo`: the VIN a vehicle access token belongs to.
    ///
    /// - Throws: ``APIError`` for a refused token, or a 200 without a valid `vin`.
    public func vehicleInfo(token: AccessToken) async throws(APIError) -> VIN {
        let response = try await send(.GET, "/v1/vehicleinfo", vin: nil, bearer: token)
        guard let json = try? JSONParser.parse(response.body), let text = json["vin"]?.stringValue,
            let vin = VIN(text)
        else {
            throw APIError(
                kind: .invalidResponse, endpoint: "GET /v1/vehicleinfo", status: response.status,
                detail: "no valid vin in the response")
        }
        return vin
    }

    /// `GET /v1/vehicle-data/autoapi-13/{vin}` with the vehicle's own access token (consent): as
    /// ``vehicleData(vin:)``, but a 401 is not retried with a new application token: the caller
    /// refreshes the grant.
    public func vehicleData(vin: VIN, token: AccessToken) async throws(APIError) -> VehicleDataResponse {
        let response = try await send(.GET, PathFamily.vehicleDataPath(vin.rawValue), vin: vin, bearer: token)
        return VehicleDataResponse(
            vin: vin, status: response.status, body: response.body, requestedAt: response.requestedAt,
            receivedAt: response.receivedAt)
    }

    private func consentTokenRequest(_ fields: [(String, String)]) async throws(APIError) -> ConsentGrant {
        let endpoint = "POST " + configuration.pathFamily.tokenPath
        let (json, receivedAt) = try await Self.postTokenEndpoint(
            fields, http: http, configuration: configuration, clock: clock)
        let token = try Self.accessToken(in: json, receivedAt: receivedAt, endpoint: endpoint)
        let refresh = json["refresh_token"]?.stringValue
        if let refresh, !Self.headerSafe(refresh) {
            throw APIError(
                kind: .invalidResponse, endpoint: endpoint, status: 200,
                detail: "the refresh_token contains characters not allowed in a request")
        }
        let status: ConsentGrant.Status = json["status"]?.stringValue == "pending" ? .pending : .approved
        return ConsentGrant(
            accessToken: token, refreshToken: refresh.map(Secret.init), scope: json["scope"]?.stringValue,
            status: status, authorizationID: json["authorization_id"]?.stringValue)
    }
}
