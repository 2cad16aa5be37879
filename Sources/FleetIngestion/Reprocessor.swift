import FleetEvents
import FleetModel
import FleetStore

/// Rebuilds samples from the raw-response archive (`fleet-telemetry reprocess`), so that a
/// normalizer upgrade (a new unit, a property it could not read before) reaches history.
///
/// It goes through the ingestion path's normalizer and event rules: the rules without memory
/// (``EventRules/replaying``: transitions and geofences) run over the responses normalized again,
/// and events they find that were not stored yet are stored (never delivered to a sink: they are
/// history, not news). Events stored before are kept; none is removed.
public struct Reprocessor: Sendable {
    /// The path whose store, normalizer and rules are used.
    public let ingestion: Ingestion

    /// False when the configured rules are not known (`reprocess --database` without a config
    /// file): no event is added then, since one that the operator's rules disable could not be
    /// taken back.
    public var detectsEvents: Bool

    public init(ingestion: Ingestion, detectsEvents: Bool = true) {
        self.ingestion = ingestion
        self.detectsEvents = detectsEvents
    }

    /// What a reprocess run did.
    public struct Summary: Sendable, Hashable {
        /// Vehicles reprocessed (one transaction each).
        public var vehicles = 0
        /// Archived responses read.
        public var responses = 0
        /// Responses the normalizer still refuses (kept in the archive, no samples).
        public var unreadable = 0
        /// Vehicles left as they were because an archived body does not decode: the first
        /// problem of each (naming the vehicle and the time).
        public var skipped: [String] = []
        /// Sample rows the archived responses had produced, deleted.
        public var samplesDeleted = 0
        /// Sample rows written from the responses normalized again.
        public var samplesWritten = 0
        /// Events found in the responses normalized again that had not been stored.
        public var eventsAdded = 0
        /// The start of the window actually reprocessed: `since`, or the oldest archived response
        /// when the archive starts later.
        public var since: Timestamp?
        public init() {}
    }

    /// Normalizes again every archived response received at or after `since` and replaces the
    /// samples they had produced, one vehicle per transaction.
    ///
    /// - Parameter progress: Called after each vehicle with the running summary.
    /// - Throws: ``SQLiteError`` when the database fails; vehicles done before stay reprocessed.
    public func run(since: Timestamp?, progress: (Summary) -> Void = { _ in }) async throws -> Summary {
        let store = ingestion.store
        let rules = ingestion.rules.replaying
        var summary = Summary()
        guard let oldest = try await store.oldestArchivedResponse() else { return summary }
        let start = max(since ?? oldest, oldest)
        summary.since = start
        for vin in try await store.archivedVINs(since: start) {
            var responses: [(receivedAt: Timestamp, samples: [Sample])] = []
            let archived = try await store.archivedResponses(vin: vin, since: start)
            // A body that does not decode cannot be normalized again, and the rows it produced
            // must stay: the vehicle is left as it is.
            let undecodable = archived.filter { $0.problem != nil }
            if !undecodable.isEmpty {
                summary.responses += archived.count
                summary.unreadable += undecodable.count
                summary.skipped.append(contentsOf: undecodable.compactMap(\.problem).prefix(1))
                continue
            }
            for response in archived {
                summary.responses += 1
                guard response.isSuccess,
                    let payload = try? ingestion.normalizer.normalize(
                        body: response.body, vin: vin, receivedAt: response.receivedAt)
                else {
                    summary.unreadable += 1
                    continue
                }
                responses.append((response.receivedAt, payload.samples))
            }
            // Only what was read is replaced: a poll the daemon stores meanwhile keeps its samples.
            let until = archived.map(\.receivedAt).max()
            let detector: any ChangeDetecting = detectsEvents ? rules : NoEvents()
            let counts = try await store.replaceArchivedSamples(
                vin: vin, since: start, until: until, responses: responses, detector: detector)
            summary.vehicles += 1
            summary.samplesDeleted += counts.deleted
            summary.samplesWritten += counts.inserted
            summary.eventsAdded += counts.events.count
            progress(summary)
        }
        return summary
    }
}
