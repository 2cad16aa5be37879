import FleetModel

extension TelemetryStore {
    /// Deletes `samples` observed, and `polls` requested, before the cutoffs, in batches of at
    /// most `batch` rows per transaction, so that ingestion never waits long for the write lock.
    /// `latest`, `events` and `charging_sessions` are kept.
    ///
    /// - Parameters:
    ///   - samplesBefore: Samples observed earlier are deleted; `nil` keeps them all.
    ///   - pollsBefore: Polls requested earlier are deleted; `nil` keeps them all.
    /// - Returns: The rows deleted.
    @discardableResult
    public func prune(samplesBefore: Timestamp?, pollsBefore: Timestamp?, batch: Int = 5000) throws -> Int {
        try withConnection { connection in
            var deleted = 0
            if let cutoff = samplesBefore {
                while true {
                    let removed = try connection.transaction { () throws -> Int in
                        try connection.cachedStatement("""
                            DELETE FROM samples WHERE (vin, property, instance, observed_at) IN (
                                SELECT vin, property, instance, observed_at FROM samples WHERE observed_at < ?1 LIMIT ?2)
                            """).run([.integer(cutoff.millisecondsSince1970), .integer(Int64(batch))])
                        return connection.changes
                    }
                    deleted += removed
                    if removed < batch { break }
                }
            }
            if let cutoff = pollsBefore {
                while true {
                    let removed = try connection.transaction { () throws -> Int in
                        try connection.cachedStatement("""
                            DELETE FROM polls WHERE id IN (SELECT id FROM polls WHERE requested_at < ?1 LIMIT ?2)
                            """).run([.integer(cutoff.millisecondsSince1970), .integer(Int64(batch))])
                        return connection.changes
                    }
                    deleted += removed
                    if removed < batch { break }
                }
            }
            return deleted
        }
    }
}
