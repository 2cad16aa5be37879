import FleetModel

/// The topics fleet-telemetry publishes under one prefix.
public struct MQTTTopics: Sendable, Hashable {
    /// The first topic level(s), without a trailing `/` (`sinks.mqtt.prefix`).
    public var prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    /// `<prefix>/availability`: `online` or `offline`, retained; `offline` is the last will.
    public var availability: String { "\(prefix)/availability" }

    /// `<prefix>/<vin>/events/<type>`: one event's JSON line, QoS 1, never retained.
    public func event(_ event: Event) -> String { "\(prefix)/\(event.vin.rawValue)/events/\(event.type.rawValue)" }

    /// `<prefix>/<vin>/state/<name>`: one value of the vehicle's latest state, retained.
    public func state(_ vin: VIN, _ name: String) -> String { "\(prefix)/\(vin.rawValue)/state/\(name)" }
}

/// Publishes each stored event on `<prefix>/<vin>/events/<type>` (``MQTTTopics/event(_:)``),
/// QoS 1, not retained, with the event's JSON line (``Event/jsonLine``, which carries its `id`)
/// as the payload: delivered once the broker's PUBACK came.
public struct MQTTEventPublisher: EventTransport {
    /// The broker connection, shared with the state topics.
    public let connection: MQTTConnection
    /// The prefix the topics are under.
    public let topics: MQTTTopics
    /// The longest wait for a PUBACK.
    public let timeout: Duration

    public init(connection: MQTTConnection, topics: MQTTTopics, timeout: Duration = .seconds(10)) {
        self.connection = connection
        self.topics = topics
        self.timeout = timeout
    }

    /// Returns once the broker accepted the connection (checked every 100 ms), or when cancelled.
    public func waitUntilReady() async {
        while !connection.isConnected {
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
        }
    }

    /// Publishes `event` and waits for the PUBACK: delivered (no status), or failed with the
    /// ``MQTTError``'s text (never a `retryAfter`: the loop's backoff applies).
    public func send(_ event: Event, now: Timestamp) async -> DeliveryOutcome {
        do {
            try await connection.publish(
                topic: topics.event(event), payload: Array(event.jsonLine.utf8), retain: false, timeout: timeout)
            return .delivered(status: nil)
        } catch {
            return .failed(status: nil, error: String(describing: error), retryAfter: nil)
        }
    }
}
