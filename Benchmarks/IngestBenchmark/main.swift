// Ingest benchmark: how close normalizing and storing Auto API responses gets to what SQLite
// itself can do with the same rows, measured in one run so that the ratios hold on a noisy machine.
//
//   swift build -c release --product ingest-benchmark && .build/release/ingest-benchmark [payloads]
//
// Whole-process form: `.build/release/ingest-benchmark 20000 --jsonl /tmp/fleet.jsonl` writes the
// same payloads as JSON lines; then time `fleet-telemetry import` of that file (docs/benchmarks.md).
//
// Figures (payloads/s, samples/s, CPU µs per payload; CPU is user + system time of the process):
//   1. ours, one transaction per poll (the daemon): bytes → JSON → normalizer → TelemetryStore
//      (samples, latest, rule state, events, vehicles and polls rows, the raw-response archive),
//      awaited on the store actor per payload as the polling pipeline does;
//   2. ours, batched (`fleet-telemetry import`): the same, 256 documents per transaction, no archive;
//   3. the ceiling, in the same run: the same sample rows inserted straight through the SQLite C
//      API into the same `samples` table with one prepared statement, once with one transaction
//      per payload and once per batch of 256;
//   4. the dedup path: each vehicle's newest response again (an unchanged re-poll: no new rows);
//   5. one full response (the `vehicle_data_autoapi13_full.json` fixture, 8 KB, timestamps moving
//      on at each poll so that every value is new) from bytes to committed rows, per poll.

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
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
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
    let figure = Figure(payloadsPerSecond: Double(payloads) / wall, cpuMicrosecondsPerPayload: used / Double(payloads) * 1e6)
    print(String(format: "%-46@ %7.0f payloads/s %8.0f samples/s %7.1f µs CPU/payload", label as NSString,
                 figure.payloadsPerSecond, Double(samples) / wall, figure.cpuMicrosecondsPerPayload))
    return figure
}

let count = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 20_000
// `--jsonl PATH`: only write the payloads as JSON lines (for timing `fleet-telemetry import`).
let jsonlPath = CommandLine.arguments.firstIndex(of: "--jsonl").flatMap { CommandLine.arguments.indices.contains($0 + 1) ? CommandLine.arguments[$0 + 1] : nil }
let batchSize = 256
let vehicles = 100
let directory = NSTemporaryDirectory() + "ingest-benchmark-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }

// Realistic payloads: the emulator's simulation of 100 vehicles driving, parking and charging, a
// response every 5 simulated minutes, rendered as Auto API JSON bytes.
print("ingest benchmark: \(count) Auto API responses of \(vehicles) simulated vehicles")
let start = Timestamp(iso8601: "2026-11-28T00:00:00Z")!
var simulations = (0..<vehicles).map { VehicleSimulation(vin: EmulatorConfiguration.vin(index: $0 + 1), seed: UInt64($0 + 1), start: start) }
var generated: [(vin: VIN, bytes: [UInt8], receivedAt: Timestamp)] = []
generated.reserveCapacity(count)
for index in 0..<count {
    let vehicle = index % vehicles
    let time = start.adding(milliseconds: Int64(index / vehicles) * 300_000)
    let snapshot = simulations[vehicle].snapshot(at: time)
    let json = VehicleDataRenderer.render(snapshot, shape: .autoAPI, requestID: "r")
    generated.append((snapshot.vin, Array(json.serialized.utf8), time.adding(milliseconds: 800)))
}
let bodies = generated
if let jsonlPath {
    var file = [UInt8]()
    for body in bodies { file += body.bytes; file.append(0x0A) }
    try Data(file).write(to: URL(fileURLWithPath: jsonlPath))
    print("wrote \(bodies.count) responses (\(file.count >> 20) MiB) to \(jsonlPath)")
    exit(0)
}
let normalizer = Normalizer()
let normalized = try bodies.map { try normalizer.normalize(body: $0.bytes, vin: $0.vin, receivedAt: $0.receivedAt) }
let sampleCount = normalized.reduce(0) { $0 + $1.samples.count }
print("average response \(bodies.reduce(0) { $0 + $1.bytes.count } / count) bytes, \(sampleCount / count) samples; batches of \(batchSize)")
print("")

func poll(_ index: Int, archive: Bool) -> PollRecord {
    let body = bodies[index]
    var record = PollRecord(vin: body.vin, requestedAt: body.receivedAt.adding(milliseconds: -200), receivedAt: body.receivedAt, httpStatus: 200, latencyMilliseconds: 200)
    if archive { record.rawBody = body.bytes }
    return record
}

// 1. Ours, one transaction per poll.
let rules = EventRules()
let perPollStore = try TelemetryStore(path: directory + "/per-poll.sqlite")
var stored = 0
let oursPerPoll = try await measure("ours, a transaction per poll (daemon)", payloads: count, samples: sampleCount) {
    for index in bodies.indices {
        let payload = try normalizer.normalize(body: bodies[index].bytes, vin: bodies[index].vin, receivedAt: bodies[index].receivedAt)
        stored += try await perPollStore.record(poll(index, archive: true), samples: payload.samples, detector: rules).samplesWritten
    }
}
let parse = try await measure("  of which parse + normalize", payloads: count, samples: sampleCount) {
    for body in bodies { _ = try normalizer.normalize(body: body.bytes, vin: body.vin, receivedAt: body.receivedAt) }
}

