// Ingest benchmark: how close normalizing and storing Auto API responses gets to what SQLite
// itself can do with the same rows, measured in one run so that the ratios hold on a noisy machine.
//
//   swift build -c release --product ingest-benchmark && .build/release/ingest-benchmark [PAYLOADS] [--only parse|per-poll|batched|dedup] [--jsonl PATH]
//
// Whole-process form: `.build/release/ingest-benchmark 20000 --jsonl /tmp/fleet.jsonl` writes the
// same payloads as JSON lines; then time `fleet-telemetry import` of that file (docs/benchmarks.md).
//
// Figures (payloads/s, samples/s, CPU µs per payload; CPU is user + system time of the process):
//   1. ours, one transaction per poll (the daemon): bytes → JSON → normalizer → TelemetryStore
//      (samples, latest, rule state, events, vehicles and polls rows, the raw-response archive),
//      awaited on the store per payload as the polling pipeline does, off the main thread;
//   2. ours, batched (`fleet-telemetry import`): the same, 256 documents per transaction, no archive;
//   3. the ceiling, in the same run: the rows ours wrote (read back afterwards: history, series,
//      events, polls, raw responses, vehicles; and the series updates of re-observed values, which
//      move a series' observation time without a history row) written again straight through the SQLite C API
//      into the same schema, one prepared statement per table, with one transaction per payload
//      and per batch of 256; and the narrower reference of the `samples` rows alone;
//   4. the dedup path: each vehicle's newest response again (an unchanged re-poll: no new rows);
//   5. one full response (the `vehicle_data_autoapi13_full.json` fixture, 4 KB, timestamps moving
//      on at each poll so that every value is new) from bytes to committed rows, per poll, and its
//      ceiling (the same rows through the C API); under it, its parsing alone and its `samples`
//      rows alone through the C API: the floor of the full-response target.

import FleetEmulator
import FleetEvents
import FleetModel
import FleetNormalizer
import FleetStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

struct Figure {
    var payloadsPerSecond: Double
    var cpuMicrosecondsPerPayload: Double
}

@discardableResult
func measure(_ label: String, payloads: Int, samples: Int, _ body: () async throws -> Void) async rethrows -> Figure {
    let cpu = cpuSeconds()
    let start = ContinuousClock.now
    try await body()
    let elapsed = ContinuousClock.now - start
    let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let used = cpuSeconds() - cpu
    let figure = Figure(
        payloadsPerSecond: Double(payloads) / wall, cpuMicrosecondsPerPayload: used / Double(payloads) * 1e6)
    print(
        String(
            format: "%-50@ %7.0f payloads/s %8.0f samples/s %7.1f µs CPU/payload", label as NSString,
            figure.payloadsPerSecond, Double(samples) / wall, figure.cpuMicrosecondsPerPayload))
    return figure
}

/// Shifts every `timestamp` of an Auto API document by `milliseconds`.
func shifted(_ value: JSONValue, by milliseconds: Int64) -> JSONValue {
    switch value {
    case .object(var fields):
        for (key, field) in fields {
            if key == "timestamp", let text = field.stringValue, let time = Timestamp(iso8601: text) {
                fields[key] = .string(time.adding(milliseconds: milliseconds).iso8601)
            } else {
                fields[key] = shifted(field, by: milliseconds)
            }
        }
        return .object(fields)
    case .array(let items): return .array(items.map { shifted($0, by: milliseconds) })
    default: return value
    }
}

