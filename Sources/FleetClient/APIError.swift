import FleetModel
import Foundation

/// A failed call to the High Mobility API, with what an operator needs to act on it.
///
/// Built from all three error bodies the platform uses: `{"errors":[{title, detail, source}],
/// "request_id"}`, OAuth's `{"error", "error_description"}`, and a bare array of errors. A body
/// that is not JSON (an HTML page from a proxy, a truncated body) still yields an error with the
/// status. Never contains the client secret or an access token.
public struct APIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Kind: Sendable, Hashable {
        /// The API answered with a non-success HTTP status.
        case http
        /// No response: connection refused, DNS failure, connect or read timeout.
        case transport
        /// The response body exceeded the configured size limit and was not read whole.
        case responseTooLarge
        /// A success status with a body that could not be understood.
        case invalidResponse
    }

    public var kind: Kind
    /// The endpoint, as `METHOD /path` (no host, no query).
    public var endpoint: String
    /// The HTTP status, `nil` for transport failures.
    public var status: Int?
    /// The API's error `title` (or OAuth `error`).
    public var title: String?
    /// The API's error `detail` (or OAuth `error_description`), or what went wrong locally.
    public var detail: String?
    /// The API's `request_id`, to quote to High Mobility support.
    public var requestID: String?
    /// The VIN the request was about, when there is one.
    public var vin: VIN?
    /// The server's `Retry-After`, as a delay from when the response arrived; `nil` when the
    /// header was absent or unusable (see ``retryAfterHeader``).
    public var retryAfter: Duration?
    /// The raw `Retry-After` header, when one was sent (also when it could not be parsed).
    public var retryAfterHeader: String?
    /// For a failed token request: the wait before the next one of the shared backoff
    /// (``TokenProvider``), set by the provider; `nil` otherwise.
    public var nextAttemptIn: Duration?

    /// The wait the server asked for: `Retry-After`, else a `retry after 10s` in the error detail
    /// (the fleet API's 429 body says so), else `nil`.
    public var requestedWait: Duration? {
        if let retryAfter { return retryAfter }
        guard let detail = detail?.lowercased(), let range = detail.range(of: "retry after ") else { return nil }
        let digits = detail[range.upperBound...].prefix { $0.isNumber }
        guard let seconds = Int64(digits), seconds >= 0, seconds <= 86_400 * 7 else { return nil }
        let unit = detail[range.upperBound...].dropFirst(digits.count).first
        return unit == nil || unit == "s" || unit == " " ? .seconds(seconds) : nil
    }

    public init(
        kind: Kind, endpoint: String, status: Int? = nil, title: String? = nil, detail: String? = nil,
        requestID: String? = nil, vin: VIN? = nil, retryAfter: Duration? = nil
    ) {
        self.kind = kind
        self.endpoint = endpoint
        self.status = status
        self.title = title
        self.detail = detail
        self.requestID = requestID
        self.vin = vin
        self.retryAfter = retryAfter
    }

    /// This error with every occurrence of `secrets` (client secret, access token) in its
    /// title and detail replaced by `<redacted>`: error bodies can echo what was sent.
    public func redacting(_ secrets: [String]) -> APIError {
        var copy = self
        for secret in secrets where secret.count >= 4 {
            copy.title = copy.title?.replacingOccurrences(of: secret, with: "<redacted>")
            copy.detail = copy.detail?.replacingOccurrences(of: secret, with: "<redacted>")
        }
        return copy
    }

    /// True when the token endpoint refused the client id or secret (HTTP 400/401 from
    /// `POST /v1/access_tokens`): retrying cannot help until the config is fixed.
    public var isCredentialsRejected: Bool {
        endpoint.hasPrefix("POST /v1/access_token") && (status == 400 || status == 401) && !isInvalidGrant
    }

    /// True for OAuth's `invalid_grant`: an authorization code or refresh token the token endpoint
    /// refuses (spent, expired, revoked); the client's credentials are not in question.
    public var isInvalidGrant: Bool { title == "invalid_grant" }

    /// True for a 401 `Consent is removed by OEM`: the vehicle must not be polled any more.
    public var isConsentRemoved: Bool {
        status == 401 && (detail ?? "").lowercased().contains("consent is removed")
    }

    /// True for HTTP 429 Too Many Requests.
    public var isRateLimited: Bool { status == 429 }

    /// True for a 401 whose detail says the access token is invalid or expired, which a fresh
    /// token cures.
    public var isInvalidToken: Bool {
        guard status == 401 else { return false }
        let text = (detail ?? "").lowercased()
        return text.contains("invalid token") || text.contains("expired") || text.contains("invalid jwt")
    }

    public var description: String {
        var parts = [endpoint]
        if let vin { parts.append("VIN \(vin)") }
        var text = parts.joined(separator: " for ") + ": "
        switch kind {
        case .http: text += "HTTP \(status ?? 0)"
        case .transport:
            text += status.map { "response interrupted after HTTP \($0)" } ?? (detail == nil ? "no response" : "")
        case .responseTooLarge: text += "response too large"
        case .invalidResponse: text += "invalid response (HTTP \(status ?? 0))"
        }
        let message = [title, detail].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        if !message.isEmpty { text += text.hasSuffix(": ") ? message : " \(message)" }
        if let retryAfter { text += " (Retry-After \(retryAfter.milliseconds / 1000) s)" }
        if let requestID { text += " [request_id \(requestID)]" }
        return text
    }

    /// Reads an error response of any of the platform's three shapes.
    ///
    /// - Parameters:
    ///   - status: The HTTP status.
    ///   - body: The (possibly truncated, possibly non-JSON) body.
    package static func fromResponse(
        status: Int, body: [UInt8], endpoint: String, vin: VIN?, retryAfter: Duration?, retryAfterHeader: String? = nil
    ) -> APIError {
        var error = APIError(kind: .http, endpoint: endpoint, status: status, vin: vin, retryAfter: retryAfter)
        error.retryAfterHeader = retryAfterHeader.map { oneLine($0, limit: 100) }
        guard let json = try? JSONParser.parse(body) else {
            let text = oneLine(String(decoding: body.prefix(120), as: UTF8.self), limit: 120)
                .trimmingCharacters(in: .whitespaces)
            error.detail = body.isEmpty ? "empty body" : "non-JSON body: \(text)\(body.count > 120 ? "…" : "")"
            return error
        }
        var first: JSONValue?
        switch json {
        case .object(let object):
            error.requestID = object["request_id"]?.stringValue.map { oneLine($0, limit: 100) }
            if let errors = object["errors"]?.arrayValue {
                first = errors.first
            } else if let oauth = object["error"]?.stringValue {
                error.title = oauth
                error.detail = object["error_description"]?.stringValue
            } else {
                first = json
            }
        case .array(let errors):
            first = errors.first
        default:
            break
        }
        if let first {
            error.title = first["title"]?.stringValue ?? error.title
            error.detail = first["detail"]?.stringValue ?? error.detail
        }
        // Logged and printed: one line each, bounded, whatever the body held.
        error.title = error.title.map { oneLine($0, limit: 200) }
        error.detail = error.detail.map { oneLine($0, limit: 500) }
        return error
    }

    /// `text` cut to `limit` characters, with every control character (C0, DEL, C1, and the
    /// Unicode line and paragraph separators) replaced by a space.
    static func oneLine(_ text: String, limit: Int) -> String {
        var out = String.UnicodeScalarView()
        for character in text.prefix(limit) {
            for scalar in character.unicodeScalars {
                out.append(scalar.breaksALine ? " " : scalar)
            }
        }
        // A CR LF is one character and becomes two spaces: cut again.
        return String(String(out).prefix(limit))
    }
}
