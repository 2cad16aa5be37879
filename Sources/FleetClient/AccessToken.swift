import FleetModel

/// An OAuth 2.0 access token from `POST /v1/access_tokens` (client-credentials grant).
public struct AccessToken: Sendable, Hashable {
    /// The bearer token (an ES256 JWT on the platform).
    public var value: Secret
    /// When it stops being accepted, UTC: the response time plus `expires_in` seconds (300 on the platform).
    public var expiresAt: Timestamp

    public init(value: Secret, expiresAt: Timestamp) {
        self.value = value
        self.expiresAt = expiresAt
    }
}
