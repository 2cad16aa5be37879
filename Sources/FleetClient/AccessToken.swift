import FleetModel

/// An OAuth 2.0 access token from `POST /v1/access_tokens` (client-credentials grant).
public struct AccessToken: Sendable, Hashable {
    /// The bearer token (an ES256 JWT on the platform).
    public var value: Secret
    /// When it stops being accepted, UTC: the response time plus `expires_in` seconds (300 on the platform).
    public var expiresAt: Timestamp
    /// When it was received, UTC.
    public var issuedAt: Timestamp?

    public init(value: Secret, expiresAt: Timestamp, issuedAt: Timestamp? = nil) {
        self.value = value
        self.expiresAt = expiresAt
        self.issuedAt = issuedAt
    }

    /// True while more than `margin` (or half of the token's life, when that is shorter and
    /// ``issuedAt`` is known) remains.
    public func isFresh(at now: Timestamp, margin: Duration) -> Bool {
        var margin = margin
        if let issuedAt {
            margin = min(margin, expiresAt.duration(since: issuedAt) / 2)
        }
        return now.adding(margin) < expiresAt
    }
}
