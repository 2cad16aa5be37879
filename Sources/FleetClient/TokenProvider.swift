import FleetModel

/// Caches the application's access token and renews it before it expires.
///
/// - Callers that find no usable token while a renewal is in flight wait for that renewal, so N
///   concurrent requests cause exactly one token request.
/// - A renewal that fails while the current token is still valid is not an error: the current
///   token keeps being used and the renewal is retried with exponential backoff (1 s, 2 s, 4 s, …
///   at most 60 s). Only when no valid token is left does the failure reach the caller.
public actor TokenProvider {
    /// Fetches a new token; the client's token request.
    public typealias Fetch = @Sendable () async throws -> AccessToken

    private let fetch: Fetch
    private let clock: any WallClock
    private let renewalMargin: Duration
    private var cached: AccessToken?
    private var inFlight: Task<AccessToken, any Error>?
    private var failedRenewals = 0
    private var nextRenewalAttempt: Timestamp?

    /// - Parameters:
    ///   - renewalMargin: A token is renewed once less than this (or half of its life, for a
    ///     short-lived token) remains.
    ///   - clock: The wall clock that expiry is measured against.
    ///   - fetch: Requests a new token.
    public init(renewalMargin: Duration, clock: any WallClock, fetch: @escaping Fetch) {
        self.fetch = fetch
        self.clock = clock
        self.renewalMargin = renewalMargin
    }

    /// A valid token, renewing it first when it is close to expiry.
    ///
    /// - Throws: The token endpoint's ``APIError`` (e.g. HTTP 401 for bad client credentials) or
    ///   a transport error, when no valid token is left.
    public func token() async throws -> AccessToken {
        let now = clock.now()
        if let cached, cached.isFresh(at: now, margin: renewalMargin) {
            return cached
        }
        let stillValid = cached.flatMap { now < $0.expiresAt ? $0 : nil }
        if let stillValid, let nextRenewalAttempt, now < nextRenewalAttempt {
            return stillValid
        }
        do {
            let token = try await renew()
            return token
        } catch {
            guard let stillValid = cached.flatMap({ clock.now() < $0.expiresAt ? $0 : nil }) ?? stillValid else {
                throw error
            }
            failedRenewals += 1
            let backoff = min(60, 1 << min(failedRenewals - 1, 6))
            nextRenewalAttempt = clock.now().adding(.seconds(backoff))
            return stillValid
        }
    }

    private func renew() async throws -> AccessToken {
        if let inFlight {
            return try await inFlight.value
        }
        let task = Task { try await fetch() }
        inFlight = task
        defer { inFlight = nil }
        let token = try await task.value
        cached = token
        failedRenewals = 0
        nextRenewalAttempt = nil
        return token
    }

    /// Forgets `token` (the API said it is invalid), so that the next call fetches a new one.
    /// A newer token fetched meanwhile is kept.
    public func invalidate(_ token: AccessToken) {
        if cached == token {
            cached = nil
            nextRenewalAttempt = nil
        }
    }
}
