import FleetModel

/// The encoding of the raw-response archive: each body deflated with a preset dictionary kept in
/// `archive_dictionaries`, so that every body decodes on its own (with its dictionary, never with
/// another body).
///
/// Two kinds of dictionary:
/// - a **fleet dictionary**, built from the fleet's own responses: the newest body of up to
///   ``dictionaryVehicles`` vehicles (or of fewer once ``bodiesBeforeDictionary`` bodies came from
///   fewer), renewed every ``dictionaryLifetime``;
/// - a vehicle's **keyframe**: one of its own bodies (stored deflated with the fleet dictionary),
///   renewed every ``keyframeEvery`` successful bodies. The vehicle's bodies are deflated with
///   it: a vehicle's responses resemble each other far more than they resemble the fleet's (the
///   fleet dictionary in front of the keyframe saved 1 byte per body and cost twice the time).
///
/// Until the first fleet dictionary exists bodies are deflated without one. The in-memory state
/// follows the database: after a write that was rolled back it is read again (``invalidate()``).
final class RawArchive {
    /// Vehicles whose newest body goes into a fleet dictionary: 4 (8 KB of emulator bodies)
    /// compressed within 1 % of 8 or 15 vehicles, at two thirds of the time per body.
    static let dictionaryVehicles = 4
    /// Bodies after which a fleet dictionary is built from the vehicles seen, however few.
    static let bodiesBeforeDictionary = 8
    /// zlib reads at most the last 32 KB of a dictionary.
    static let maximumDictionaryBytes = 32 * 1024
    /// How long a fleet dictionary is used before a new one is built: 7 days, in ms.
    static let dictionaryLifetime: Int64 = 7 * 86_400_000
    /// Successful bodies of a vehicle per keyframe: every 12th (an hour at a 5-minute interval)
    /// stored 75 + 12 bytes per emulator body, against 140 with the fleet dictionary alone.
    static let keyframeEvery = 12
    /// Keyframes held in memory (about 2 KB each); a vehicle beyond reads its own back.
    static let keyframesHeld = 4_096
    /// Effective dictionaries held for decoding.
    static let decodingHeld = 256

    /// A fleet dictionary, as stored.
    struct FleetDictionary {
        var id: Int64
        var createdAt: Int64
        var bytes: [UInt8]
    }

    /// A vehicle's keyframe: its id, the fleet dictionary it follows, the body, and how many
    /// bodies used it since it was made or read.
    struct Keyframe {
        var id: Int64
        var baseID: Int64?
        var body: [UInt8]
        var uses: Int
    }

    private let deflater = Deflater()
    /// The fleet dictionary new bodies use; `nil` before the first. Read on first use.
    private var fleet: FleetDictionary?
    private var fleetLoaded = false
    private var keyframes: [VIN: Keyframe] = [:]
    /// Effective dictionaries read for decoding, by id.
    private var decoding: [Int64: [UInt8]] = [:]
    /// The newest successful body of recent vehicles, while a fleet dictionary is due.
    private var candidates: [(vin: VIN, body: [UInt8])] = []
    private var bodiesSeen = 0

    /// Forgets what it knows of the database (after a rolled-back write, which may have undone
    /// the insert of a dictionary).
    func invalidate() {
        fleet = nil
        fleetLoaded = false
        keyframes.removeAll()
        decoding.removeAll()
        candidates.removeAll()
        bodiesSeen = 0
    }

    /// Writes `body` (received for `vin` at `receivedAt`, ms UTC) into `raw_responses`, first
    /// building the dictionary it needs when one is due.
    ///
    /// - Throws: ``SQLiteError``; ``ArchiveError/compression(_:)`` when zlib fails.
    func archive(
        _ body: [UInt8], vin: VIN, receivedAt: Int64, httpStatus: Int?, success: Bool, connection: Connection
    ) throws {
        try renewFleetDictionary(with: success ? body : nil, vin: vin, at: receivedAt, connection: connection)
        var dictionaryID = fleet?.id ?? 0
        var dictionary = fleet?.bytes
        if let fleet {
            var keyframe = try currentKeyframe(vin: vin, connection: connection)
            if success, !body.isEmpty, keyframe.map({ $0.uses >= Self.keyframeEvery || $0.baseID != fleet.id }) ?? true
            {
                let stored = try deflater.compress(body, dictionary: fleet.bytes)
                try connection.cachedStatement(
                    """
                    INSERT INTO archive_dictionaries (created_at, vin, base_id, size, dictionary)
                    VALUES (?1, ?2, ?3, ?4, ?5)
                    """
                ).run([
                    .integer(receivedAt), .text(vin.rawValue), .integer(fleet.id), .integer(Int64(body.count)),
                    .blob(stored),
                ])
                keyframe = Keyframe(id: connection.lastInsertRowID, baseID: fleet.id, body: body, uses: 0)
            }
            if var keyframe, keyframe.baseID == fleet.id {
                dictionaryID = keyframe.id
                dictionary = keyframe.body
                if success { keyframe.uses += 1 }
                if keyframes[vin] == nil, keyframes.count >= Self.keyframesHeld {
                    keyframes.remove(at: keyframes.startIndex)
                }
                keyframes[vin] = keyframe
            }
        }
        let compressed = try deflater.compress(body, dictionary: dictionary)
        try connection.cachedStatement(
            """
            INSERT OR IGNORE INTO raw_responses (vin, received_at, http_status, dictionary_id, size, body)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            """
        ).run([
            .text(vin.rawValue), .integer(receivedAt), httpStatus.map { .integer(Int64($0)) } ?? .null,
            .integer(dictionaryID), .integer(Int64(body.count)), .blob(compressed),
        ])
    }

