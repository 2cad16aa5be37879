import FleetModel

/// Caches the application's access token and renews it before it expires.
///
/// Callers that find no valid token while a renewal is in flight wait for that renewal, so N
/// concurrent requests cause exactly one token request.
public actor TokenProvider {
    /// Fetches a new token; the client's `POST /v1/access_tokens`.
    public typealias Fetch = @Sendable () async throws -> AccessToken

    private let fetch: Fetch
    private let clock: any WallClock
    private let renewalMargin: Duration
    private var cached: AccessToken?
    private var inFlight: Task<AccessToken, any Error>?

    /// - Parameters:
    ///   - renewalMargin: A token is renewed once less than this remains of its life (or half of
    ///     its life, for tokens shorter than twice the margin).
    ///   - clock: The wall clock that expiry is measured against.
    ///   - fetch: Requests a new token.
    public init(renewalMargin: Duration, clock: any WallClock, fetch: @escaping Fetch) {
        self.fetch = fetch
        self.clock = clock
        self.renewalMargin = renewalMargin
    }

    /// A token valid for at least the renewal margin, fetching one if needed.
    ///
    /// - Throws: ``APIError`` from the token endpoint (e.g. HTTP 400/401 for bad client
    ///   credentials), or a transport error.
    public func token() async throws -> AccessToken {
        if let cached, isFresh(cached) {
            return cached
        }
        if let inFlight {
            return try await inFlight.value
        }
        let task = Task { try await fetch() }
        inFlight = task
        defer { inFlight = nil }
        let token = try await task.value
        cached = token
        return token
    }

    /// Forgets `token` (the API said it is invalid), so that the next call fetches a new one.
    /// A newer token fetched meanwhile is kept.
    public func invalidate(_ token: AccessToken) {
        if cached == token { cached = nil }
    }

    private func isFresh(_ token: AccessToken) -> Bool {
        let now = clock.now()
        return now.adding(renewalMargin) < token.expiresAt
    }
}
