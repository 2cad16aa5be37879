import FleetModel

/// What a failed vehicle-data request means for the vehicle: the only reading of HTTP statuses
/// and error details outside this module is through this type.
///
/// The daemon's scheduler and ingestion decide cadence, backoff and vehicle state from it.
public enum VehicleDataFailure: Sendable, Hashable {
    /// HTTP 408: the vehicle is asleep or offline; ask again at the slow cadence.
    case asleep
    /// HTTP 422: the vehicle has no data yet (just cleared, or never reported).
    case dataPending
    /// HTTP 403 whose detail says privacy mode is active: the driver shares no data.
    case privacyMode
    /// HTTP 403 otherwise: the application has no clearance for the vehicle.
    case notCleared
    /// HTTP 429 (or a 401/403 quota error, ``APIError/isQuotaExhausted``), with the wait the API
    /// asked for (`Retry-After`, or a `retry after 10s` in the detail) when it gave a usable one;
    /// `applicationWide` says whose limit the error names (``APIError/limitIsApplicationWide``):
    /// `true` the application's or account's, `false` the vehicle's, `nil` it does not say.
    case rateLimited(retryAfter: Duration?, applicationWide: Bool? = nil)
    /// No access token could be obtained (the token endpoint is down, unreachable or limits the
    /// application), so no request was sent: no failure of the vehicle. `retryAfter` is the wait
    /// until the next token request of the shared backoff.
    case tokenUnavailable(retryAfter: Duration?)
    /// HTTP 401 `Consent is removed by OEM`: the vehicle must not be polled any more.
    case consentRemoved
    /// The token endpoint refused `api.client_id` / `api.client_secret` (HTTP 400/401): no
    /// request can succeed until the configuration is fixed.
    case credentialsRejected
    /// Anything else (5xx, a transport failure, an unreadable or oversized body): back off and
    /// try again.
    case transientFault
}

extension APIError {
    /// What this error means for the vehicle the request was about.
    public var vehicleDataFailure: VehicleDataFailure {
        if isCredentialsRejected { return .credentialsRejected }
        if isTokenRequest { return .tokenUnavailable(retryAfter: nextAttemptIn ?? retryAfter) }
        if isConsentRemoved { return .consentRemoved }
        if isRateLimited || isQuotaExhausted {
            return .rateLimited(retryAfter: requestedWait, applicationWide: limitIsApplicationWide)
        }
        guard kind == .http else { return .transientFault }
        switch status {
        case 408: return .asleep
        case 422: return .dataPending
        case 403 where (detail ?? "").lowercased().contains("privacy"): return .privacyMode
        case 403: return .notCleared
        default: return .transientFault
        }
    }

    /// True for a 401 or 403 whose title or detail says a quota or limit is spent (`quota
    /// exceeded`, `limit exceeded`, `too many requests`): some OEMs answer an exhausted quota so.
    /// It is a rate limit (back off, then resume), not a lost clearance or consent.
    public var isQuotaExhausted: Bool {
        guard kind == .http, status == 401 || status == 403 else { return false }
        let text = ((title ?? "") + " " + (detail ?? "")).lowercased()
        return ["quota exceeded", "limit exceeded", "too many requests", "quota exhausted"].contains {
            text.contains($0)
        }
    }

    /// Whose limit a rate-limit error names: `true` when its title or detail says the
    /// application's or the account's (`application`, `account`, `per app`), `false` when it says
    /// the vehicle's (`vehicle`, `VIN`), `nil` when it says neither.
    public var limitIsApplicationWide: Bool? {
        let text = " " + ((title ?? "") + " " + (detail ?? "")).lowercased() + " "
        if ["application", "account", "per app", " app limit", " app "].contains(where: { text.contains($0) }) {
            return true
        }
        if ["vehicle", " vin", "per car"].contains(where: { text.contains($0) }) { return false }
        return nil
    }

    /// True when the error came from the token request (`POST /v1/access_tokens`), so the
    /// request it was for was never sent.
    public var isTokenRequest: Bool {
        endpoint.hasPrefix("POST /v1/access_token")
    }

    /// The HTTP status to record for the request: `nil` when no whole answer came (a response
    /// cut short is no answer; its status line alone says nothing).
    public var recordedStatus: Int? {
        kind == .transport ? nil : status
    }

    /// True when the server sent a `Retry-After` header that could not be used (neither
    /// seconds nor an HTTP-date in range), so the caller backs off instead.
    public var hasUnusableRetryAfter: Bool {
        isRateLimited && retryAfterHeader != nil && retryAfter == nil
    }
}
