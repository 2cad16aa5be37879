import FleetDaemon
import FleetEvents
import FleetIngestion
import Logging
import FleetModel
import FleetNormalizer
import FleetStore
import Foundation
import Testing

/// A store in a temporary folder and an importer writing to it on a manual clock.
func withImporter<T>(
    events: EventRulesConfiguration = .init(), _ body: (Importer, TelemetryStore, CollectingSink) async throws -> T
) async throws -> T {
    let directory = NSTemporaryDirectory() + "fleet-telemetry-import-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try TelemetryStore(path: directory + "/t.sqlite")
    let sink = CollectingSink()
    var logger = Logger(label: "import")
    logger.logLevel = .critical
    let ingestion = Daemon.ingestion(events: events, archiveRawDays: 0, store: store, sink: sink, logger: logger)
    let importer = Importer(ingestion: ingestion, clock: ManualWallClock(start: harnessStart))
    return try await body(importer, store, sink)
}

func fixtureText(_ name: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/high-mobility/\(name)"))
    // One line: re-serialize through the parser and the JSON encoder.
    let json = try JSONParser.parse(Array(data))
    return String(decoding: try JSONEncoder().encode(json), as: UTF8.self)
}

let fullVIN = VIN("1HMFT000000000001")!

/// A reader for ``Importer/importLines(named:read:into:maximumLineBytes:progress:)`` that hands
/// out `bytes` `size` at a time, as a file read in chunks would (lines cut anywhere).
func chunks(of bytes: [UInt8], size: Int) -> () -> [UInt8]? {
    var offset = 0
    return {
        guard offset < bytes.count else { return nil }
        defer { offset += size }
        return Array(bytes[offset..<min(offset + size, bytes.count)])
    }
}