// 2. Ours, batched.
let batchedStore = try TelemetryStore(path: directory + "/batched.sqlite")
let oursBatched = try await measure("ours, \(batchSize) per transaction (import)", payloads: count, samples: sampleCount) {
    var batch: [PollWrite] = []
    for index in bodies.indices {
        let payload = try normalizer.normalize(body: bodies[index].bytes, vin: bodies[index].vin, receivedAt: bodies[index].receivedAt)
        batch.append(PollWrite(poll: poll(index, archive: false), samples: payload.samples))
        if batch.count == batchSize || index == bodies.count - 1 {
            _ = try await batchedStore.record(batch: batch, detector: rules)
            batch.removeAll(keepingCapacity: true)
        }
    }
}

// 3. The ceiling: the same rows, one prepared INSERT.
func ceiling(_ label: String, file: String, payloadsPerTransaction: Int) async throws -> Figure {
    do { _ = try TelemetryStore(path: directory + "/" + file) }  // the same schema
    let connection = try Connection(path: directory + "/" + file)
    let insert = try connection.cachedStatement("""
        INSERT OR IGNORE INTO samples (vin, property, instance, observed_at, value_num, value_text, unit, received_at, source_unit)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        """)
    return try await measure(label, payloads: count, samples: sampleCount) {
        var index = 0
        while index < normalized.count {
            let end = min(index + payloadsPerTransaction, normalized.count)
            try connection.transaction {
                for (payload, body) in zip(normalized[index..<end], bodies[index..<end]) {
                    let received = SQLiteValue.integer(body.receivedAt.millisecondsSince1970)
                    for sample in payload.samples {
                        try insert.run([
                            .text(sample.vin.rawValue), .text(sample.property), .text(sample.instance), .integer(sample.observedAt.millisecondsSince1970),
                            sample.value.number.map(SQLiteValue.real) ?? .null, sample.value.text.map(SQLiteValue.text) ?? .null,
                            sample.unit.map(SQLiteValue.text) ?? .null, received, sample.sourceUnit.map(SQLiteValue.text) ?? .null,
                        ])
                    }
                }
            }
            index = end
        }
    }
}
let ceilingPerPoll = try await ceiling("ceiling, a transaction per payload (C API)", file: "ceiling-1.sqlite", payloadsPerTransaction: 1)
let ceilingBatched = try await ceiling("ceiling, \(batchSize) per transaction (C API)", file: "ceiling-n.sqlite", payloadsPerTransaction: batchSize)

// 4. Dedup path: each vehicle's newest response again, as an unchanged re-poll returns it.
let newest = Dictionary(bodies.indices.map { (bodies[$0].vin, $0) }, uniquingKeysWith: max).values.sorted()
let dedup = try await measure("unchanged re-poll (dedup), per poll", payloads: count, samples: sampleCount) {
    for round in 0..<(count / newest.count) {
        for index in newest {
            let body = bodies[index]
            let received = body.receivedAt.adding(milliseconds: Int64(round + 1) * 60_000)
            let payload = try normalizer.normalize(body: body.bytes, vin: body.vin, receivedAt: received)
            let written = try await perPollStore.record(PollRecord(vin: body.vin, requestedAt: received, receivedAt: received, httpStatus: 200, latencyMilliseconds: 200), samples: payload.samples, detector: rules)
            precondition(written.samplesWritten == 0, "an unchanged re-poll writes no sample")
        }
    }
}

// 5. One full response, every value new.
let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Tests/Fixtures/high-mobility/vehicle_data_autoapi13_full.json")
let fullTemplate = try JSONParser.parse(Array(try Data(contentsOf: fixture)))
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
let fullCount = max(count / 4, 100)
let fullVIN = VIN(fullTemplate["vin"]?.stringValue ?? "")!
let fullBodies = (0..<fullCount).map { Array(shifted(fullTemplate, by: Int64($0) * 60_000).serialized.utf8) }
let fullSamples = try normalizer.normalize(body: fullBodies[0], vin: fullVIN, receivedAt: start).samples.count
let fullStore = try TelemetryStore(path: directory + "/full.sqlite")
let full = try await measure("full response (\(fullSamples) samples, \(fullBodies[0].count / 1024) KB), per poll", payloads: fullCount, samples: fullCount * fullSamples) {
    for (index, body) in fullBodies.enumerated() {
        let received = start.adding(milliseconds: Int64(index) * 60_000 + 1_000)
        let payload = try normalizer.normalize(body: body, vin: fullVIN, receivedAt: received)
        var record = PollRecord(vin: fullVIN, requestedAt: received, receivedAt: received, httpStatus: 200, latencyMilliseconds: 100)
        record.rawBody = body
        try await fullStore.record(record, samples: payload.samples, detector: rules)
    }
}

print("")
print(String(format: "ours / ceiling, a transaction per poll: %3.0f %%  (CPU per payload %.0f µs / %.0f µs; parse + normalize %.0f µs)",
             oursPerPoll.payloadsPerSecond / ceilingPerPoll.payloadsPerSecond * 100, oursPerPoll.cpuMicrosecondsPerPayload, ceilingPerPoll.cpuMicrosecondsPerPayload, parse.cpuMicrosecondsPerPayload))
print(String(format: "ours / ceiling, %d per transaction:    %3.0f %%  (CPU per payload %.0f µs / %.0f µs)", batchSize,
             oursBatched.payloadsPerSecond / ceilingBatched.payloadsPerSecond * 100, oursBatched.cpuMicrosecondsPerPayload, ceilingBatched.cpuMicrosecondsPerPayload))
print(String(format: "dedup re-poll: %.0f µs CPU; full response: %.0f µs CPU from bytes to committed rows (target < 200 µs)", dedup.cpuMicrosecondsPerPayload, full.cpuMicrosecondsPerPayload))
print("\(stored) new sample rows stored by the per-poll run")
