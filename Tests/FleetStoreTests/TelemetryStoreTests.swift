import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// A fresh database file in a temporary folder, removed with its WAL files at the end.
struct TemporaryDatabase: ~Copyable {
    let directory: String
    var path: String { directory + "/telemetry.sqlite" }

    init() {
        directory = NSTemporaryDirectory() + "fleet-telemetry-tests-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

let vin = VIN("1HMFT000000000001")!
let t0 = Timestamp(iso8601: "2026-11-28T09:00:00Z")!

func poll(at time: Timestamp, status: Int? = 200, error: String? = nil) -> PollRecord {
    PollRecord(
        vin: vin, requestedAt: time, receivedAt: time.adding(milliseconds: 40), httpStatus: status,
        latencyMilliseconds: 40, error: error, requestID: "r1")
}

func lockSamples(_ state: String, at time: Timestamp, source: ObservationTimeSource = .property) -> [Sample] {
    [
        Sample(
            vin: vin, property: "doors.locks.lock_state", instance: "front_left", value: .text(state), observedAt: time,
            timeSource: source),
        Sample(
            vin: vin, property: "charging.battery_level", value: .number(64), unit: "percent", observedAt: time,
            timeSource: source),
    ]
}

@Suite struct TelemetryStoreTests {
    /// `SeriesKey` hashes without the VIN (maps of series hold one vehicle); keys of two vehicles
    /// must still be two entries.
    @Test func seriesKeysOfTwoVehiclesStayApart() {
        let other = VIN("1HMFT000000000002")!
        var map: [SeriesKey: Double] = [:]
        map[SeriesKey(vin: vin, property: "charging.battery_level", instance: "")] = 64
        map[SeriesKey(vin: other, property: "charging.battery_level", instance: "")] = 12
        #expect(map.count == 2)
        #expect(map[SeriesKey(vin: vin, property: "charging.battery_level", instance: "")] == 64)
        #expect(map[SeriesKey(vin: other, property: "charging.battery_level", instance: "")] == 12)
    }

    /// Each poll's savepoint keeps its statement journal in memory, not in a temporary file
    /// created and deleted per transaction.
    @Test func statementJournalsStayInMemory() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        #expect(try await store.withConnection { try $0.scalarInt("PRAGMA temp_store") } == 2)
    }

    @Test func roundTrip() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let result = try await store.record(
            poll(at: t0), samples: lockSamples("locked", at: t0), detector: EventRules())
        #expect(result.samplesWritten == 2)
        #expect(result.events.isEmpty)
        let history = try await store.samples(vin: vin, property: "charging.battery_level")
        #expect(
            history == [
                Sample(
                    vin: vin, property: "charging.battery_level", value: .number(64), unit: "percent", observedAt: t0)
            ])
        let latest = try await store.latestValues(vin: vin)
        #expect(
            latest[SeriesKey(vin: vin, property: "doors.locks.lock_state", instance: "front_left")]
                == LatestValue(value: .text("locked"), unit: nil, observedAt: t0))
        let summary = try await store.summary()
        #expect(summary.pollsByStatus == [200: 1])
        #expect(summary.samples == 2)
    }

    @Test func unchangedPollAddsNoSampleRows() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(poll(at: t0), samples: lockSamples("locked", at: t0), detector: EventRules())
        let again = try await store.record(
            poll(at: t0.adding(milliseconds: 60_000)), samples: lockSamples("locked", at: t0), detector: EventRules())
        #expect(again.samplesWritten == 0)
        #expect(try await store.summary().samples == 2)
        #expect(try await store.summary().pollsByStatus == [200: 2])
    }

    @Test func samplesWithoutTheirOwnTimeAreWrittenOnlyWhenTheValueChanges() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        try await store.record(
            poll(at: t0), samples: lockSamples("locked", at: t0, source: .received), detector: EventRules())
        let t1 = t0.adding(milliseconds: 60_000)
        let same = try await store.record(
            poll(at: t1), samples: lockSamples("locked", at: t1, source: .received), detector: EventRules())
        #expect(same.samplesWritten == 0)
        let t2 = t1.adding(milliseconds: 60_000)
        let changed = try await store.record(
            poll(at: t2), samples: lockSamples("unlocked", at: t2, source: .received), detector: EventRules())
        #expect(changed.samplesWritten == 1)
        #expect(changed.events.map(\.type) == [.doorUnlocked])
    }

    @Test func reopeningKeepsData() async throws {
        let db = TemporaryDatabase()
        do {
            let store = try TelemetryStore(path: db.path)
            try await store.record(poll(at: t0), samples: lockSamples("locked", at: t0), detector: EventRules())
            try await store.record(
                poll(at: t0.adding(milliseconds: 1000)),
                samples: lockSamples("unlocked", at: t0.adding(milliseconds: 1000)), detector: EventRules())
        }
        let reopened = try TelemetryStore(path: db.path)
        // The battery level repeats (64 both times): one history row.
        #expect(try await reopened.summary().samples == 3)
        #expect(try await reopened.events().map(\.type) == [.doorUnlocked])
        let stored = try await reopened.samples(vin: vin, property: "doors.locks.lock_state", instance: "front_left")
        #expect(stored.map(\.value) == [.text("locked"), .text("unlocked")])
    }

    @Test func olderObservationDoesNotReplaceLatest() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let t1 = t0.adding(milliseconds: 60_000)
        try await store.record(poll(at: t1), samples: lockSamples("unlocked", at: t1), detector: EventRules())
        let late = try await store.record(poll(at: t1), samples: lockSamples("locked", at: t0), detector: EventRules())
        #expect(late.samplesWritten == 2, "history keeps the late observation")
        #expect(late.events.isEmpty, "a stale observation is not a change")
        let latest = try await store.latestValues(vin: vin)
        #expect(
            latest[SeriesKey(vin: vin, property: "doors.locks.lock_state", instance: "front_left")]?.value
                == .text("unlocked"))
    }

    @Test func eventIsStoredOnceEvenWhenDetectedTwice() async throws {
        struct Always: ChangeDetecting {
            func events(
                previous: [SeriesKey: LatestValue], observed: [Sample], detectedAt: Timestamp,
                state: inout RuleState
            ) -> [Event] {
                [
                    Event(
                        vin: vin, type: .chargingStarted, instance: "", occurredAt: t0, detectedAt: detectedAt,
                        previousValue: "not_charging", newValue: "charging")
                ]
            }
        }
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let first = try await store.record(poll(at: t0), samples: lockSamples("locked", at: t0), detector: Always())
        let second = try await store.record(
            poll(at: t0.adding(milliseconds: 5)), samples: lockSamples("locked", at: t0), detector: Always())
        #expect(first.events.count == 1)
        #expect(first.events.first?.id != nil)
        #expect(second.events.isEmpty)
        #expect(try await store.events().count == 1)
    }

    @Test func failedPollIsRecordedWithoutSamples() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let result = try await store.record(
            poll(at: t0, status: 429, error: "HTTP 429"), samples: [], detector: EventRules())
        #expect(result.samplesWritten == 0)
        #expect(try await store.summary().pollsByStatus == [429: 1])
        let noResponse = try await store.record(
            poll(at: t0, status: nil, error: "timeout"), samples: [], detector: EventRules())
        #expect(noResponse.samplesWritten == 0)
        #expect(try await store.summary().pollsByStatus == [nil: 1, 429: 1])
    }

    @Test func databaseIsInWALModeWithCurrentSchemaVersion() throws {
        let db = TemporaryDatabase()
        _ = try TelemetryStore(path: db.path)
        let connection = try Connection(path: db.path)
        #expect(try connection.scalarText("PRAGMA journal_mode") == "wal")
        #expect(try connection.scalarInt("PRAGMA user_version") == Schema.currentVersion)
    }

    @Test func newerSchemaIsRefused() throws {
        let db = TemporaryDatabase()
        do {
            let connection = try Connection(path: db.path)
            try connection.execute("PRAGMA user_version = 99")
        }
        #expect(throws: StoreError.newerSchema(found: 99, supported: Schema.currentVersion, path: db.path)) {
            try TelemetryStore(path: db.path)
        }
    }

    @Test func notADatabaseGivesAClearError() throws {
        let db = TemporaryDatabase()
        _ = FileManager.default.createFile(atPath: db.path, contents: Data(repeating: 0x41, count: 4096))
        #expect {
            try TelemetryStore(path: db.path)
        } throws: { error in
            guard let error = error as? SQLiteError else { return false }
            return error.code == .notadb && error.description.contains("not a database")
        }
    }

    @Test func sqliteErrorCarriesCodeMessageAndSQL() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        try connection.execute("INSERT INTO t VALUES (1)")
        let statement = try connection.makeStatement("INSERT INTO t VALUES (?1)")
        #expect {
            try statement.run([.integer(1)])
        } throws: { error in
            guard let error = error as? SQLiteError else { return false }
            return error.code == .constraint && error.extendedCode == .constraintPrimaryKey
                && error.sql == "INSERT INTO t VALUES (?1)" && error.message.contains("UNIQUE")
        }
    }

    @Test func transactionRollsBackWhenTheBodyThrows() throws {
        struct Boom: Error {}
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (x INTEGER)")
        #expect(throws: Boom.self) {
            try connection.transaction {
                try connection.execute("INSERT INTO t VALUES (1)")
                throw Boom()
            }
        }
        #expect(try connection.scalarInt("SELECT count(*) FROM t") == 0)
        try connection.transaction { try connection.execute("INSERT INTO t VALUES (2)") }
        #expect(try connection.scalarInt("SELECT count(*) FROM t") == 1)
    }

    @Test func secondProcessCannotTakeTheDatabaseLock() throws {
        let db = TemporaryDatabase()
        do {
            let first = try DatabaseLock(databasePath: db.path)
            #expect {
                try DatabaseLock(databasePath: db.path)
            } throws: { error in
                (error as? LockError)?.description == db.path
                    + ": another fleet-telemetry process is using this database"
            }
            // The same file under another name: a hard link and a symbolic link.
            try FileManager.default.linkItem(atPath: db.path, toPath: db.directory + "/hard.sqlite")
            try FileManager.default.createSymbolicLink(
                atPath: db.directory + "/soft.sqlite", withDestinationPath: db.path)
            for other in ["/hard.sqlite", "/soft.sqlite"] {
                #expect(throws: LockError.self) { try DatabaseLock(databasePath: db.directory + other) }
            }
            withExtendedLifetime(first) {}
        }
        _ = try DatabaseLock(databasePath: db.path)
    }

    @Test func missingFolderIsNamed() {
        #expect {
            try TelemetryStore(path: "/nonexistent-folder/telemetry.sqlite")
        } throws: { error in
            String(describing: error).contains("the folder /nonexistent-folder does not exist")
        }
    }

    /// A database of every earlier schema version migrates to the current one and keeps its rows.
    @Test(arguments: 1..<Schema.migrations.count)
    func migratesFromEveryEarlierVersion(version: Int) async throws {
        let db = TemporaryDatabase()
        do {
            let connection = try Connection(path: db.path)
            for index in 0..<version { try connection.execute(Schema.migrations[index]) }
            try connection.execute("PRAGMA user_version = \(version)")
            try connection.execute("INSERT INTO vehicles (vin, first_seen_at) VALUES ('1HMFT000000000001', 1)")
            if version < 14 {
                // The second poll's VIN has no vehicles row (a hand edit): it is kept all the same.
                try connection.execute(
                    """
                    INSERT INTO polls (vin, requested_at, http_status, latency_ms, request_id)
                    VALUES ('1HMFT000000000001', 5, 200, 3, '7f3c2a9e1b4d48c6a0e5d2f18b9c6a11'),
                        ('1HMFT000000000002', 9, 503, 4, 'req-9')
                    """)
            } else {
                try connection.execute(
                    """
                    INSERT INTO poll_log (vehicle_id, requested_at, http_status, latency_ms, request_id)
                    VALUES ((SELECT id FROM vehicles WHERE vin = '1HMFT000000000001'), 5, 200, 3,
                        x'7f3c2a9e1b4d48c6a0e5d2f18b9c6a11')
                    """)
            }
            if version < 12 {
                // A battery series without a latest row; a lock series with a text value and its
                // latest row.
                try connection.execute(
                    "INSERT INTO samples (vin, property, instance, observed_at, value_num, unit, received_at) "
                        + "VALUES ('1HMFT000000000001', 'charging.battery_level', '', 5, 64, 'percent', 6)")
                try connection.execute(
                    "INSERT INTO samples (vin, property, instance, observed_at, value_text, received_at) "
                        + "VALUES ('1HMFT000000000001', 'doors.locks.lock_state', 'front_left', 7, 'unlocked', 8)")
                try connection.execute(
                    "INSERT INTO latest (vin, property, instance, observed_at, value_text, received_at) "
                        + "VALUES ('1HMFT000000000001', 'doors.locks.lock_state', 'front_left', 7, 'unlocked', 8)")
            } else {
                try connection.execute(
                    """
                    INSERT INTO series (id, vin, property, instance, unit, observed_at, value_num, value_text,
                        received_at, history_at)
                    VALUES (1, '1HMFT000000000001', 'charging.battery_level', '', 'percent', 5, 64, NULL, 6, 5),
                        (2, '1HMFT000000000001', 'doors.locks.lock_state', 'front_left', NULL, 7, NULL, 'unlocked', 8, 7);
                    INSERT INTO history (series_id, observed_at, value, received_at) VALUES (1, 5, 64, 6), (2, 7, 'unlocked', 8);
                    """)
            }
            try connection.execute(
                "INSERT INTO events (vin, type, instance, occurred_at, detected_at, previous_value, new_value) "
                    + "VALUES ('1HMFT000000000001', 'door_unlocked', 'front_left', 7, 8, 'locked', 'unlocked')")
            // A user's views (Grafana, scripts) on the tables later versions rebuild, and one broken
            // view: each keeps working (or stays as it is), and none stops a migration.
            try connection.execute(
                """
                CREATE VIEW user_polls AS SELECT vin, http_status FROM polls;
                CREATE VIEW user_fleet AS SELECT vin FROM vehicles;
                CREATE VIEW user_samples AS SELECT vin, observed_at FROM samples;
                CREATE VIEW user_broken AS SELECT vin FROM no_such_table;
                """)
            if (7..<11).contains(version) {
                // The archive as it was before schema 11: bodies as received.
                try connection.execute(
                    "INSERT INTO raw_responses (vin, received_at, http_status, body) "
                        + "VALUES ('1HMFT000000000001', 6, 200, x'7b7d')"
                )
            } else if version >= 11 {
                try connection.execute(
                    "INSERT INTO raw_responses (vin, received_at, http_status, dictionary_id, size, body) "
                        + "VALUES ('1HMFT000000000001', 6, 200, NULL, 2, x'7b7d')"
                )
            }
        }
        let store = try TelemetryStore(path: db.path)
        #expect(try await store.samples(vin: vin, property: "charging.battery_level").map(\.value) == [.number(64)])
        let rows = try DocumentedQueryTests.rows(
            try Connection(path: db.path),
            "SELECT vin, property, instance, observed_at, value_num, value_text, unit, received_at FROM samples "
                + "ORDER BY observed_at")
        #expect(
            rows == [
                "'1HMFT000000000001'|'charging.battery_level'|''|5|64.0|NULL|'percent'|6",
                "'1HMFT000000000001'|'doors.locks.lock_state'|'front_left'|7|NULL|'unlocked'|NULL|8",
            ])
        #expect(
            try await store.latestValues(vin: vin)[
                SeriesKey(vin: vin, property: "doors.locks.lock_state", instance: "front_left")]
                == LatestValue(value: .text("unlocked"), unit: nil, observedAt: Timestamp(millisecondsSince1970: 7)))
        #expect(try await store.events(vin: vin).map(\.type) == [.doorUnlocked])
        #expect(
            try await store.latestValues(vin: vin)[
                SeriesKey(vin: vin, property: "charging.battery_level", instance: "")]?
                .value == .number(64), "a series without a latest row gets one")
        let polls = try DocumentedQueryTests.rows(
            try Connection(path: db.path), "SELECT vin, requested_at, http_status, request_id FROM polls ORDER BY id")
        #expect(
            polls
                == ["'1HMFT000000000001'|5|200|'7f3c2a9e1b4d48c6a0e5d2f18b9c6a11'"]
                + (version < 14 ? ["'1HMFT000000000002'|9|503|'req-9'"] : []))
        #expect(try await store.summary().pollsByStatus == (version < 14 ? [200: 1, 503: 1] : [200: 1]))
        #expect(try await store.vehicles().first?.status == .active)
        if version >= 7 {
            let archived = try await store.archivedResponses(vin: vin, since: Timestamp(millisecondsSince1970: 0))
            #expect(archived.map(\.body) == [Array("{}".utf8)])
        }
        let connection = try Connection(path: db.path)
        #expect(try connection.scalarInt("PRAGMA user_version") == Schema.currentVersion)
        #expect(try connection.scalarText("PRAGMA integrity_check") == "ok")
        #expect(try connection.scalarInt("SELECT count(*) FROM user_polls") == (version < 14 ? 2 : 1))
        #expect(try connection.scalarInt("SELECT count(*) FROM user_fleet") == (version < 14 ? 2 : 1))
        #expect(try connection.scalarInt("SELECT count(*) FROM user_samples") == 2)
    }

    /// The poll log refers to its vehicle by id: `polls` shows each poll with its VIN and its
    /// `request_id` as the API sent it (32 hex digits kept as 16 bytes, any other text as it is),
    /// and a purge takes one vehicle's polls only.
    @Test func pollsShowTheirVINAndRequestIDAndPurgeTakesOneVehicle() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        let other = VIN("1HMFT000000000002")!
        let ids = [
            "7f3c2a9e1b4d48c6a0e5d2f18b9c6a11", "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b",
            "7F3C2A9E1B4D48C6A0E5D2F18B9C6A11",
        ]
        for (index, requestID) in ids.enumerated() {
            try await store.record(
                PollRecord(
                    vin: index == 1 ? other : vin, requestedAt: t0.adding(milliseconds: Int64(index)),
                    receivedAt: t0.adding(milliseconds: Int64(index)), httpStatus: 200, latencyMilliseconds: 5,
                    requestID: requestID),
                samples: [], detector: EventRules())
        }
        let connection = try Connection(path: db.path)
        let rows = try DocumentedQueryTests.rows(connection, "SELECT vin, request_id FROM polls ORDER BY id")
        #expect(
            rows == [
                "'1HMFT000000000001'|'7f3c2a9e1b4d48c6a0e5d2f18b9c6a11'",
                "'1HMFT000000000002'|'3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b'",
                "'1HMFT000000000001'|'7F3C2A9E1B4D48C6A0E5D2F18B9C6A11'",
            ])
        #expect(try connection.scalarInt("SELECT length(request_id) FROM poll_log WHERE id = 1") == 16)
        try await store.purge(vin: vin)
        #expect(try DocumentedQueryTests.rows(connection, "SELECT vin FROM polls") == ["'1HMFT000000000002'"])
        #expect(try await store.pollCountsByVIN(since: t0) == [other: 1])
        // A vehicles row deleted by hand: its polls are not handed to the next vehicle.
        try connection.execute("DELETE FROM vehicles WHERE vin = '1HMFT000000000002'")
        try await store.record(
            PollRecord(
                vin: VIN("1HMFT000000000003")!, requestedAt: t0, receivedAt: t0, httpStatus: 200, latencyMilliseconds: 5
            ),
            samples: [], detector: EventRules())
        #expect(try DocumentedQueryTests.rows(connection, "SELECT vin FROM polls") == ["'1HMFT000000000003'"])
    }

    /// Rule state (a fired battery_low) survives a restart: no duplicate after reopening.
    @Test func ruleStateSurvivesARestart() async throws {
        let db = TemporaryDatabase()
        func battery(_ level: Double, minute: Int64) -> [Sample] {
            [
                Sample(
                    vin: vin, property: "charging.battery_level", value: .number(level), unit: "percent",
                    observedAt: t0.adding(milliseconds: minute * 60_000))
            ]
        }
        do {
            let store = try TelemetryStore(path: db.path)
            try await store.record(poll(at: t0), samples: battery(30, minute: 1), detector: EventRules())
            let low = try await store.record(poll(at: t0), samples: battery(15, minute: 2), detector: EventRules())
            #expect(low.events.map(\.type) == [.batteryLow])
        }
        let reopened = try TelemetryStore(path: db.path)
        let again = try await reopened.record(poll(at: t0), samples: battery(14, minute: 3), detector: EventRules())
        #expect(again.events.isEmpty, "still fired: no second battery_low")
        #expect(try await reopened.ruleState(vin: vin) == [.batteryLow(instance: ""): "fired"])
    }

    @Test func retentionPrunesOldRowsInBatchesAndKeepsLatest() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        for minute in 0..<25 {
            let time = t0.adding(milliseconds: Int64(minute) * 60_000)
            try await store.record(
                poll(at: time),
                samples: [
                    Sample(
                        vin: vin, property: "charging.battery_level", value: .number(Double(minute)), unit: "percent",
                        observedAt: time)
                ], detector: EventRules())
        }
        let deleted = try await store.prune(
            samplesBefore: t0.adding(milliseconds: 20 * 60_000), pollsBefore: t0.adding(milliseconds: 10 * 60_000),
            batch: 3)
        #expect(deleted == 20 + 10)
        #expect(
            try await store.samples(vin: vin, property: "charging.battery_level").map(\.value)
                == (20..<25).map { .number(Double($0)) })
        #expect(try await store.summary().pollsByStatus == [200: 15])
        #expect(
            try await store.latestValues(vin: vin)[
                SeriesKey(vin: vin, property: "charging.battery_level", instance: "")]?.value == .number(24))
    }
}
