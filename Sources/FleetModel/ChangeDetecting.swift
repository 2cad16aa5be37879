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
}
