import FleetModel

/// The encoding of the raw-response archive: each body deflated with a preset dictionary built
/// from the fleet's own responses and stored in `archive_dictionaries`, so that every body
/// decodes on its own (with its dictionary, never with another body).
///
/// The first dictionary is built once a few successful bodies were seen (the newest body of up to
/// ``dictionaryVehicles`` vehicles, or of fewer once ``bodiesBeforeDictionary`` bodies came from
/// fewer vehicles); until then bodies are deflated without one. A new dictionary follows every
/// ``dictionaryLifetime``, so that it keeps resembling what the vehicles send. The in-memory
/// state follows the database: after a write that was rolled back it is read again
/// (``invalidate()``).
final class RawArchive {
    /// Vehicles whose newest body goes into a dictionary: 4 (8 KB of emulator bodies) compressed
    /// within 1 % of 8 or 15 vehicles, at two thirds of the time per body.
    static let dictionaryVehicles = 4
    /// Bodies after which a dictionary is built from the vehicles seen, however few.
    static let bodiesBeforeDictionary = 8
    /// zlib reads at most the last 32 KB of a dictionary.
    static let maximumDictionaryBytes = 32 * 1024
    /// How long a dictionary is used before a new one is built: 7 days, in ms.
    static let dictionaryLifetime: Int64 = 7 * 86_400_000

    /// A row of `archive_dictionaries`.
    struct Dictionary {
        var id: Int64
        var createdAt: Int64
        var bytes: [UInt8]
    }

    private let deflater = Deflater()
    /// The dictionary new bodies use; `nil` before the first. Read from the database on first use.
    private var current: Dictionary?
    private var currentLoaded = false
    /// Dictionaries read for decoding, by id.
    private var decoding: [Int64: [UInt8]] = [:]
    /// The newest successful body of recent vehicles, while a dictionary is due.
    private var candidates: [(vin: VIN, body: [UInt8])] = []
    private var bodiesSeen = 0

    /// Forgets what it knows of the database (after a rolled-back write, which may have undone
    /// the insert of a dictionary).
    func invalidate() {
        current = nil
        currentLoaded = false
        decoding.removeAll()
        candidates.removeAll()
        bodiesSeen = 0
    }

    /// Writes `body` (received for `vin` at `receivedAt`, ms UTC) into `raw_responses`, first
    /// building a dictionary when one is due.
    ///
    /// - Throws: ``SQLiteError``; ``ArchiveError/compression(_:)`` when zlib fails.
    func archive(
        _ body: [UInt8], vin: VIN, receivedAt: Int64, httpStatus: Int?, success: Bool, connection: Connection
    ) throws {
        if !currentLoaded {
            current = try Self.newestDictionary(connection)
            currentLoaded = true
        }
        if current.map({ receivedAt - $0.createdAt >= Self.dictionaryLifetime }) ?? true {
            if success, !body.isEmpty {
                candidates.removeAll { $0.vin == vin }
                candidates.append((vin, body))
                if candidates.count > Self.dictionaryVehicles { candidates.removeFirst() }
                bodiesSeen += 1
            }
            if candidates.count == Self.dictionaryVehicles
                || (bodiesSeen >= Self.bodiesBeforeDictionary && !candidates.isEmpty)
            {
                let bytes = Array(candidates.flatMap(\.body).suffix(Self.maximumDictionaryBytes))
                try connection.cachedStatement(
                    "INSERT INTO archive_dictionaries (created_at, dictionary) VALUES (?1, ?2)"
                ).run([.integer(receivedAt), .blob(bytes)])
                current = Dictionary(id: connection.lastInsertRowID, createdAt: receivedAt, bytes: bytes)
                decoding[connection.lastInsertRowID] = bytes
                candidates.removeAll()
                bodiesSeen = 0
            }
        }
        let compressed = try deflater.compress(body, dictionary: current?.bytes)
        try connection.cachedStatement(
            """
            INSERT OR IGNORE INTO raw_responses (vin, received_at, http_status, dictionary_id, size, body)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            """
        ).run([
            .text(vin.rawValue), .integer(receivedAt), httpStatus.map { .integer(Int64($0)) } ?? .null,
            .integer(current?.id ?? 0), .integer(Int64(body.count)), .blob(compressed),
        ])
    }

    /// The body as received, from a row's `dictionary_id`, `size` and `body`.
    ///
    /// - Throws: ``ArchiveError/corrupt(_:)`` when it does not decode (damaged, or its
    ///   dictionary is gone); ``SQLiteError``.
    func decode(dictionaryID: Int64?, size: Int, stored: [UInt8], connection: Connection) throws -> [UInt8] {
        // NULL: archived before schema 11, as received.
        guard let dictionaryID else { return stored }
        var dictionary: [UInt8]? = nil
        if dictionaryID != 0 {
            if let known = decoding[dictionaryID] {
                dictionary = known
            } else {
                let statement = try connection.cachedStatement(
                    "SELECT dictionary FROM archive_dictionaries WHERE id = ?1")
                try statement.bind([.integer(dictionaryID)])
                defer { statement.reset() }
                guard try statement.step() else {
                    throw ArchiveError.corrupt("its dictionary \(dictionaryID) is not in archive_dictionaries")
                }
                dictionary = statement.blob(at: 0)
                decoding[dictionaryID] = dictionary
            }
        }
        return try Inflater.decompress(stored, size: size, dictionary: dictionary)
    }

    private static func newestDictionary(_ connection: Connection) throws -> Dictionary? {
        let statement = try connection.cachedStatement(
            "SELECT id, created_at, dictionary FROM archive_dictionaries ORDER BY id DESC LIMIT 1")
        try statement.bind([])
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return Dictionary(id: statement.int(at: 0), createdAt: statement.int(at: 1), bytes: statement.blob(at: 2))
    }
}