@Suite(.serialized) struct ImportAndStorageTests {
    @Test func importsGoodLinesAndReportsBadOnes() async throws {
        try await withImporter { importer, store, _ in
            let push =
                #"{"version":2,"message_id":"m-1","vin":"1HMFT000000000002","data":{"diagnostics":{"odometer":[{"data":{"value":10600,"unit":"kilometers"},"timestamp":"2026-11-28T08:00:00.000Z"}]}}}"#
            let lines = [
                try fixtureText("vehicle_data_autoapi13_full.json"), "not json",
                try fixtureText("vehicle_data_autoapi13_minimal.json"),
                #"{"vin":"BAD"}"#, push, push, "", "[1]",
                try fixtureText("vehicle_data_autoapi13_with_property_failures.json"),
            ]
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "capture.jsonl", content: Array(lines.joined(separator: "\n").utf8), wholeDocument: false,
                into: &summary)
            #expect(summary.responses == 4)
            #expect(summary.duplicates == 1)
            #expect(
                summary.rejected.map(\.description) == [
                    "capture.jsonl:2: not valid JSON (invalid literal at byte 0)",
                    "capture.jsonl:4: invalid VIN \"BAD\": must be 17 characters, got 3",
                    "capture.jsonl:8: not a JSON object",
                ])
            #expect(summary.samples == 54 + 3 + 1 + 2)
            let odometer = try await store.samples(vin: VIN("1HMFT000000000002")!, property: "diagnostics.odometer")
            #expect(odometer.map(\.value) == [.number(10532), .number(10600)])
            #expect(try await store.summary().pollsByStatus.isEmpty, "an import makes no request, so no polls rows")
        }
    }

    /// A JSON-lines file read in small chunks (lines cut anywhere, a last line without newline)
    /// imports exactly as when read whole.
    @Test func chunkedReadingImportsLikeAWholeFile() async throws {
        let lines = [
            try fixtureText("vehicle_data_autoapi13_full.json"), "not json",
            try fixtureText("vehicle_data_autoapi13_minimal.json"), "", "[1]",
        ]
        let bytes = Array(lines.joined(separator: "\n").utf8)
        try await withImporter { importer, store, _ in
            var summary = Importer.Summary()
            try await importer.importLines(named: "c.jsonl", read: chunks(of: bytes, size: 7), into: &summary)
            #expect(summary.responses == 2)
            #expect(
                summary.rejected.map(\.description) == [
                    "c.jsonl:2: not valid JSON (invalid literal at byte 0)", "c.jsonl:5: not a JSON object",
                ])
            #expect(summary.samples == 54 + 3)
            #expect(try await store.samples(vin: fullVIN, property: "diagnostics.odometer").count == 1)
        }
    }

    /// A line over the limit is rejected with its number and skipped without being held whole;
    /// the lines around it are imported and numbered as before.
    @Test func aLineOverTheLimitIsSkipped() async throws {
        let minimal = try fixtureText("vehicle_data_autoapi13_minimal.json")
        let long = #"{"vin":"1HMFT000000000001","pad":""# + String(repeating: "x", count: 5_000) + #""}"#
        let lines = ["", minimal, long, "not json", long, minimal]
        let bytes = Array(lines.joined(separator: "\n").utf8)
        try await withImporter { importer, _, _ in
            var summary = Importer.Summary()
            try await importer.importLines(
                named: "l.jsonl", read: chunks(of: bytes, size: 100), into: &summary, maximumLineBytes: 1_000)
            #expect(
                summary.rejected.map(\.description) == [
                    "l.jsonl:3: line longer than 1000 bytes; skipped",
                    "l.jsonl:4: not valid JSON (invalid literal at byte 0)",
                    "l.jsonl:5: line longer than 1000 bytes; skipped",
                ])
            #expect(summary.responses == 2)
            #expect(summary.samples == 3, "the minimal document's 3 samples, once")
        }
        // Read whole (one chunk), the same lines give the same outcome.
        try await withImporter { importer, _, _ in
            var summary = Importer.Summary()
            var delivered = false
            try await importer.importLines(
                named: "l.jsonl",
                read: {
                    defer { delivered = true }
                    return delivered ? nil : bytes
                }, into: &summary, maximumLineBytes: 1_000)
            #expect(summary.rejected.map(\.line) == [3, 4, 5])
            #expect(summary.responses == 2)
        }
    }

    /// A push message whose `message_id` cannot identify it is refused, not imported again on every run.
    @Test func pushMessageWithUnusableMessageIDIsRefused() async throws {
        try await withImporter { importer, _, _ in
            let line =
                #"{"version":2,"message_id":{"x":1},"vin":"1HMFT000000000002","data":{"diagnostics":{"odometer":[{"data":{"value":1,"unit":"kilometers"},"timestamp":"2026-11-28T08:00:00.000Z"}]}}}"#
            var summary = Importer.Summary()
            try await importer.importFile(named: "f", content: Array(line.utf8), wholeDocument: false, into: &summary)
            #expect(summary.responses == 0)
            #expect(summary.rejected.first?.reason.contains("message_id") == true)
        }
        // Numeric ids beyond 2^53 are not exact once read: refused rather than taken for each other.
        try await withImporter { importer, _, _ in
            let lines = ["9007199254740993", "9007199254740994", "1.5", "42"].enumerated().map { index, id in
                #"{"version":1,"message_id":"# + id
                    + #","vin":"1HMFT000000000002","data":{"charging":{"battery_level":{"data":0.\#(index + 1),"timestamp":"2026-11-28T07:0\#(index):00.000Z"}}}}"#
            }
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "f", content: Array(lines.joined(separator: "\n").utf8), wholeDocument: false, into: &summary)
            #expect(summary.responses == 1, "only the id 42 is usable")
            #expect(summary.duplicates == 0)
            #expect(summary.rejected.map(\.line) == [1, 2, 3])
        }
    }

    /// Failures are stored as observations, once per reason, and never touch `latest`.
    @Test func failureObservationsLeaveLatestUntouched() async throws {
        try await withImporter { importer, store, _ in
            let vin = VIN("1HMFT000000000003")!
            func body(_ status: String, at time: String) -> String {
                #"{"vin":"1HMFT000000000003","charging":{"status":\#(status)},"diagnostics":{"odometer":{"data":{"value":1,"unit":"kilometers"},"timestamp":"\#(time)"}}}"#
            }
            let good = #"{"data":"charging","timestamp":"2026-11-28T06:00:00Z"}"#
            let failed = #"{"failure":{"reason":"rate_limit","description":"slow down"}}"#
            let other = #"{"failure":{"reason":"oem_error","description":"oops"}}"#
            var summary = Importer.Summary()
            let text = [
                body(good, at: "2026-11-28T06:00:00Z"), body(failed, at: "2026-11-28T06:01:00Z"),
                body(failed, at: "2026-11-28T06:02:00Z"), body(other, at: "2026-11-28T06:03:00Z"),
            ].joined(separator: "\n")
            try await importer.importFile(named: "f", content: Array(text.utf8), wholeDocument: false, into: &summary)
            let latest = try await store.latestValues(vin: vin)
            #expect(latest[SeriesKey(vin: vin, property: "charging.status", instance: "")]?.value == .text("charging"))
            let failures = try await store.failures(vin: vin, property: "charging.status")
            #expect(failures.map(\.reason) == ["rate_limit", "oem_error"], "a row only when the reason changes")
        }
    }

    /// The same payload a hundred times: one row per property.
    @Test func identicalPayloadsAddNoRows() async throws {
        try await withImporter { importer, store, _ in
            let line = try fixtureText("vehicle_data_autoapi13_full.json")
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "f", content: Array(Array(repeating: line, count: 100).joined(separator: "\n").utf8),
                wholeDocument: false, into: &summary)
            #expect(summary.responses == 100)
            #expect(summary.samples == 54)
            #expect(try await store.summary().samples == 54)
            #expect(summary.events == 0)
        }
    }

    /// A partial response keeps the values it does not mention; a unit switch is no change.
    @Test func partialResponsesAndUnitSwitches() async throws {
        try await withImporter { importer, store, sink in
            let first =
                #"{"vin":"1HMFT000000000001","diagnostics":{"odometer":{"data":{"value":100,"unit":"miles"},"timestamp":"2026-11-28T06:00:00Z"}},"charging":{"battery_level":{"data":0.5,"timestamp":"2026-11-28T06:00:00Z"}}}"#
            let partial =
                #"{"vin":"1HMFT000000000001","diagnostics":{"odometer":{"data":{"value":160.9344,"unit":"kilometers"},"timestamp":"2026-11-28T06:05:00Z"}}}"#
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "f", content: Array([first, partial].joined(separator: "\n").utf8), wholeDocument: false,
                into: &summary)
            let latest = try await store.latestValues(vin: fullVIN)
            #expect(
                latest[SeriesKey(vin: fullVIN, property: "charging.battery_level", instance: "")]?.value == .number(50),
                "kept")
            let odometer = try await store.samples(vin: fullVIN, property: "diagnostics.odometer")
            #expect(
                odometer.map(\.value) == [.number(160.9344), .number(160.9344)], "the same distance in another unit")
            #expect(await sink.events.isEmpty)
        }
    }

    @Test func wholeJSONFileWithAnArrayOfDocuments() async throws {
        try await withImporter { importer, store, _ in
            let text =
                "["
                + [
                    try fixtureText("vehicle_data_autoapi13_minimal.json"),
                    try fixtureText("vehicle_data_seed_simplified_schema.json"),
                ].joined(separator: ",") + "]"
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "capture.json", content: Array(text.utf8), wholeDocument: true, into: &summary)
            #expect(summary.responses == 2 && summary.rejected.isEmpty)
            #expect(try await store.summary().vehiclesWithSamples == 2)
        }
    }
}

