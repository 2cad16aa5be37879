import FleetModel

/// A delivery sink as the outbox knows it: its name and which events it takes.
public struct OutboxSink: Sendable, Hashable {
    /// The sink's name (`sinks.webhooks[].name`, `mqtt`): the `outbox.sink` column.
    public var name: String
    /// Only these event types, or every type when `nil`.
    public var types: Set<EventType>?
    /// Only these vehicles' events, or every vehicle's when `nil`.
    public var vins: Set<VIN>?

    public init(name: String, types: Set<EventType>? = nil, vins: Set<VIN>? = nil) {
        self.name = name
        self.types = types
        self.vins = vins
    }

    /// Whether `event` is queued for this sink.
    public func takes(_ event: Event) -> Bool {
        (types?.contains(event.type) ?? true) && (vins?.contains(event.vin) ?? true)
    }
}

/// One event queued for one sink: a row of `outbox` with its event.
public struct OutboxEntry: Sendable, Hashable {
    /// `pending` (to be sent, at `nextAttemptAt`), `delivered` or `dead` (given up).
    public enum Status: String, Sendable, Hashable, CaseIterable {
        case pending, delivered, dead
    }

    /// The sink's name (`outbox.sink`).
    public var sink: String
    /// The queued event, with its id (`outbox.event_id` joined to `events`).
    public var event: Event
    /// Where the delivery stands.
    public var status: Status
    /// Attempts made so far.
    public var attempts: Int
    /// When the next attempt is due (UTC); for a pending entry.
    public var nextAttemptAt: Timestamp
    /// The last attempt (UTC), `nil` before the first.
    public var lastAttemptAt: Timestamp?
    /// The receiver's HTTP status at the last attempt, `nil` when no answer came.
    public var lastHTTPStatus: Int?
    /// Why the last attempt failed, `nil` after a success.
    public var lastError: String?
    /// When the event was queued (UTC): its detection time.
    public var createdAt: Timestamp
    /// When the receiver acknowledged it (UTC), `nil` until then.
    public var deliveredAt: Timestamp?
}

extension TelemetryStore {
    /// Sets the sinks that newly stored events are queued for; events stored before are not
    /// queued again. An empty list queues nothing.
    public func setOutboxSinks(_ sinks: [OutboxSink]) {
        outboxSinks = sinks
    }

    /// Queues `events` (just stored, with ids) for every sink that takes them, in the caller's
    /// transaction; due at once.
    func enqueue(_ events: [Event], connection: Connection) throws {
        guard !outboxSinks.isEmpty, !events.isEmpty else { return }
        let statement = try connection.cachedStatement(
            """
            INSERT OR IGNORE INTO outbox (sink, event_id, vin, next_attempt_at, created_at)
            VALUES (?1, ?2, ?3, ?4, ?4)
            """)
        for event in events {
            guard let id = event.id else { continue }
            for sink in outboxSinks where sink.takes(event) {
                try statement.run([
                    .text(sink.name), .integer(id), .text(event.vin.rawValue),
                    .integer(event.detectedAt.millisecondsSince1970),
                ])
            }
        }
    }

