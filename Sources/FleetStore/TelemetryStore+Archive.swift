import FleetModel

/// One response of the raw archive (`raw_responses`).
public struct ArchivedResponse: Sendable, Hashable {
    /// The vehicle the response is for.
    public var vin: VIN
    /// When it was received, UTC: the `received_at` of the samples it produced.
    public var receivedAt: Timestamp
    /// The response's HTTP status.
    public var httpStatus: Int?
    /// The body exactly as received (decoded from the archive's deflate); empty when it was not
    /// decoded (a listing) or does not decode (``problem``).
    public var body: [UInt8]
    /// Its length as received, in bytes.
    public var size: Int
    /// The bytes the archive holds for it (compressed), for `fleet-telemetry raw --list`.
    public var storedBytes: Int
    /// Why the body does not decode (damaged bytes, a dictionary gone), naming the vehicle and
    /// the time; `nil` when it decoded or was not decoded.
    public var problem: String?

    /// True for a success status (2xx) or an unknown one: a body that holds vehicle data.
    public var isSuccess: Bool { httpStatus.map { (200..<300).contains($0) } ?? true }
}

/// What ``TelemetryStore/replaceArchivedSamples(vin:since:responses:)`` changed.
public struct ReprocessCounts: Sendable, Hashable {
    /// Sample rows deleted: those the archived responses had produced.
    public var deleted = 0
    /// Sample rows written from the responses normalized again.
    public var inserted = 0
    /// Events the rules found in the responses normalized again that were not stored yet, with ids.
    public var events: [Event] = []
    public init() {}
}

extension TelemetryStore {
    /// VINs with archived responses received at or after `since`.
    public func archivedVINs(since: Timestamp) throws -> [VIN] {
        try withConnection { connection in
            // One seek per vehicle along the key (vin, received_at), never a scan of the archive.
            let statement = try connection.makeStatement(
                """
                SELECT vin FROM vehicles v
                WHERE EXISTS (SELECT 1 FROM raw_responses r WHERE r.vin = v.vin AND r.received_at >= ?1) ORDER BY vin
                """)
            try statement.bind([.integer(since.millisecondsSince1970)])
            var result: [VIN] = []
            while try statement.step() {
                if let vin = statement.text(at: 0).flatMap(VIN.init) { result.append(vin) }
            }
            return result
        }
    }

    /// The receive time of the oldest archived response, or `nil` for an empty archive.
    public func oldestArchivedResponse() throws -> Timestamp? {
        try withConnection { connection in
            try connection.scalarInt(
                """
                SELECT min((SELECT min(received_at) FROM raw_responses r WHERE r.vin = v.vin)) FROM vehicles v
                """
            ).map(Timestamp.init(millisecondsSince1970:))
        }
    }

    /// The archived responses of `vin` received at or after `since`, oldest first; a body that
    /// does not decode comes with its ``ArchivedResponse/problem``.
    ///
    /// - Throws: ``SQLiteError``.
    public func archivedResponses(vin: VIN, since: Timestamp) throws -> [ArchivedResponse] {
        try archivedResponses(
            vin: vin,
            sql: """
                SELECT received_at, http_status, dictionary_id, size, body FROM raw_responses
                WHERE vin = ?1 AND received_at >= ?2 ORDER BY received_at
                """,
            [.integer(since.millisecondsSince1970)])
    }

    /// The archived response of `vin` received at `at` or, without one then, the newest before
    /// it; `nil` when the archive holds none that old. `at` `nil` means the newest. A body that
    /// does not decode comes with its ``ArchivedResponse/problem``.
    ///
    /// - Throws: ``SQLiteError``.
    public func archivedResponse(vin: VIN, at: Timestamp?) throws -> ArchivedResponse? {
        try archivedResponses(
            vin: vin,
            sql: """
                SELECT received_at, http_status, dictionary_id, size, body FROM raw_responses
                WHERE vin = ?1 AND received_at <= ?2 ORDER BY received_at DESC LIMIT 1
                """,
            [.integer(at?.millisecondsSince1970 ?? Int64.max)]
        ).first
    }

    /// The newest `limit` archived responses of `vin` received at or before `at` (all when `nil`),
    /// newest first, with their bodies decoded when `decode` (else `body` is empty).
    public func archivedResponses(
        vin: VIN, upTo at: Timestamp?, limit: Int, decode: Bool = true
    ) throws -> [ArchivedResponse] {
        try archivedResponses(
            vin: vin,
            sql: """
                SELECT received_at, http_status, dictionary_id, size, body FROM raw_responses
                WHERE vin = ?1 AND received_at <= ?2 ORDER BY received_at DESC LIMIT ?3
                """,
            [.integer(at?.millisecondsSince1970 ?? Int64.max), .integer(Int64(limit))], decode: decode)
    }

