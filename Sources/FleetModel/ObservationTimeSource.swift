/// Where a sample's observation time came from.
public enum ObservationTimeSource: String, Sendable, Hashable {
    /// The Auto API property's own `timestamp`: the time the vehicle created the value.
    case property
    /// The response's top-level `timestamp` (the OpenAPI document's simplified shape).
    case response
    /// The time the daemon received the response, because the payload gave none.
    case received
}
