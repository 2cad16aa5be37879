/// What a sink's endpoint made of one delivery attempt.
public enum DeliveryOutcome: Sendable, Equatable {
    /// Acknowledged: a webhook's 2xx (`status`), an MQTT broker's PUBACK (`status` `nil`).
    case delivered(status: Int?)
    /// Anything else: to be tried again (after `retryAfter` when the endpoint said so, as a
    /// webhook's 429 or 503 with `Retry-After`), or given up once too old. `status` is the HTTP
    /// status when there was an answer; `error` is one readable line for `outbox.last_error`.
    case failed(status: Int?, error: String, retryAfter: Duration?)
}

/// Carries stored events to one sink's endpoint, one at a time: a webhook, an MQTT broker.
///
/// The delivery loop (the daemon's `DeliveryService`) decides what is due and records every
/// outcome in the outbox; a transport only sends.
public protocol EventTransport: Sendable {
    /// Waits until the endpoint can be tried, so that no attempt is spent while it is known to be
    /// unreachable (an MQTT broker that is down); returns at once for endpoints with no such
    /// knowledge. Returns early when the task is cancelled.
    func waitUntilReady() async

    /// Sends one stored event (with its id) at `now` and says how it went; never throws.
    func send(_ event: Event, now: Timestamp) async -> DeliveryOutcome
}

extension EventTransport {
    public func waitUntilReady() async {}
}
