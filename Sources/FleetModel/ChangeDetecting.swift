/// Decides which change events a new set of observations causes.
///
/// The store calls it inside the poll's transaction with the latest stored values of the VIN, so
/// that detection and the write of the new values are atomic.
public protocol ChangeDetecting: Sendable {
    /// The events caused by `observed`, compared with `previous`.
    ///
    /// - Parameters:
    ///   - previous: The `latest` rows of the VIN before this poll, by series. Empty for a VIN's
    ///     first observation, which sets the baseline and emits nothing.
    ///   - observed: The samples of this poll (all of one VIN).
    ///   - detectedAt: When the poll's response arrived, UTC.
    /// - Returns: Events without ids; the store assigns them.
    func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp) -> [Event]

    /// Like ``events(previous:observed:detectedAt:)`` for rules that keep state between polls
    /// (a hysteresis that is armed or not, the position a vehicle was last seen moving from).
    ///
    /// - Parameter state: The VIN's rule state (`rule_state` table) by key; changes are stored
    ///   in the same transaction as the events.
    func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp, state: inout [String: String]) -> [Event]
}

extension ChangeDetecting {
    public func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp, state: inout [String: String]) -> [Event] {
        events(previous: previous, observed: observed, detectedAt: detectedAt)
    }
}
