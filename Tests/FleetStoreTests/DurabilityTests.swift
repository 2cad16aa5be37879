import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

private func batterySample(_ level: Double, at time: Timestamp) -> [Sample] {
    [Sample(vin: vin, property: "charging.battery_level", value: .number(level), unit: "percent", observedAt: time)]
}

private func minute(_ n: Int) -> Timestamp { t0.adding(milliseconds: Int64(n) * 60_000) }

/// A second connection that holds the write lock on another thread until released.
private final class LockHolder: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let locked = DispatchSemaphore(value: 0)
    private(set) var failure: (any Error)?

    init(path: String, holdFor seconds: Double) {
        Thread.detachNewThread { [self] in
            do {
                let other = try Connection(path: path)
                try other.execute("BEGIN IMMEDIATE")
                try other.execute("INSERT INTO vehicles (vin, first_seen_at) VALUES ('1HMFT000000000099', 1)")
                locked.signal()
                Thread.sleep(forTimeInterval: seconds)
                try other.execute("COMMIT")
            } catch {
                failure = error
                locked.signal()
            }
            done.signal()
        }
        locked.wait()
    }

    func wait() { done.wait() }
}

@Suite struct DurabilityTests {
    /// A real SQLITE_FULL (the file capped with max_page_count): the failing poll leaves nothing
    /// behind, the error names the cause, every earlier poll is intact, and writing resumes once
    /// there is room.
    @Test func fullDatabaseRollsBackThePollAndKeepsEarlierRows() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: minute(0)), samples: batterySample(50, at: minute(0)), detector: EventRules())
        let size = try #require(try FileManager.default.attributesOfItem(atPath: db.path)[.size] as? NSNumber)
            .int64Value
        try await store.setMaximumSize(bytes: size)
        var stored = 1
        var failure: SQLiteError?
        for n in 1..<2_000 {
            // Large text values fill pages quickly.
            let samples = [
                Sample(
                    vin: vin, property: "diagnostics.note", value: .text(String(repeating: "x", count: 3_000) + "\(n)"),
                    observedAt: minute(n))
            ]
            do {
                try await store.record(poll(at: minute(n)), samples: samples, detector: EventRules())
                stored += 1
            } catch let error as SQLiteError {
                failure = error
                break
            }
        }
        let error = try #require(failure, "the capped database fills up")
        #expect(error.code == .full)
        #expect(error.description.contains("full"), "\(error)")
        let check = try Connection(path: db.path)
        #expect(try check.scalarText("PRAGMA integrity_check") == "ok")
        #expect(try check.scalarInt("SELECT count(*) FROM polls") == Int64(stored), "no polls row of the failed poll")
        #expect(try check.scalarInt("SELECT count(*) FROM samples") == Int64(stored), "no sample of the failed poll")

        try await store.setMaximumSize(bytes: 1 << 30)
        try await store.record(
            poll(at: minute(5_000)), samples: batterySample(51, at: minute(5_000)), detector: EventRules())
        #expect(try check.scalarInt("SELECT count(*) FROM polls") == Int64(stored + 1), "the retry is stored")
    }

    /// A database that refuses writes (`SQLITE_READONLY`, here through `query_only`) fails the
    /// poll whole with a clear error; writing resumes once it is writable again.
    @Test func readOnlyDatabaseFailsThePollWhole() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: minute(0)), samples: batterySample(50, at: minute(0)), detector: EventRules())
        try await store.withConnection { try $0.execute("PRAGMA query_only = 1") }
        await #expect {
            try await store.record(
                poll(at: minute(1)), samples: batterySample(51, at: minute(1)), detector: EventRules())
        } throws: { error in
            (error as? SQLiteError)?.code == .readonly && "\(error)".contains("readonly")
        }
        try await store.withConnection { try $0.execute("PRAGMA query_only = 0") }
        try await store.record(poll(at: minute(2)), samples: batterySample(52, at: minute(2)), detector: EventRules())
        #expect(
            try await store.samples(vin: vin, property: "charging.battery_level").map(\.value) == [
                .number(50), .number(52),
            ])
        #expect(try await store.summary().pollsByStatus == [200: 2])
    }

    /// Another process holding the write lock for a second: the polls wait (busy_timeout) and
    /// every one of them is stored, as is the other writer's row.
    @Test func writeLockHeldElsewhereLosesNoRows() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: minute(0)), samples: batterySample(50, at: minute(0)), detector: EventRules())
        let holder = LockHolder(path: db.path, holdFor: 1.0)
        for n in 1...5 {
            try await store.record(
                poll(at: minute(n)), samples: batterySample(50 + Double(n), at: minute(n)), detector: EventRules())
        }
        holder.wait()
        #expect(holder.failure == nil)
        #expect(try await store.samples(vin: vin, property: "charging.battery_level").count == 6)
        let check = try Connection(path: db.path)
        #expect(try check.scalarInt("SELECT count(*) FROM vehicles WHERE vin = '1HMFT000000000099'") == 1)
    }

    /// A reader holding a snapshot (Grafana in a long transaction) keeps the WAL from being
    /// reset; writes go on; once the reader finishes, the checkpoint truncates the WAL to zero.
    @Test func walIsTruncatedOnceALongReaderFinishes() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: minute(0)), samples: batterySample(50, at: minute(0)), detector: EventRules())
        let reader = try Connection(path: db.path)
        try reader.execute("BEGIN")
        #expect(try reader.scalarInt("SELECT count(*) FROM samples") == 1)
        for n in 1...300 {
            try await store.record(
                poll(at: minute(n)), samples: batterySample(Double(n % 100), at: minute(n)), detector: EventRules())
        }
        let blocked = try await store.checkpoint()
        #expect(blocked.busy, "the reader's snapshot still needs the WAL")
        #expect(await store.walSize() > 0)
        #expect(try reader.scalarInt("SELECT count(*) FROM samples") == 1, "the reader keeps its snapshot")
        try reader.execute("COMMIT")

        let done = try await store.checkpoint()
        #expect(!done.busy)
        #expect(done.walBytes == 0)
        #expect(try reader.scalarInt("SELECT count(*) FROM samples") == 301, "nothing lost")
        #expect(try reader.scalarText("PRAGMA integrity_check") == "ok")
    }

    /// `latest` tells a value the newest response reported as failed, and `latest_view` calls
    /// stale both that value and one older than `stale_after_seconds`.
    @Test func staleValuesAreFlagged() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let now = SystemWallClock().now()
        let recent = now.adding(milliseconds: -60_000)
        let old = now.adding(milliseconds: -7_200_000)
        let samples = [
            Sample(
                vin: vin, property: "charging.battery_level", value: .number(60), unit: "percent", observedAt: recent),
            Sample(
                vin: vin, property: "diagnostics.odometer", value: .number(1200), unit: "kilometers", observedAt: old),
        ]
        try await store.record(
            PollRecord(vin: vin, requestedAt: now, receivedAt: now, httpStatus: 200, latencyMilliseconds: 1),
            samples: samples, detector: EventRules())
        let check = try Connection(path: db.path)
        func stale(_ property: String) throws -> (Int64?, String?) {
            let statement = try check.makeStatement("SELECT stale, failure_reason FROM latest_view WHERE property = ?1")
            try statement.bind([.text(property)])
            defer { statement.reset() }
            guard try statement.step() else { return (nil, nil) }
            return (statement.int(at: 0), statement.text(at: 1))
        }
        #expect(try stale("charging.battery_level") == (0, nil))
        #expect(try stale("diagnostics.odometer") == (1, nil), "2 h old, stale after 1 h by default")
        #expect(try await store.status(now: now).map(\.staleValues) == [0], "status shows the battery level, fresh")
        #expect(try await store.status(now: now.adding(milliseconds: 3_600_000)).map(\.staleValues) == [1])
        try await store.setStaleAfter(seconds: 86_400)
        #expect(try stale("diagnostics.odometer") == (0, nil))

        // The next response fails for the battery level: flagged, value kept.
        let failure = PropertyFailure(
            property: "charging.battery_level", reason: .rateLimit, description: nil, observedAt: nil)
        try await store.record(
            PollRecord(
                vin: vin, requestedAt: now, receivedAt: now.adding(milliseconds: 1), httpStatus: 200,
                latencyMilliseconds: 1), samples: [samples[1]], failures: [failure], detector: EventRules())
        #expect(try stale("charging.battery_level") == (1, "rate_limit"))
        #expect(try await store.status(now: now).map(\.staleValues) == [1])
        #expect(try await store.status(now: now).first?.lastSeen == recent, "the newest observation of any property")
        #expect(
            try await store.latestValues(vin: vin)[
                SeriesKey(vin: vin, property: "charging.battery_level", instance: "")]?.value == .number(60))

        // The one after reports it again: the flag is gone.
        try await store.record(
            PollRecord(
                vin: vin, requestedAt: now, receivedAt: now.adding(milliseconds: 2), httpStatus: 200,
                latencyMilliseconds: 1), samples: samples, detector: EventRules())
        #expect(try stale("charging.battery_level") == (0, nil))
    }

    /// Archived responses are kept with the poll, and replacing their samples touches only the
    /// rows they produced.
    @Test func archivedSamplesAreReplacedAndOthersKept() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        // Every repeat kept: each response's rows are replaced by its new rows.
        try await store.setRepeatHeartbeat(seconds: 0)
        var imported = poll(at: minute(0))
        imported.imported = true
        try await store.record(imported, samples: batterySample(40, at: minute(0)), detector: EventRules())
        for n in 1...3 {
            var record = poll(at: minute(n))
            record.rawBody = Array("{\"n\":\(n)}".utf8)
            try await store.record(
                record, samples: batterySample(40 + Double(n), at: minute(n)), detector: EventRules())
        }
        #expect(try await store.oldestArchivedResponse() == minute(1).adding(milliseconds: 40))
        let archived = try await store.archivedResponses(vin: vin, since: minute(2))
        #expect(archived.map { String(decoding: $0.body, as: UTF8.self) } == ["{\"n\":2}", "{\"n\":3}"])

        // Normalized again, each response now yields a second property too.
        let responses = archived.map { response in
            (
                receivedAt: response.receivedAt,
                samples: [
                    Sample(
                        vin: vin, property: "charging.battery_level", value: .number(90), unit: "percent",
                        observedAt: response.receivedAt),
                    Sample(
                        vin: vin, property: "charging.charge_limit", value: .number(80), unit: "percent",
                        observedAt: response.receivedAt),
                ]
            )
        }
        let counts = try await store.replaceArchivedSamples(
            vin: vin, since: minute(2), responses: responses, detector: EventRules())
        #expect(counts.deleted == 2)
        #expect(counts.inserted == 4)
        #expect(
            try await store.samples(vin: vin, property: "charging.battery_level").map(\.value) == [
                .number(40), .number(41), .number(90), .number(90),
            ])
        #expect(try await store.samples(vin: vin, property: "charging.charge_limit").count == 2)
        #expect(
            try await store.latestValues(vin: vin)[
                SeriesKey(vin: vin, property: "charging.charge_limit", instance: "")]?.value == .number(80))

        // Retention of the archive, and purge, reach raw_responses.
        #expect(try await store.prune(samplesBefore: nil, pollsBefore: nil, rawBefore: minute(3)) == 2)
        #expect(try await store.archivedResponses(vin: vin, since: minute(0)).count == 1)
        try await store.purge(vin: vin)
        #expect(try await store.oldestArchivedResponse() == nil)
    }

    /// Polls written at the same moment share a transaction (group commit): each caller gets its
    /// own result, and every row is stored once.
    @Test func concurrentPollsAreGroupCommitted() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let vins = (1...20).map { VIN(String(format: "1HMFT%012d", $0))! }
        let results = try await withThrowingTaskGroup(of: (VIN, PollWriteResult).self) { group in
            for (index, vin) in vins.enumerated() {
                group.addTask {
                    let record = PollRecord(
                        vin: vin, requestedAt: minute(0), receivedAt: minute(0), httpStatus: 200, latencyMilliseconds: 1
                    )
                    let samples = [
                        Sample(
                            vin: vin, property: "charging.battery_level", value: .number(Double(index)),
                            unit: "percent", observedAt: minute(0)),
                        Sample(
                            vin: vin, property: "diagnostics.odometer", value: .number(100), unit: "kilometers",
                            observedAt: minute(0)),
                    ]
                    return (
                        vin,
                        try await store.recordGrouped(PollWrite(poll: record, samples: samples), detector: EventRules())
                    )
                }
            }
            return try await group.reduce(into: [VIN: PollWriteResult]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 20)
        #expect(results.values.allSatisfy { $0.samplesWritten == 2 })
        #expect(try await store.summary().pollsByStatus == [200: 20])
        for (index, vin) in vins.enumerated() {
            #expect(
                try await store.samples(vin: vin, property: "charging.battery_level").map(\.value) == [
                    .number(Double(index))
                ])
        }
    }

    /// A batch write rolls back only the entry whose write failed.
    @Test func batchEntryFailureIsRolledBackAlone() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let other = VIN("1HMFT000000000002")!
        do {
            let connection = try Connection(path: db.path)
            try connection.execute(
                """
                CREATE TRIGGER refuse_other BEFORE INSERT ON series WHEN NEW.vin = '1HMFT000000000002'
                BEGIN SELECT RAISE(ABORT, 'refused for the test'); END
                """)
        }
        var imported = poll(at: minute(1))
        imported.imported = true
        var refused = imported
        refused.vin = other
        let outcomes = try await store.record(
            batch: [
                PollWrite(poll: imported, samples: batterySample(50, at: minute(1)), messageID: "m1"),
                PollWrite(
                    poll: refused,
                    samples: [
                        Sample(
                            vin: other, property: "charging.battery_level", value: .number(1), unit: "percent",
                            observedAt: minute(1))
                    ]),
                PollWrite(poll: imported, samples: batterySample(51, at: minute(2)), messageID: "m1"),
                PollWrite(poll: imported, samples: batterySample(52, at: minute(3))),
            ], detector: EventRules())
        #expect(outcomes.count == 4)
        guard case .written = outcomes[0], case .failed(let error) = outcomes[1], case .duplicate = outcomes[2],
            case .written = outcomes[3]
        else {
            Issue.record("unexpected outcomes \(outcomes)")
            return
        }
        #expect(error.message.contains("refused for the test"))
        #expect(
            try await store.samples(vin: vin, property: "charging.battery_level").map(\.value) == [
                .number(50), .number(52),
            ])
        let check = try Connection(path: db.path)
        #expect(
            try check.scalarInt("SELECT count(*) FROM vehicles WHERE vin = '1HMFT000000000002'") == 0,
            "the failed entry left no row")
    }

    /// The statements of the write path build no temporary b-tree (an `IN (…)` list in an index
    /// condition, a sort without an index): each would cost an allocation and a free per row.
    @Test func writePathBuildsNoTemporaryTables() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let failure = PropertyFailure(
            property: "charging.status", reason: .rateLimit, description: nil, observedAt: nil)
        for n in 0..<3 {
            var record = poll(at: minute(n))
            record.rawBody = Array("{}".utf8)
            let samples =
                batterySample(Double(10 + n * 40), at: minute(n))
                + lockSamples(n % 2 == 0 ? "locked" : "unlocked", at: minute(n))
            try await store.record(record, samples: samples, failures: [failure], detector: EventRules())
        }
        let statements = await store.withConnection { $0.cachedSQL }
        #expect(statements.count > 10)
        let check = try Connection(path: db.path)
        for sql in statements where !sql.hasPrefix("BEGIN") && !sql.hasPrefix("COMMIT") && !sql.contains("SAVEPOINT") {
            let explain = try check.makeStatement("EXPLAIN " + sql)
            var opcodes: [String] = []
            while try explain.step() { opcodes.append(explain.text(at: 1) ?? "") }
            #expect(
                !opcodes.contains("OpenEphemeral") && !opcodes.contains("SorterOpen")
                    && !opcodes.contains("OpenAutoindex"), "\(sql)")
        }
    }

    /// A database of another program is never migrated; a query command refuses an empty file.
    @Test func foreignAndEmptyFilesAreRefused() throws {
        let db = TemporaryDatabase()
        do {
            let other = try Connection(path: db.path)
            try other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        }
        try? FileManager.default.removeItem(atPath: db.path + "-wal")
        try? FileManager.default.removeItem(atPath: db.path + "-shm")
        let before = try Data(contentsOf: URL(fileURLWithPath: db.path))
        #expect(throws: StoreError.foreignDatabase(path: db.path, table: "invoices")) {
            try TelemetryStore(path: db.path)
        }
        #expect(throws: StoreError.foreignDatabase(path: db.path, table: "invoices")) {
            try TelemetryStore(existingPath: db.path)
        }
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: db.path)) == before,
            "not a byte changed (not even the journal mode)")

        let empty = db.directory + "/empty.sqlite"
        #expect(FileManager.default.createFile(atPath: empty, contents: nil))
        #expect(throws: StoreError.notAFleetDatabase(path: empty)) { try TelemetryStore(existingPath: empty) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: empty)).isEmpty, "still empty")
        _ = try TelemetryStore(path: empty)  // the daemon makes it a new database
        _ = try TelemetryStore(existingPath: empty)
    }

    /// Text is stored whole (a NUL inside is not its end), and a hand-edited setting of any size
    /// does not break `status`.
    @Test func textWithNULAndHugeSettingsSurvive() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let text = "a,\"b\"\nc\u{0}d\u{1B}[2J"
        try await store.record(
            poll(at: minute(0)),
            samples: [Sample(vin: vin, property: "diagnostics.note", value: .text(text), observedAt: minute(0))],
            detector: EventRules())
        #expect(try await store.samples(vin: vin, property: "diagnostics.note").map(\.value) == [.text(text)])
        for value in ["1e300", "-1e300", "9223372036854775807", "'text'"] {
            try await store.withConnection {
                try $0.execute("UPDATE settings SET value = \(value) WHERE key = 'stale_after_seconds'")
            }
            #expect(try await store.status().count == 1)
        }
    }

    /// Vehicles whose clearance ended before the cutoff are listed for purging; others are not.
    @Test func revokedVehiclesAreListedForPurging() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let other = VIN("1HMFT000000000002")!
        let noData = VIN("1HMFT000000000003")!
        _ = try await store.recordClearance(
            [
                FleetVehicle(vin: vin, brand: "sandbox", status: .approved),
                FleetVehicle(vin: other, brand: "sandbox", status: .approved),
            ], at: minute(0), detector: EventRules())
        try await store.record(poll(at: minute(1)), samples: batterySample(50, at: minute(1)), detector: EventRules())
        _ = try await store.recordClearance(
            [
                FleetVehicle(vin: vin, brand: "sandbox", status: .revoked),
                FleetVehicle(vin: other, brand: "sandbox", status: .approved),
                FleetVehicle(vin: noData, brand: "sandbox", status: .revoked),
            ], at: minute(10), detector: EventRules())
        #expect(try await store.vehiclesRevoked(before: minute(5)).isEmpty)
        #expect(
            try await store.vehiclesRevoked(before: minute(11)) == [vin],
            "a revoked vehicle without data has nothing to purge")
        try await store.purge(vin: vin)
        _ = try await store.recordClearance(
            [FleetVehicle(vin: vin, brand: "sandbox", status: .revoked)], at: minute(12), detector: EventRules())
        #expect(
            try await store.vehiclesRevoked(before: minute(20)).isEmpty,
            "listed again by the fleet sync, it is not purged again")
    }
}