    /// Pending entries of `sink` due at `now`, oldest event first, at most `limit`, and for each
    /// vehicle only up to its first entry that is not due yet: a vehicle's events go out in
    /// order, so a later one never overtakes one that waits for a retry.
    public func dueDeliveries(sink: String, now: Timestamp, limit: Int) throws -> [OutboxEntry] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT \(Self.outboxColumns) FROM outbox o JOIN events e ON e.id = o.event_id
                WHERE o.sink = ?1 AND o.status = 'pending' AND o.next_attempt_at <= ?2
                  AND NOT EXISTS (
                    SELECT 1 FROM outbox w WHERE w.sink = o.sink AND w.vin = o.vin AND w.status = 'pending'
                        AND w.event_id < o.event_id AND w.next_attempt_at > ?2)
                ORDER BY o.event_id LIMIT ?3
                """)
            try statement.bind([.text(sink), .integer(now.millisecondsSince1970), .integer(Int64(limit))])
            return try Self.outboxEntries(statement)
        }
    }

    /// The entries of `sink` (every sink when `nil`) with `status` (every status when `nil`),
    /// newest event first, at most `limit`.
    public func deliveries(sink: String?, status: OutboxEntry.Status?, limit: Int) throws -> [OutboxEntry] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                """
                SELECT \(Self.outboxColumns) FROM outbox o JOIN events e ON e.id = o.event_id
                WHERE (?1 IS NULL OR o.sink = ?1) AND (?2 IS NULL OR o.status = ?2)
                ORDER BY o.event_id DESC, o.sink LIMIT ?3
                """)
            try statement.bind([
                sink.map(SQLiteValue.text) ?? .null, status.map { .text($0.rawValue) } ?? .null,
                .integer(Int64(limit)),
            ])
            return try Self.outboxEntries(statement)
        }
    }

    /// How many entries of each sink are pending (the outbox depth).
    public func outboxDepth() throws -> [String: Int] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(
                "SELECT sink, count(*) FROM outbox WHERE status = 'pending' GROUP BY sink")
            try statement.bind([])
            var depth: [String: Int] = [:]
            while try statement.step() { depth[statement.text(at: 0) ?? ""] = Int(statement.int(at: 1)) }
            return depth
        }
    }

    /// One acknowledged delivery, for ``markDelivered(sink:_:)``.
    public struct Acknowledgement: Sendable, Hashable {
        /// `events.id`.
        public var eventID: Int64
        /// When the acknowledgement came (UTC).
        public var at: Timestamp
        /// A webhook's 2xx; `nil` for MQTT.
        public var httpStatus: Int?

        public init(eventID: Int64, at: Timestamp, httpStatus: Int?) {
            self.eventID = eventID
            self.at = at
            self.httpStatus = httpStatus
        }
    }

    /// Records a delivery the receiver acknowledged.
    public func markDelivered(sink: String, eventID: Int64, at time: Timestamp, httpStatus: Int?) throws {
        try markDelivered(sink: sink, [Acknowledgement(eventID: eventID, at: time, httpStatus: httpStatus)])
    }

    /// Records acknowledged deliveries in one transaction (one commit for many, which is what
    /// bounds a fast receiver's throughput).
    public func markDelivered(sink: String, _ acknowledgements: [Acknowledgement]) throws {
        guard !acknowledgements.isEmpty else { return }
        try withConnection { connection in
            try connection.transaction {
                let statement = try connection.cachedStatement(
                    """
                    UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_attempt_at = ?3,
                        delivered_at = ?3, last_http_status = ?4, last_error = NULL
                    WHERE sink = ?1 AND event_id = ?2
                    """)
                for acknowledgement in acknowledgements {
                    try statement.run([
                        .text(sink), .integer(acknowledgement.eventID),
                        .integer(acknowledgement.at.millisecondsSince1970),
                        acknowledgement.httpStatus.map { .integer(Int64($0)) } ?? .null,
                    ])
                }
            }
        }
    }

    /// Records a failed attempt: the entry is tried again at `retryAt`, or is `dead` when
    /// `retryAt` is `nil` (too old to keep trying).
    public func markFailed(
        sink: String, eventID: Int64, at time: Timestamp, httpStatus: Int?, error: String, retryAt: Timestamp?
    ) throws {
        try withConnection { connection in
            try connection.cachedStatement(
                """
                UPDATE outbox SET status = CASE WHEN ?6 IS NULL THEN 'dead' ELSE 'pending' END,
                    attempts = attempts + 1, last_attempt_at = ?3, last_http_status = ?4, last_error = ?5,
                    next_attempt_at = coalesce(?6, next_attempt_at)
                WHERE sink = ?1 AND event_id = ?2
                """
            ).run([
                .text(sink), .integer(eventID), .integer(time.millisecondsSince1970),
                httpStatus.map { .integer(Int64($0)) } ?? .null, .text(error),
                retryAt.map { .integer($0.millisecondsSince1970) } ?? .null,
            ])
        }
    }

    /// Queues entries again (`events redeliver`): the one of `eventID`, or every dead one when
    /// `eventID` is `nil`, for `sink` (every sink when `nil`); due at `now`, attempts kept.
    ///
    /// - Returns: How many entries were queued again.
    @discardableResult
    public func redeliver(eventID: Int64?, sink: String?, now: Timestamp) throws -> Int {
        try withConnection { connection in
            try connection.cachedStatement(
                """
                UPDATE outbox SET status = 'pending', next_attempt_at = ?3
                WHERE (?1 IS NULL OR sink = ?1) AND (CASE WHEN ?2 IS NULL THEN status = 'dead' ELSE event_id = ?2 END)
                """
            ).run([
                sink.map(SQLiteValue.text) ?? .null, eventID.map { .integer($0) } ?? .null,
                .integer(now.millisecondsSince1970),
            ])
            return connection.changes
        }
    }

    static let outboxColumns = """
        o.sink, o.status, o.attempts, o.next_attempt_at, o.last_attempt_at, o.last_http_status, o.last_error,
        o.created_at, o.delivered_at,
        e.id, e.vin, e.type, e.instance, e.occurred_at, e.detected_at, e.previous_value, e.new_value
        """

    static func outboxEntries(_ statement: Statement) throws -> [OutboxEntry] {
        var result: [OutboxEntry] = []
        func time(_ column: Int32) -> Timestamp? {
            statement.isNull(at: column) ? nil : Timestamp(millisecondsSince1970: statement.int(at: column))
        }
        while try statement.step() {
            guard let vin = statement.text(at: 10).flatMap(VIN.init),
                let type = statement.text(at: 11).flatMap(EventType.init(rawValue:)),
                let status = statement.text(at: 1).flatMap(OutboxEntry.Status.init(rawValue:))
            else { continue }
            var event = Event(
                vin: vin, type: type, instance: statement.text(at: 12) ?? "",
                occurredAt: Timestamp(millisecondsSince1970: statement.int(at: 13)),
                detectedAt: Timestamp(millisecondsSince1970: statement.int(at: 14)),
                previousValue: statement.text(at: 15), newValue: statement.text(at: 16) ?? "")
            event.id = statement.int(at: 9)
            result.append(
                OutboxEntry(
                    sink: statement.text(at: 0) ?? "", event: event, status: status,
                    attempts: Int(statement.int(at: 2)), nextAttemptAt: time(3) ?? Timestamp(millisecondsSince1970: 0),
                    lastAttemptAt: time(4), lastHTTPStatus: statement.isNull(at: 5) ? nil : Int(statement.int(at: 5)),
                    lastError: statement.text(at: 6), createdAt: time(7) ?? Timestamp(millisecondsSince1970: 0),
                    deliveredAt: time(8)))
        }
        return result
    }
}
