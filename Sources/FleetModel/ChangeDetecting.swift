/// Decides which change events a vehicle's new facts cause: the event rules (FleetEvents'
/// `EventRules`) behind the store's writes.
///
/// The store calls it inside the transaction that writes the facts, with the VIN's latest stored
/// values and its rule state, so that detection, the state and the write are atomic. It decides
/// every event; the store only gathers the facts and keeps what it is handed.
public protocol ChangeDetecting: Sendable {
    /// The events caused by `observed`, compared with `previous`.
    ///
    /// - Parameters:
    ///   - previous: The `latest` rows of the VIN before this poll, by series. Empty for a VIN's
    ///     first observation, which sets the baseline and emits nothing.
    ///   - observed: The samples of this poll (all of one VIN).
    ///   - detectedAt: When the poll's response arrived, UTC.
    ///   - state: The VIN's rule state (`rule_state` table); changes are stored in the same
    ///     transaction as the events.
    /// - Returns: Events without ids; the store assigns them.
    func events(
        previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp,
        state: inout RuleState
    ) -> [Event]

    /// The events of what a response says about privacy mode (`privacy_mode_entered`, `_left`).
    ///
    /// - Parameter privacyMode: True when the answer says privacy mode is on, false when data came.
    func privacyEvents(vin: VIN, privacyMode: Bool, at time: Timestamp, state: inout RuleState) -> [Event]

    /// How long without a new observation makes a vehicle silent; `nil` when no silence is detected.
    var silentAfter: Duration? { get }

    /// The events of a vehicle that has sent nothing new since `lastReceivedAt` (the daemon's
    /// receive time of its newest `latest` row), checked at `now` (`vehicle_silent`).
    func silenceEvents(vin: VIN, lastReceivedAt: Timestamp, now: Timestamp, state: inout RuleState) -> [Event]

    /// The event of a fleet sync that saw a vehicle's clearance go from `previous` to `current`
    /// (`clearance_changed`); `previous` is `nil` for a vehicle seen for the first time.
    func clearanceEvents(
        vin: VIN, from previous: ClearanceStatus?, to current: ClearanceStatus,
        at time: Timestamp
    ) -> [Event]
}

extension ChangeDetecting {
    /// ``events(previous:observed:detectedAt:state:)`` for a caller that keeps no rule state.
    public func events(previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp) -> [Event] {
        var state: RuleState = [:]
        return events(previous: previous, observed: observed, detectedAt: detectedAt, state: &state)
    }

    /// A detector of transitions only: no privacy-mode events.
    public func privacyEvents(vin: VIN, privacyMode: Bool, at time: Timestamp, state: inout RuleState) -> [Event] {
        []
    }

    /// A detector of transitions only: no silence.
    public var silentAfter: Duration? { nil }

    /// A detector of transitions only: no silence.
    public func silenceEvents(vin: VIN, lastReceivedAt: Timestamp, now: Timestamp, state: inout RuleState) -> [Event] {
        []
    }

    /// A detector of transitions only: no clearance events.
    public func clearanceEvents(
        vin: VIN, from previous: ClearanceStatus?, to current: ClearanceStatus,
        at time: Timestamp
    ) -> [Event] {
        []
    }
}

/// A detector that finds no change: for writes whose events are not wanted (`reprocess` without
/// the operator's rules, generated benchmark data). It never emits, and keeps no state.
public struct NoEvents: ChangeDetecting {
    public init() {}

    public func events(
        previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp,
        state: inout RuleState
    ) -> [Event] { [] }
}