@Suite(.serialized) struct ImportEdgeCaseTests {
    /// Flat-shape documents carry no time of their own: every distinct reading is kept.
    @Test func flatDocumentsInOneMillisecondAreAllKept() async throws {
        try await withImporter { importer, store, _ in
            let lines = (0..<50).map { #"{"vin":"1HMFT000000000006","diagnostics":{"mileage":\#(1000 + $0)}}"# }
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "f", content: Array(lines.joined(separator: "\n").utf8), wholeDocument: false, into: &summary)
            let history = try await store.samples(vin: VIN("1HMFT000000000006")!, property: "diagnostics.odometer")
            #expect(history.count == 50)
            #expect(history.last?.value == .number(1049))
        }
    }

    /// Two readings of one series in one push message: a time series, and both transitions.
    @Test func severalReadingsInOneDocument() async throws {
        try await withImporter { importer, store, sink in
            let first =
                #"{"vin":"1HMFT000000000001","doors":{"locks":[{"data":{"location":"front_left","lock_state":"locked"},"timestamp":"2026-11-28T00:00:00Z"}]},"diagnostics":{"odometer":[{"data":{"value":10,"unit":"kilometers"},"timestamp":"2026-11-28T00:00:00Z"}]}}"#
            let second =
                #"{"version":2,"message_id":"m2","vin":"1HMFT000000000001","data":{"doors":{"locks":[{"data":{"location":"front_left","lock_state":"unlocked"},"timestamp":"2026-11-28T00:01:00Z"},{"data":{"location":"front_left","lock_state":"locked"},"timestamp":"2026-11-28T00:02:00Z"}]},"diagnostics":{"odometer":[{"data":{"value":30,"unit":"kilometers"},"timestamp":"2026-11-28T00:02:00Z"},{"data":{"value":31,"unit":"kilometers"},"timestamp":"2026-11-28T00:03:00Z"}]}}}"#
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "f", content: Array([first, second].joined(separator: "\n").utf8), wholeDocument: false,
                into: &summary)
            #expect(await sink.events.map(\.type) == [.doorUnlocked, .doorLocked])
            let odometer = try await store.samples(vin: fullVIN, property: "diagnostics.odometer")
            #expect(
                odometer.map(\.value) == [.number(10), .number(30), .number(31)], "one series over time, instance ''")
        }
    }

    /// A failure, a good value, then the same failure again: both failures are recorded.
    @Test func repeatedFailureAfterRecoveryIsRecorded() async throws {
        try await withImporter { importer, store, _ in
            func line(_ data: String, _ minute: Int) -> String {
                #"{"vin":"1HMFT000000000001","diagnostics":{"odometer":{"data":\#(data),"timestamp":"2026-11-28T00:0\#(minute):00Z"}}}"#
            }
            let text = [
                line(#"{"value":1,"unit":"kilometers"}"#, 1), line("null", 2),
                line(#"{"value":2,"unit":"kilometers"}"#, 3), line("null", 4),
            ].joined(separator: "\n")
            var summary = Importer.Summary()
            try await importer.importFile(named: "f", content: Array(text.utf8), wholeDocument: false, into: &summary)
            #expect(try await store.failures(vin: fullVIN, property: "diagnostics.odometer").count == 2)
        }
    }

    @Test func pushMessageIdsAreScopedToTheirVehicle() async throws {
        try await withImporter { importer, store, _ in
            let a =
                #"{"version":2,"message_id":"m1","vin":"1HMFT000000000001","data":{"diagnostics":{"odometer":[{"data":{"value":1,"unit":"kilometers"},"timestamp":"2026-11-28T00:00:00Z"}]}}}"#
            let b =
                #"{"version":2,"message_id":"m1","vin":"1HMFT000000000002","data":{"diagnostics":{"odometer":[{"data":{"value":2,"unit":"kilometers"},"timestamp":"2026-11-28T00:00:00Z"}]}}}"#
            let noData = #"{"version":2,"message_id":"m3","vin":"1HMFT000000000002","data":null}"#
            var summary = Importer.Summary()
            try await importer.importFile(
                named: "f", content: Array([a, b, noData].joined(separator: "\n").utf8), wholeDocument: false,
                into: &summary)
            #expect(summary.responses == 2 && summary.duplicates == 0)
            #expect(summary.rejected.map(\.reason) == ["a push message without a \"data\" object"])
            #expect(try await store.summary().vehiclesWithSamples == 2)
        }
    }
}
