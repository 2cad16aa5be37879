import FleetModel

/// The `latest` rows of the vehicles written most recently, kept in memory so that a poll is
/// compared with its vehicle's stored values without reading them back from SQLite.
///
/// Reading a vehicle's `latest` rows (one row per series: ~25 to 60 of them) and building their map
/// was the dearest part of the store's work per poll after the rows themselves. The cache holds
/// exactly what the database holds once the transaction that wrote it commits:
/// - a poll takes its vehicle's entry out (or reads the rows from the database, inside the
///   writing transaction), changes it as its own statements change `latest`, by the same rule (a
///   newer observation wins), and stores it back once its writes succeeded;
/// - a poll whose writes fail stores nothing back (so a savepoint rolled back leaves its vehicle
///   out); a transaction rolled back (or a commit that failed) drops every entry;
/// - a commit by another connection (`PRAGMA data_version` moved: a `sqlite3` shell, another
///   process) drops every entry, checked at the start of each write transaction;
/// - writes of `latest` outside a poll (`reprocess`, `purge`) drop every entry.
///
/// At most ``capacity`` vehicles are held (about 5 KB for a vehicle of 25 series); a vehicle beyond
/// that replaces an arbitrary one, so a fleet larger than the cache reads from SQLite as before.
struct LatestCache {
    /// One vehicle's `latest` rows.
    struct Entry {
        /// The newest value of each series.
        var values: [SeriesKey: LatestValue]
        /// The `series` row behind each value: its id, source unit and newest history row.
        var rows: [SeriesKey: SeriesRow] = [:]
        /// True when some row may carry a failure flag (`failure_reason` not NULL); `true` is
        /// also allowed when none does (it only costs one `UPDATE` that changes nothing).
        var flagged: Bool
    }

    /// The most vehicles held.
    let capacity: Int
    private var entries: [VIN: Entry] = [:]
    /// The `PRAGMA data_version` seen at the start of the last write transaction.
    private var dataVersion: Int64?

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// The entry of `vin`, when held.
    subscript(vin: VIN) -> Entry? {
        entries[vin]
    }

    /// Holds `entry` for `vin`, replacing an arbitrary vehicle when the cache is full.
    mutating func store(_ entry: Entry, for vin: VIN) {
        guard capacity > 0 else { return }
        if entries[vin] == nil, entries.count >= capacity {
            entries.remove(at: entries.startIndex)
        }
        entries[vin] = entry
    }

    /// Removes and returns `vin`'s entry: the poll being written updates it and stores it again
    /// once written.
    mutating func take(_ vin: VIN) -> Entry? {
        entries.removeValue(forKey: vin)
    }

    /// Forgets every vehicle.
    mutating func removeAll() {
        entries.removeAll()
    }

    /// Forgets every vehicle when `version` (`PRAGMA data_version`) differs from the one seen at
    /// the last write transaction: another connection committed in between.
    ///
    /// - Returns: Whether another connection committed (what else the store holds in memory of
    ///   the file is then stale too).
    @discardableResult
    mutating func validate(dataVersion version: Int64) -> Bool {
        let changed = dataVersion != version
        if changed { entries.removeAll() }
        dataVersion = version
        return changed
    }

    /// How many vehicles are held.
    var count: Int { entries.count }
}