    private func archivedResponses(
        vin: VIN, sql: String, _ values: [SQLiteValue], decode: Bool = true
    ) throws -> [ArchivedResponse] {
        try withConnection { connection in
            let statement = try connection.cachedStatement(sql)
            try statement.bind([.text(vin.rawValue)] + values)
            defer { statement.reset() }
            var result: [ArchivedResponse] = []
            while try statement.step() {
                let receivedAt = Timestamp(millisecondsSince1970: statement.int(at: 0))
                let stored = statement.blob(at: 4)
                let size = Int(statement.int(at: 3))
                var body: [UInt8] = []
                var problem: String?
                if decode {
                    do {
                        body = try rawArchive.decode(
                            dictionaryID: statement.isNull(at: 2) ? nil : statement.int(at: 2), size: size,
                            stored: stored, connection: connection)
                    } catch let error as ArchiveError {
                        guard case .corrupt(let reason) = error else { throw error }
                        problem = "\(ArchiveError.corrupt("\(vin), received \(receivedAt.iso8601): \(reason)"))"
                    }
                }
                result.append(
                    ArchivedResponse(
                        vin: vin, receivedAt: receivedAt,
                        httpStatus: statement.isNull(at: 1) ? nil : Int(statement.int(at: 1)),
                        body: body, size: size, storedBytes: stored.count, problem: problem))
            }
            return result
        }
    }

    /// Replaces the samples that `vin`'s archived responses since `since` produced with
    /// `responses`' samples (the same responses normalized again), in one transaction.
    ///
    /// Only sample rows whose `received_at` is the receive time of an archived response received
    /// from `since` to `until` (the newest response read: a poll stored meanwhile keeps its rows)
    /// are deleted: rows from imports or from responses older than the archive stay. Samples without
    /// a timestamp of their own are stored only when their value changed, as when polling;
    /// `latest` takes every newer observation.
    ///
    /// Each response is also handed to `detector` with the response before it in the window (the
    /// first one sets the baseline, as a vehicle's first observation does) and no rule state:
    /// events not stored yet (same VIN, type, instance and `occurred_at`) are added; those stored
    /// before stay as they are, and none is removed.
    ///
    /// - Throws: ``SQLiteError``; the transaction is rolled back and the vehicle's samples are as before.
    public func replaceArchivedSamples(
        vin: VIN, since: Timestamp, until: Timestamp? = nil, responses: [(receivedAt: Timestamp, samples: [Sample])],
        detector: some ChangeDetecting
    ) throws -> ReprocessCounts {
        // `latest` is rewritten outside the poll path: the cached rows are read again afterwards.
        latestCache.removeAll()
        return try withConnection { connection in
            try connection.transaction {
                var counts = ReprocessCounts()
                let since = since.millisecondsSince1970
                try connection.makeStatement(
                    """
                    DELETE FROM history WHERE series_id IN (SELECT id FROM series WHERE vin = ?1) AND received_at IN (
                        SELECT received_at FROM raw_responses WHERE vin = ?1 AND received_at >= ?2 AND received_at <= ?3)
                    """
                ).run([.text(vin.rawValue), .integer(since), .integer(until?.millisecondsSince1970 ?? Int64.max)])
                counts.deleted = connection.changes
                // Each series as it was before the window: its newest row received before it. A
                // replay from there decides repeats and heartbeats as the polls did.
                var state = VehicleSeries()
                let seed = try connection.cachedStatement(
                    """
                    SELECT observed_at, value FROM history
                    WHERE series_id = ?1 AND received_at < ?2 ORDER BY observed_at DESC LIMIT 1
                    """)
                let stored = try latestRows(vin: vin).series
                for (key, row) in stored.rows {
                    try seed.bind([.integer(row.id), .integer(since)])
                    defer { seed.reset() }
                    guard try seed.step() else { continue }
                    state.values[key] = LatestValue(
                        value: Self.sampleValue(seed.value(at: 1)),
                        unit: stored.values[key]?.unit,
                        observedAt: Timestamp(millisecondsSince1970: seed.int(at: 0)))
                    state.rows[key] = SeriesRow(id: row.id, sourceUnit: row.sourceUnit, historyAt: seed.int(at: 0))
                }
                var events: [Event] = []
                for response in responses {
                    var scratch: RuleState = [:]
                    events += detector.events(
                        previous: state.values, observed: response.samples, detectedAt: response.receivedAt,
                        state: &scratch)
                    counts.inserted += try writeSamples(
                        response.samples, state: &state, receivedAt: response.receivedAt, replay: true)
                }
                try connection.cachedStatement(
                    """
                    UPDATE series SET history_at = (SELECT max(observed_at) FROM history WHERE series_id = series.id)
                    WHERE vin = ?1
                    """
                ).run([.text(vin.rawValue)])
                counts.events = try insert(events, connection: connection)
                return counts
            }
        }
    }
}
