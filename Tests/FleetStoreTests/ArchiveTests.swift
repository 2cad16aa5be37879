import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// A vehicle-data body like the API's: the same capabilities every time, values and times that move.
private func body(vin: VIN, n: Int, random: inout SplitMix64) -> [UInt8] {
    let time = "2026-11-28T09:\(String(format: "%02d", n % 60)):\(String(format: "%02d", n % 60)).\(n % 1000)Z"
    let level = Double(random.next() % 1000) / 1000
    let odometer = 10_000 + Double(random.next() % 100_000) / 10
    return Array(
        """
        {"brand":"sandbox","vin":"\(vin)","charging":{"battery_level":{"data":\(level),"timestamp":"\(time)"},\
        "status":{"data":"not_charging","timestamp":"\(time)"}},"diagnostics":{"odometer":{"data":{"unit":\
        "kilometers","value":\(odometer)},"timestamp":"\(time)"}},"doors":{"locks":[{"data":{"location":\
        "front_left","lock_state":"locked"},"timestamp":"\(time)"},{"data":{"location":"front_right",\
        "lock_state":"locked"},"timestamp":"\(time)"}]}}
        """.utf8)
}

private func vin(_ n: Int) -> VIN { VIN(String(format: "1HMFT%012d", n))! }

@Suite struct ArchiveTests {
    /// Every body comes back byte for byte: similar bodies of several vehicles, a body that is not
    /// UTF-8, an empty one and an error's; once a few vehicles were seen, bodies are deflated with
    /// one dictionary built from them, and take a fraction of their size.
    @Test func bodiesRoundTripByteForByte() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var random = SplitMix64(seed: 3)
        var sent: [(VIN, Timestamp, [UInt8])] = []
        for n in 0..<40 {
            let vehicle = vin(n % 5 + 1)
            var record = poll(at: t0.adding(milliseconds: Int64(n) * 1_000), status: n == 7 ? 429 : 200)
            record.vin = vehicle
            switch n {
            case 7: record.rawBody = Array(#"{"errors":[{"title":"Too many requests"}]}"#.utf8)
            case 11: record.rawBody = [0xff, 0x00, 0xfe, 0x7b, 0x80]
            case 12: record.rawBody = []
            default: record.rawBody = body(vin: vehicle, n: n, random: &random)
            }
            try await store.record(record, samples: [], detector: EventRules())
            sent.append((vehicle, record.receivedAt, record.rawBody!))
        }
        for vehicle in (1...5).map(vin) {
            let archived = try await store.archivedResponses(vin: vehicle, since: Timestamp(millisecondsSince1970: 0))
            let expected = sent.filter { $0.0 == vehicle }
            #expect(archived.map(\.receivedAt) == expected.map(\.1))
            #expect(archived.map(\.body) == expected.map(\.2))
        }
        let connection = try Connection(path: db.path)
        // One fleet dictionary (from the first 4 vehicles), then a keyframe per vehicle.
        #expect(try connection.scalarInt("SELECT count(*) FROM archive_dictionaries WHERE vin IS NULL") == 1)
        #expect(try connection.scalarInt("SELECT count(DISTINCT vin) FROM archive_dictionaries") == 5)
        #expect(try connection.scalarInt("SELECT count(*) FROM raw_responses WHERE dictionary_id = 0") == 3)
        let stored = try #require(
            try connection.scalarInt("SELECT sum(length(body)) FROM raw_responses WHERE dictionary_id > 0"))
        let original = try #require(
            try connection.scalarInt("SELECT sum(size) FROM raw_responses WHERE dictionary_id > 0"))
        #expect(stored * 4 < original, "\(stored) bytes stored for \(original)")

        // `raw VIN --at T`: the one received then, or the newest before.
        let at = try await store.archivedResponse(vin: vin(3), at: t0.adding(milliseconds: 2_500))
        #expect(at?.receivedAt == sent[2].1)
        #expect(at?.body == sent[2].2)
        #expect(try await store.archivedResponse(vin: vin(3), at: t0.adding(milliseconds: -1)) == nil)
        #expect(try await store.archivedResponse(vin: vin(3), at: nil)?.receivedAt == sent[37].1)
    }

    /// A store opened later goes on with the keyframes on file (read back and decoded), renews a
    /// vehicle's keyframe every 12 bodies, and every body decodes in a third store, cold.
    @Test func keyframesSurviveARestart() async throws {
        let db = TemporaryDatabase()
        var random = SplitMix64(seed: 11)
        var sent: [[UInt8]] = []
        for round in 0..<2 {
            let store = try TelemetryStore(path: db.path)
            for n in 0..<(round == 0 ? 30 : 60) {
                let index = round * 30 + n
                var record = poll(at: t0.adding(milliseconds: Int64(index) * 60_000))
                record.vin = vin(n % 3 + 1)
                record.rawBody = body(vin: record.vin, n: index, random: &random)
                try await store.record(record, samples: [], detector: EventRules())
                if record.vin == vin(1) { sent.append(record.rawBody!) }
            }
        }
        let reader = try TelemetryStore(path: db.path)
        let archived = try await reader.archivedResponses(vin: vin(1), since: Timestamp(millisecondsSince1970: 0))
        #expect(archived.map(\.body) == sent)
        let connection = try Connection(path: db.path)
        // Vehicle 1's first keyframe came with its first body after the fleet dictionary (the
        // 8th body); the second store read it back, and made the next at its 13th body.
        #expect(
            try connection.scalarInt(
                "SELECT count(*) FROM archive_dictionaries WHERE vin = ?1", [.text(vin(1).rawValue)]) == 2)
    }

    /// A new fleet dictionary follows every 7 days, a vehicle's keyframe every 12 bodies; a
    /// dictionary is deleted by retention only once every body it encoded is past the cutoff, and
    /// the bodies kept still decode.
    @Test func dictionariesRotateAndAreRetired() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var random = SplitMix64(seed: 5)
        let day: Int64 = 86_400_000
        func archive(dayOffset: Int64, count: Int) async throws {
            for n in 0..<count {
                let vehicle = vin(n % 4 + 1)
                var record = poll(at: t0.adding(milliseconds: dayOffset * day + Int64(n) * 1_000))
                record.vin = vehicle
                record.rawBody = body(vin: vehicle, n: n, random: &random)
                try await store.record(record, samples: [], detector: EventRules())
            }
        }
        try await archive(dayOffset: 0, count: 8)
        try await archive(dayOffset: 3, count: 8)
        try await archive(dayOffset: 8, count: 8)
        try await archive(dayOffset: 10, count: 8)
        let connection = try Connection(path: db.path)
        let fleet = "SELECT count(*) FROM archive_dictionaries WHERE vin IS NULL"
        #expect(try connection.scalarInt(fleet) == 2)
        // The second dictionary was made on day 8: the first stays while a day-8 cutoff is near.
        try await store.prune(samplesBefore: nil, pollsBefore: nil, rawBefore: t0.adding(milliseconds: 8 * day))
        #expect(try connection.scalarInt(fleet) == 2)
        try await store.prune(
            samplesBefore: nil, pollsBefore: nil, rawBefore: t0.adding(milliseconds: 9 * day + 60_000))
        #expect(try connection.scalarInt(fleet) == 1)
        // The keyframes of days 0 and 3 went with it; those of day 8 are used by day 10's bodies.
        #expect(
            try connection.scalarInt(
                "SELECT count(*) FROM archive_dictionaries WHERE vin IS NOT NULL AND created_at < ?1",
                [.integer(t0.adding(milliseconds: 8 * day).millisecondsSince1970)]) == 0)
        for vehicle in (1...4).map(vin) {
            let kept = try await store.archivedResponses(vin: vehicle, since: Timestamp(millisecondsSince1970: 0))
            #expect(kept.count == 2)
            #expect(kept.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.body))) != nil })
        }
    }

    /// A vehicle purged by another process while this store archives its bodies: its keyframe
    /// went with it, and the bodies archived after the purge decode.
    @Test func aPurgeElsewhereRetiresTheKeyframeHeld() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var random = SplitMix64(seed: 13)
        func archive(_ n: Int) async throws -> [UInt8] {
            var record = poll(at: t0.adding(milliseconds: Int64(n) * 60_000))
            record.vin = vin(n % 4 + 1)
            record.rawBody = body(vin: record.vin, n: n, random: &random)
            try await store.record(record, samples: [], detector: EventRules())
            return record.rawBody!
        }
        for n in 0..<12 { _ = try await archive(n) }
        let other = try TelemetryStore(path: db.path)
        try await other.purge(vin: vin(1))
        var kept: [[UInt8]] = []
        for n in 12..<24 {
            let sent = try await archive(n)
            if n % 4 == 0 { kept.append(sent) }
        }
        let archived = try await store.archivedResponses(vin: vin(1), since: Timestamp(millisecondsSince1970: 0))
        #expect(archived.allSatisfy { $0.problem == nil }, "\(archived.compactMap(\.problem))")
        #expect(archived.map(\.body) == kept)
    }

    /// A damaged body is reported with its vehicle and time, not returned as garbage; the other
    /// responses are read as before.
    @Test func aDamagedBodyIsNamed() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        var record = poll(at: t0)
        record.rawBody = Array(#"{"charging":{}}"#.utf8)
        try await store.record(record, samples: [], detector: EventRules())
        let connection = try Connection(path: db.path)
        try connection.execute("UPDATE raw_responses SET body = x'00ff00ff'")
        let archived = try await store.archivedResponses(vin: vin, since: t0)
        #expect(archived.count == 1)
        #expect(archived.first?.body.isEmpty == true)
        let problem = try #require(archived.first?.problem)
        #expect(problem.contains("does not decode") && problem.contains(vin.rawValue), "\(problem)")
    }
}

/// A damaged `size` is refused before anything is allocated for it.
@Test func aDamagedSizeIsRefusedWithoutAllocating() throws {
    #expect(throws: ArchiveError.self) { try Inflater.decompress([0x03, 0x00], size: Int.max, dictionary: nil) }
    #expect(throws: ArchiveError.self) { try Inflater.decompress([0x03, 0x00], size: -1, dictionary: nil) }
    #expect(try Inflater.decompress([0x03, 0x00], size: 0, dictionary: nil) == [])
}
