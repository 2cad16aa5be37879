import Crypto
import FleetModel
import Foundation

/// A vehicle owner's consent as the token endpoint grants it (`authorization_code` or
/// `refresh_token` grant): the vehicle's own access token, the refresh token that renews it, and
/// what the platform said of the authorization.
public struct ConsentGrant: Sendable, Hashable {
    /// The platform's word on the authorization: `approved`, or `pending` until the owner (or the
    /// OEM, for BMW and MINI) approves it.
    public enum Status: String, Sendable, Hashable, Codable {
        case approved
        case pending
    }

    /// The vehicle's access token (3600 s on the platform).
    public var accessToken: AccessToken
    /// The refresh token; it may rotate with every refresh (the new one replaces it). `nil` when
    /// the response carried none: then the grant ends with its access token.
    public var refreshToken: Secret?
    /// The scope granted, as sent (e.g. `vehicle:data`, or `diagnostics.get.mileage doors.get.locks`).
    public var scope: String?
    public var status: Status
    /// The platform's `authorization_id`, when sent.
    public var authorizationID: String?

    public init(
        accessToken: AccessToken, refreshToken: Secret?, scope: String?, status: Status, authorizationID: String?
    ) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.scope = scope
        self.status = status
        self.authorizationID = authorizationID
    }
}

/// A PKCE pair (RFC 7636): the secret `code_verifier` kept by the client, and its `S256`
/// `code_challenge` sent in the authorization URL.
public struct PKCE: Sendable, Hashable {
    /// 43 characters of base64url from 32 random bytes.
    public var verifier: Secret
    /// base64url(SHA-256(verifier)), without padding.
    public var challenge: String

    /// A new pair from the system's random source.
    public init() {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        self.init(verifier: Self.base64URL(Data(bytes)))
    }

    /// The pair of a given verifier.
    public init(verifier: String) {
        self.verifier = Secret(verifier)
        self.challenge = Self.base64URL(Data(SHA256.hash(data: Data(verifier.utf8))))
    }

    /// A random `state` value for an authorization request: 32 hex digits (never starting with
    /// `-`, which a command line would take for an option).
    public static func randomState() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            .map { String(format: "%02x", $0) }.joined()
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
