import FleetModel
import Metrics

/// Caches the application's access token and renews it before it expires.
///
/// - Callers that find no usable token while a renewal is in flight wait for that renewal, so N
///   concurrent requests cause exactly one token request.
/// - A renewal that fails while the current token is still valid is not an error: the current
///   token keeps being used and the renewal is retried with exponential backoff (1 s, 2 s, 4 s, …
///   at most 60 s). Only when no valid token is left does the failure reach the caller.
/// - With no valid token, one backoff is shared by every caller whatever the fleet size: after a
///   failed token request the next one is sent only after 1 s, doubling with jitter (between half
///   and all of it) up to 60 s, or after the token endpoint's `Retry-After` when longer. Callers
///   meanwhile get the last failure at once, with ``APIError/nextAttemptIn`` set to the wait left.
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
    /// Failed token requests in a row while no valid token was left.
    private var failedFetches = 0
    /// With no valid token: the earliest time of the next token request, and the last failure.
    private var nextFetch: (at: Timestamp, error: any Error)?
    private var random: SplitMix64
    /// Called once per failed renewal while the current token is still valid (a warning to log:
    /// nothing fails yet, but polling stops when the token expires).
    private let onRenewalFailure:
        (@Sendable (_ error: any Error, _ validUntil: Timestamp, _ retryIn: Duration) -> Void)?

    /// The longest wait of the shared backoff.
    public static let maxBackoff: Duration = .seconds(60)

    /// - Parameters:
    ///   - renewalMargin: A token is renewed once less than this (or half of its life, for a
    ///     short-lived token) remains.
    ///   - clock: The wall clock that expiry is measured against.
    ///   - seed: Seeds the backoff jitter.
    ///   - fetch: Requests a new token.
    public init(
        renewalMargin: Duration, clock: any WallClock, seed: UInt64 = UInt64.random(in: 0...UInt64.max),
        onRenewalFailure: (@Sendable (_ error: any Error, _ validUntil: Timestamp, _ retryIn: Duration) -> Void)? = nil,
        fetch: @escaping Fetch
    ) {
        self.onRenewalFailure = onRenewalFailure
        self.fetch = fetch
        self.clock = clock
        self.renewalMargin = renewalMargin
        self.random = SplitMix64(seed: seed)
    }

    /// Token requests failed in a row while no valid token was left (0 once one succeeds).
    public var consecutiveFailures: Int { failedFetches }

    /// A valid token, renewing it first when it is close to expiry.
    ///
    /// - Throws: The token endpoint's ``APIError`` (e.g. HTTP 401 for bad client credentials) or
    ///   a transport error, when no valid token is left; during the shared backoff the last such
    ///   failure, at once, with ``APIError/nextAttemptIn`` set to the wait before the next attempt.
    public func token() async throws -> AccessToken {
        let now = clock.now()
        if let cached, cached.isFresh(at: now, margin: renewalMargin) {
            return cached
        }
        let stillValid = cached.flatMap { now < $0.expiresAt ? $0 : nil }
        if let stillValid, let nextRenewalAttempt, now < nextRenewalAttempt {
            return stillValid
        }
        if stillValid == nil, inFlight == nil, let nextFetch, now < nextFetch.at {
            throw Self.annotated(nextFetch.error, wait: nextFetch.at.duration(since: now))
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
            onRenewalFailure?(error, stillValid.expiresAt, .seconds(backoff))
            return stillValid
        }
    }

    private func renew() async throws -> AccessToken {
        let task: Task<AccessToken, any Error>
        if let inFlight {
            task = inFlight
        } else {
            let fetch = self.fetch
            task = Task {
                do {
                    let token = try await fetch()
                    self.succeeded(token)
                    return token
                } catch {
                    throw self.failed(error)
                }
            }
            inFlight = task
        }
        // A caller that is cancelled (the daemon is stopping) cancels the token request too.
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    private func succeeded(_ token: AccessToken) {
        Counter(label: "fleet_telemetry_token_requests_total", dimensions: [("result", "ok")]).increment()
        inFlight = nil
        cached = token
        failedRenewals = 0
        nextRenewalAttempt = nil
        failedFetches = 0
        nextFetch = nil
    }

    /// Books a failed token request; the error callers get, with the wait before the next try
    /// when no valid token is left.
    private func failed(_ error: any Error) -> any Error {
        Counter(label: "fleet_telemetry_token_requests_total", dimensions: [("result", "failed")]).increment()
        inFlight = nil
        let now = clock.now()
        guard cached.map({ now >= $0.expiresAt }) ?? true else { return error }
        failedFetches += 1
        let full = min(Duration.seconds(1) * (1 << min(failedFetches - 1, 10)), Self.maxBackoff)
        let fraction = 0.5 + random.uniform(0...0.5)
        var wait = Duration.milliseconds(max(1, Int64(Double(full.milliseconds) * fraction)))
        if let asked = (error as? APIError)?.retryAfter, asked > wait { wait = min(asked, .seconds(3600)) }
        nextFetch = (now.adding(wait), error)
        return Self.annotated(error, wait: wait)
    }

    private static func annotated(_ error: any Error, wait: Duration) -> any Error {
        guard var error = error as? APIError else { return error }
        error.nextAttemptIn = wait
        return error
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