    /// Builds a fleet dictionary when none exists or the current one is ``dictionaryLifetime`` old.
    private func renewFleetDictionary(
        with body: [UInt8]?, vin: VIN, at receivedAt: Int64, connection: Connection
    ) throws {
        if !fleetLoaded {
            fleet = try Self.newestFleetDictionary(connection)
            fleetLoaded = true
        }
        guard fleet.map({ receivedAt - $0.createdAt >= Self.dictionaryLifetime }) ?? true else { return }
        if let body, !body.isEmpty {
            candidates.removeAll { $0.vin == vin }
            candidates.append((vin, body))
            if candidates.count > Self.dictionaryVehicles { candidates.removeFirst() }
            bodiesSeen += 1
        }
        guard
            candidates.count == Self.dictionaryVehicles
                || (bodiesSeen >= Self.bodiesBeforeDictionary && !candidates.isEmpty)
        else { return }
        let bytes = Array(candidates.flatMap(\.body).suffix(Self.maximumDictionaryBytes))
        try connection.cachedStatement(
            "INSERT INTO archive_dictionaries (created_at, dictionary) VALUES (?1, ?2)"
        ).run([.integer(receivedAt), .blob(bytes)])
        fleet = FleetDictionary(id: connection.lastInsertRowID, createdAt: receivedAt, bytes: bytes)
        candidates.removeAll()
        bodiesSeen = 0
    }

    /// `vin`'s newest keyframe: held, or read back (and decoded) from the database.
    private func currentKeyframe(vin: VIN, connection: Connection) throws -> Keyframe? {
        if let held = keyframes[vin] { return held }
        let statement = try connection.cachedStatement(
            """
            SELECT id, base_id, size, dictionary FROM archive_dictionaries INDEXED BY archive_dictionaries_by_vin
            WHERE vin = ?1 ORDER BY id DESC LIMIT 1
            """)
        try statement.bind([.text(vin.rawValue)])
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        let baseID = statement.isNull(at: 1) ? nil : statement.int(at: 1)
        guard let baseID, baseID == fleet?.id, let fleet else {
            return Keyframe(id: statement.int(at: 0), baseID: baseID, body: [], uses: 0)
        }
        let body = try Inflater.decompress(
            statement.blob(at: 3), size: Int(statement.int(at: 2)), dictionary: fleet.bytes)
        return Keyframe(id: statement.int(at: 0), baseID: baseID, body: body, uses: 0)
    }

    /// The body as received, from a row's `dictionary_id`, `size` and `body`.
    ///
    /// - Throws: ``ArchiveError/corrupt(_:)`` when it does not decode (damaged, or its
    ///   dictionary is gone); ``SQLiteError``.
    func decode(dictionaryID: Int64?, size: Int, stored: [UInt8], connection: Connection) throws -> [UInt8] {
        // NULL: archived before schema 11, as received.
        guard let dictionaryID else { return stored }
        let dictionary = dictionaryID == 0 ? nil : try effectiveDictionary(dictionaryID, connection: connection)
        return try Inflater.decompress(stored, size: size, dictionary: dictionary)
    }

    /// The dictionary a body stored with `id` was deflated with: a fleet dictionary as stored, or
    /// a keyframe (decoded with its fleet dictionary).
    private func effectiveDictionary(_ id: Int64, connection: Connection) throws -> [UInt8] {
        if let known = decoding[id] { return known }
        let statement = try connection.cachedStatement(
            "SELECT vin IS NOT NULL, base_id, size, dictionary FROM archive_dictionaries WHERE id = ?1")
        try statement.bind([.integer(id)])
        guard try statement.step() else {
            statement.reset()
            throw ArchiveError.corrupt("its dictionary \(id) is not in archive_dictionaries")
        }
        let isKeyframe = statement.int(at: 0) != 0
        let baseID = statement.isNull(at: 1) ? nil : statement.int(at: 1)
        let size = Int(statement.int(at: 2))
        let stored = statement.blob(at: 3)
        statement.reset()
        var dictionary = stored
        if isKeyframe {
            let base = try baseID.map { try effectiveDictionary($0, connection: connection) }
            dictionary = try Inflater.decompress(stored, size: size, dictionary: base)
        }
        if decoding.count >= Self.decodingHeld { decoding.removeAll() }
        decoding[id] = dictionary
        return dictionary
    }

    private static func newestFleetDictionary(_ connection: Connection) throws -> FleetDictionary? {
        let statement = try connection.cachedStatement(
            "SELECT id, created_at, dictionary FROM archive_dictionaries WHERE vin IS NULL ORDER BY id DESC LIMIT 1")
        try statement.bind([])
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return FleetDictionary(
            id: statement.int(at: 0), createdAt: statement.int(at: 1), bytes: statement.blob(at: 2))
    }
}