/// The whole benchmark. Not on the main actor: the daemon's polling pipeline runs on the global
/// executor, and awaiting the store from the main thread would add two thread switches per poll.
func runBenchmark() async throws {
    let usage = "usage: ingest-benchmark [PAYLOADS] [--only parse|per-poll|batched|dedup] [--jsonl PATH]"
    func fail(_ problem: String) -> Never {
        FileHandle.standardError.write(Data("ingest-benchmark: \(problem)\n\(usage)\n".utf8))
        exit(64)
    }
    var count = 20_000
    // `--jsonl PATH`: only write the payloads as JSON lines (for timing `fleet-telemetry import`).
    var jsonlPath: String?
    // `--only PHASE`: run that phase of ours alone, for a profiler.
    var only: String?
    var arguments = CommandLine.arguments.dropFirst()[...]
    while let argument = arguments.popFirst() {
        switch argument {
        case "--jsonl":
            guard let path = arguments.popFirst() else { fail("--jsonl takes a file path") }
            jsonlPath = path
        case "--only":
            guard let phase = arguments.popFirst(), ["parse", "per-poll", "batched", "dedup"].contains(phase) else {
                fail("--only takes parse, per-poll, batched or dedup")
            }
            only = phase
        case "--help", "-h":
            print(usage)
            return
        default:
            guard let value = Int(argument), value >= 100 else {
                fail("unknown argument \(argument) (payloads: a number, at least 100)")
            }
            count = value
        }
    }
    let batchSize = 256
    let vehicles = 100
    let directory = NSTemporaryDirectory() + "ingest-benchmark-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }

    // Realistic payloads: the emulator's simulation of 100 vehicles driving, parking and charging,
    // a response every 5 simulated minutes, rendered as Auto API JSON bytes.
    print("ingest benchmark: \(count) Auto API responses of \(vehicles) simulated vehicles")
    let start = Timestamp(iso8601: "2026-11-28T00:00:00Z")!
    var simulations = (0..<vehicles).map {
        VehicleSimulation(vin: EmulatorConfiguration.vin(index: $0 + 1), seed: UInt64($0 + 1), start: start)
    }
    var bodies: [(vin: VIN, bytes: [UInt8], receivedAt: Timestamp)] = []
    bodies.reserveCapacity(count)
    for index in 0..<count {
        let vehicle = index % vehicles
        let time = start.adding(milliseconds: Int64(index / vehicles) * 300_000)
        let snapshot = simulations[vehicle].snapshot(at: time)
        let json = VehicleDataRenderer.render(snapshot, shape: .autoAPI, requestID: "r")
        bodies.append((snapshot.vin, Array(json.serialized.utf8), time.adding(milliseconds: 800)))
    }
    if let jsonlPath {
        var file = [UInt8]()
        for body in bodies { file += body.bytes; file.append(0x0A) }
        try Data(file).write(to: URL(fileURLWithPath: jsonlPath))
        print("wrote \(bodies.count) responses (\(file.count >> 20) MiB) to \(jsonlPath)")
        return
    }
    let normalizer = Normalizer()
    let sampleCount = try bodies.reduce(0) {
        $0 + (try normalizer.normalize(body: $1.bytes, vin: $1.vin, receivedAt: $1.receivedAt)).samples.count
    }
    print(
        "average response \(bodies.reduce(0) { $0 + $1.bytes.count } / count) bytes, \(sampleCount / count) samples; batches of \(batchSize)"
    )
    print("")

    func poll(_ index: Int, archive: Bool) -> PollRecord {
        let body = bodies[index]
        var record = PollRecord(
            vin: body.vin, requestedAt: body.receivedAt.adding(milliseconds: -200), receivedAt: body.receivedAt,
            httpStatus: 200, latencyMilliseconds: 200)
        if archive { record.rawBody = body.bytes }
        return record
    }

    let rules = EventRules()
    if only == "parse" {
        try await measure("only parse + normalize, 10 rounds", payloads: count * 10, samples: sampleCount * 10) {
            for _ in 0..<10 {
                for body in bodies {
                    _ = try normalizer.normalize(body: body.bytes, vin: body.vin, receivedAt: body.receivedAt)
                }
            }
        }
        return
    }
    if let only {
        let store = try TelemetryStore(path: directory + "/only.sqlite")
        let received = bodies.map(\.receivedAt)
        try await measure("only \(only)", payloads: count, samples: sampleCount) {
            var batch: [PollWrite] = []
            for round in 0..<(only == "dedup" ? 2 : 1) {
                for index in bodies.indices {
                    let receivedAt = received[index].adding(milliseconds: Int64(round) * 1_000)
                    let payload = try normalizer.normalize(
                        body: bodies[index].bytes, vin: bodies[index].vin, receivedAt: receivedAt)
                    var record = poll(index, archive: only != "batched")
                    record.receivedAt = receivedAt
                    if only == "batched" {
                        record.imported = true
                        batch.append(PollWrite(poll: record, samples: payload.samples))
                        if batch.count == batchSize {
                            _ = try await store.record(batch: batch, detector: rules);
                            batch.removeAll(keepingCapacity: true)
                        }
                    } else {
                        try await store.record(record, samples: payload.samples, detector: rules)
                    }
                }
            }
        }
        return
    }

    // 1. Ours, one transaction per poll.
    let perPollPath = directory + "/per-poll.sqlite"
    let perPollStore = try TelemetryStore(path: perPollPath)
    var stored = 0
    let oursPerPoll = try await measure("ours, a transaction per poll (daemon)", payloads: count, samples: sampleCount)
    {
        for index in bodies.indices {
            let payload = try normalizer.normalize(
                body: bodies[index].bytes, vin: bodies[index].vin, receivedAt: bodies[index].receivedAt)
            stored += try await perPollStore.record(
                poll(index, archive: true), samples: payload.samples, detector: rules
            ).samplesWritten
        }
    }
    // The same polls with the archive off: what compressing and storing each body costs.
    let unarchivedStore = try TelemetryStore(path: directory + "/unarchived.sqlite")
    let unarchived = try await measure("  the same without the raw archive", payloads: count, samples: sampleCount) {
        for index in bodies.indices {
            let payload = try normalizer.normalize(
                body: bodies[index].bytes, vin: bodies[index].vin, receivedAt: bodies[index].receivedAt)
            try await unarchivedStore.record(poll(index, archive: false), samples: payload.samples, detector: rules)
        }
    }
    let parse = try await measure("  of which parse + normalize", payloads: count, samples: sampleCount) {
        for body in bodies {
            _ = try normalizer.normalize(body: body.bytes, vin: body.vin, receivedAt: body.receivedAt)
        }
    }
    var perPollRows = try writtenRows(
        path: perPollPath, payloads: bodies.map { ($0.vin.rawValue, $0.receivedAt.millisecondsSince1970) },
        withPolls: true)
    let bodySamples = try bodies.map {
        try normalizer.normalize(body: $0.bytes, vin: $0.vin, receivedAt: $0.receivedAt).samples
    }
    try addReobservations(to: &perPollRows, samples: bodySamples, path: perPollPath)
    print(
        String(
            format: "  (%.1f history rows and %.1f re-observations without one per payload)",
            Double(perPollRows.reduce(0) { $0 + $1.samples.count }) / Double(count),
            Double(perPollRows.reduce(0) { $0 + $1.reobserved.count }) / Double(count)))

    // 2. Ours, batched.
    let batchedPath = directory + "/batched.sqlite"
    let batchedStore = try TelemetryStore(path: batchedPath)
    let oursBatched = try await measure(
        "ours, \(batchSize) per transaction (import)", payloads: count, samples: sampleCount
    ) {
        var batch: [PollWrite] = []
        for index in bodies.indices {
            let payload = try normalizer.normalize(
                body: bodies[index].bytes, vin: bodies[index].vin, receivedAt: bodies[index].receivedAt)
            var record = poll(index, archive: false)
            record.imported = true
            batch.append(PollWrite(poll: record, samples: payload.samples))
            if batch.count == batchSize || index == bodies.count - 1 {
                _ = try await batchedStore.record(batch: batch, detector: rules)
                batch.removeAll(keepingCapacity: true)
            }
        }
    }
    var batchedRows = try writtenRows(
        path: batchedPath, payloads: bodies.map { ($0.vin.rawValue, $0.receivedAt.millisecondsSince1970) },
        withPolls: false)
    try addReobservations(to: &batchedRows, samples: bodySamples, path: batchedPath)

    // 3. The ceilings: the same rows through the C API.
    func ceiling(
        _ label: String, rows: [WrittenRows], from source: String, perTransaction: Int, samplesOnly: Bool = false
    ) async throws -> Figure {
        let writer = try CeilingWriter(
            path: directory + "/ceiling-\(UUID().uuidString).sqlite", seriesFrom: source, samplesOnly: samplesOnly)
        let samples = rows.reduce(0) { $0 + $1.samples.count }
        let rows = CeilingWriter.prepare(rows)
        return try await measure(label, payloads: rows.count, samples: samples) {
            var index = 0
            while index < rows.count {
                let end = min(index + perTransaction, rows.count)
                try writer.write(rows[index..<end])
                index = end
            }
        }
    }
    let ceilingPerPoll = try await ceiling(
        "ceiling, the same rows, a transaction per payload", rows: perPollRows, from: perPollPath, perTransaction: 1)
    let ceilingBatched = try await ceiling(
        "ceiling, the same rows, \(batchSize) per transaction", rows: batchedRows, from: batchedPath,
        perTransaction: batchSize)
    let samplesPerPoll = try await ceiling(
        "  history rows alone, a transaction per payload", rows: perPollRows, from: perPollPath, perTransaction: 1,
        samplesOnly: true)
    let samplesBatched = try await ceiling(
        "  history rows alone, \(batchSize) per transaction", rows: batchedRows, from: batchedPath,
        perTransaction: batchSize,
        samplesOnly: true)

    // 4. Dedup path: each vehicle's newest response again, as an unchanged re-poll returns it.
    let newest = Dictionary(bodies.indices.map { (bodies[$0].vin, $0) }, uniquingKeysWith: max).values.sorted()
    let dedup = try await measure("unchanged re-poll (dedup), per poll", payloads: count, samples: sampleCount) {
        for round in 0..<(count / newest.count) {
            for index in newest {
                let body = bodies[index]
                let received = body.receivedAt.adding(milliseconds: Int64(round + 1) * 60_000)
                let payload = try normalizer.normalize(body: body.bytes, vin: body.vin, receivedAt: received)
                let written = try await perPollStore.record(
                    PollRecord(
                        vin: body.vin, requestedAt: received, receivedAt: received, httpStatus: 200,
                        latencyMilliseconds: 200), samples: payload.samples, detector: rules)
                precondition(written.samplesWritten == 0, "an unchanged re-poll writes no sample")
            }
        }
    }

    // 5. One full response, every value new.
    let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Tests/Fixtures/high-mobility/vehicle_data_autoapi13_full.json")
    let fullTemplate = try JSONParser.parse(Array(try Data(contentsOf: fixture)))
    let fullCount = max(count / 4, 100)
    let fullVIN = VIN(fullTemplate["vin"]?.stringValue ?? "")!
    let fullBodies = (0..<fullCount).map { Array(shifted(fullTemplate, by: Int64($0) * 60_000).serialized.utf8) }
    let fullSamples = try normalizer.normalize(body: fullBodies[0], vin: fullVIN, receivedAt: start).samples.count
    let fullPath = directory + "/full.sqlite"
    let fullStore = try TelemetryStore(path: fullPath)
    let fullReceived = (0..<fullCount).map { start.adding(milliseconds: Int64($0) * 60_000 + 1_000) }
    let full = try await measure(
        "full response (\(fullSamples) samples, \(fullBodies[0].count / 1024) KB), per poll", payloads: fullCount,
        samples: fullCount * fullSamples
    ) {
        for (index, body) in fullBodies.enumerated() {
            let payload = try normalizer.normalize(body: body, vin: fullVIN, receivedAt: fullReceived[index])
            var record = PollRecord(
                vin: fullVIN, requestedAt: fullReceived[index], receivedAt: fullReceived[index], httpStatus: 200,
                latencyMilliseconds: 100)
            record.rawBody = body
            try await fullStore.record(record, samples: payload.samples, detector: rules)
        }
    }
    var fullRows = try writtenRows(
        path: fullPath, payloads: fullReceived.map { (fullVIN.rawValue, $0.millisecondsSince1970) }, withPolls: true)
    try addReobservations(
        to: &fullRows,
        samples: try fullBodies.enumerated().map {
            try normalizer.normalize(body: $1, vin: fullVIN, receivedAt: fullReceived[$0]).samples
        }, path: fullPath)
    let fullCeiling = try await ceiling(
        "  its ceiling, the same rows, per poll", rows: fullRows, from: fullPath, perTransaction: 1)
    // The floor under the full-response target: its parsing alone, and its `samples` rows alone
    // through the C API (no `latest`, no events, no poll or raw row), a transaction per response.
    let fullParse = try await measure(
        "  its parse + normalize alone", payloads: fullCount, samples: fullCount * fullSamples
    ) {
        for (index, body) in fullBodies.enumerated() {
            _ = try normalizer.normalize(body: body, vin: fullVIN, receivedAt: fullReceived[index])
        }
    }
    let fullSamplesOnly = try await ceiling(
        "  its history rows alone, per poll", rows: fullRows, from: fullPath, perTransaction: 1, samplesOnly: true)

    print("")
    func ratio(_ ours: Figure, _ ceiling: Figure) -> Double {
        ceiling.cpuMicrosecondsPerPayload / ours.cpuMicrosecondsPerPayload * 100
    }
    // As throughput: the ceiling's CPU per payload divided by ours (100 % = as fast as the C API).
    print(
        String(
            format:
                "ours / ceiling (throughput), a transaction per poll: %3.0f %%  (%.0f µs / %.0f µs per payload; parse + normalize %.0f µs); samples alone %.0f µs",
            ratio(oursPerPoll, ceilingPerPoll), oursPerPoll.cpuMicrosecondsPerPayload,
            ceilingPerPoll.cpuMicrosecondsPerPayload, parse.cpuMicrosecondsPerPayload,
            samplesPerPoll.cpuMicrosecondsPerPayload))
    // What ours must do beyond the ceiling's writes: parsing, and compressing the body for the
    // archive. With no other cost at all, ours would take the ceiling plus these two.
    let archiveCost = oursPerPoll.cpuMicrosecondsPerPayload - unarchived.cpuMicrosecondsPerPayload
    let floor = ceilingPerPoll.cpuMicrosecondsPerPayload + parse.cpuMicrosecondsPerPayload + max(archiveCost, 0)
    print(
        String(
            format:
                "  the archive costs ours %.0f µs per poll; ceiling + parse + archive = %.0f µs: at most %.0f %% with nothing else",
            archiveCost, floor, ceilingPerPoll.cpuMicrosecondsPerPayload / floor * 100))
    print(
        String(
            format:
                "ours / ceiling (throughput), %d per transaction:    %3.0f %%  (%.0f µs / %.0f µs per payload); samples alone %.0f µs",
            batchSize,
            ratio(oursBatched, ceilingBatched), oursBatched.cpuMicrosecondsPerPayload,
            ceilingBatched.cpuMicrosecondsPerPayload, samplesBatched.cpuMicrosecondsPerPayload))
    print(
        String(
            format:
                "full response: %.0f µs CPU from bytes to committed rows (target < 200 µs); its ceiling %.0f µs (%.0f %%)",
            full.cpuMicrosecondsPerPayload, fullCeiling.cpuMicrosecondsPerPayload, ratio(full, fullCeiling)))
    print(
        String(
            format:
                "  its floor: parse + normalize %.0f µs + samples rows alone through the C API %.0f µs = %.0f µs, before `latest`, events, the poll and the raw response",
            fullParse.cpuMicrosecondsPerPayload, fullSamplesOnly.cpuMicrosecondsPerPayload,
            fullParse.cpuMicrosecondsPerPayload + fullSamplesOnly.cpuMicrosecondsPerPayload))
    print(String(format: "dedup re-poll: %.0f µs CPU", dedup.cpuMicrosecondsPerPayload))
    let ceilingSamples = perPollRows.reduce(0) { $0 + $1.samples.count }
    print("\(stored) new sample rows stored by the per-poll run; \(ceilingSamples) read back for the ceiling")
}

try await runBenchmark()
