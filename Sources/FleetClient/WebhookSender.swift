import AsyncHTTPClient
import Crypto
import FleetModel
import Foundation
import NIOCore
import NIOHTTP1

/// A webhook endpoint's signing secret as the Standard Webhooks specification writes it:
/// `whsec_` and the base64 of the key. Never printed.
public struct WebhookSecret: Sendable, CustomStringConvertible {
    let key: SymmetricKey

    /// `nil` unless `text` is `whsec_` followed by base64 of at least 16 bytes.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(trimmed.dropFirst(6))),
            bytes.count >= 16
        else { return nil }
        key = SymmetricKey(data: bytes)
    }

    public var description: String { "<redacted>" }
}

/// Sends one event to one webhook endpoint: `POST` of the JSON body, signed as the Standard
/// Webhooks specification says (`webhook-id`, `webhook-timestamp` in seconds since 1970, and
/// `webhook-signature: v1,<base64 of HMAC-SHA256 of "id.timestamp.body">`), so that a receiver can
/// check it with the specification's libraries.
public struct WebhookSender: EventTransport {
    /// The endpoint.
    public let url: String
    let secret: WebhookSecret
    let timeout: Duration
    let client: HTTPClient

    /// - Parameters:
    ///   - url: The endpoint, `http://` or `https://` (TLS verified as for the API).
    ///   - timeout: The longest wait for the whole answer.
    /// The client webhooks are sent with: `HTTPClient.shared`'s settings, but redirects are not
    /// followed (a 3xx is the receiver's answer, a failure), since a redirected POST would
    /// become a GET elsewhere, and a receiver that cannot be connected to fails after 3 s
    /// (connections are retried until then) instead of the whole `timeout`.
    public static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(3))))

    public init(
        url: String, secret: WebhookSecret, timeout: Duration = .seconds(10), client: HTTPClient = WebhookSender.client
    ) {
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.client = client
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (swift-crypto's HMAC).
    public static func signature(id: String, timestamp: Int64, body: [UInt8], secret: WebhookSecret) -> String {
        var content = Array("\(id).\(timestamp).".utf8)
        content += body
        let mac = HMAC<SHA256>.authenticationCode(for: content, using: secret.key)
        return "v1," + Data(mac).base64EncodedString()
    }

    /// Posts the event's JSON line (``Event/jsonLine``) as message `evt_<id>`.
    public func send(_ event: Event, now: Timestamp) async -> DeliveryOutcome {
        await send(id: "evt_\(event.id ?? 0)", body: Array(event.jsonLine.utf8), now: now)
    }

    /// Posts `body` as message `id` at `now`; never throws (a failure is a ``DeliveryOutcome``):
    /// a 2xx is delivered, anything else failed, with the `Retry-After` of a 429 or 503.
    public func send(id: String, body: [UInt8], now: Timestamp) async -> DeliveryOutcome {
        let timestamp = now.millisecondsSince1970 / 1000
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "fleet-telemetry")
        request.headers.add(name: "webhook-id", value: id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(
            name: "webhook-signature", value: Self.signature(id: id, timestamp: timestamp, body: body, secret: secret))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(timeout.milliseconds))
            // The answer's body says nothing we use; at most 64 KiB of it is read.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            if (200..<300).contains(status) { return .delivered(status: status) }
            var retryAfter: Duration?
            if status == 429 || status == 503, let header = response.headers.first(name: "Retry-After") {
                // At least 1 s: `0` or a date in the past must not make a busy loop.
                retryAfter = RetryAfter.parse(header, now: now).map { max($0, .seconds(1)) }
            }
            return .failed(
                status: status, error: "HTTP \(status) \(response.status.reasonPhrase)", retryAfter: retryAfter)
        } catch {
            return .failed(
                status: nil,
                error: HighMobilityClient.transportDetail(error, timeout: timeout, setting: "the webhook's url"),
                retryAfter: nil)
        }
    }
}
