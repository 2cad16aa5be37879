// Ingest benchmark: how close normalizing and storing Auto API responses gets to what SQLite
// itself can do with the same rows. Prints payloads/s, samples/s and CPU µs per payload for
//   1. ours: bytes → JSON → normalizer → TelemetryStore.record (samples, latest, events, poll row,
//      one transaction per payload, as the daemon does);
//   2. the ceiling, in the same run: the same sample rows inserted straight through the SQLite C
//      API into the same `samples` table with one prepared statement, one transaction per payload;
//   3. the dedup path: the same payloads again (an unchanged re-poll: no new rows).
//
//   swift run -c release ingest-benchmark [payloads, default 20000]

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

func measure(_ label: String, payloads: Int, samples: Int, _ body: () async throws -> Void) async rethrows -> Double {
    let cpu = cpuSeconds()
    let start = ContinuousClock.now
    try await body()
    let wall = (ContinuousClock.now - start).seconds
    let used = cpuSeconds() - cpu
    print(String(format: "%-34@ %8.0f payloads/s  %10.0f samples/s  %7.1f µs CPU/payload", label as NSString,
                 Double(payloads) / wall, Double(samples) / wall, used / Double(payloads) * 1e6))
    return Double(payloads) / wall
}

let count = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 20_000
let vehicles = 100
let directory = NSTemporaryDirectory() + "ingest-benchmark-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }

// Realistic payloads: the emulator's simulation of 100 vehicles driving and charging, a response
// every 5 simulated minutes, rendered as Auto API JSON bytes.
print("ingest benchmark: \(count) Auto API responses of \(vehicles) simulated vehicles")
let start = Timestamp(iso8601: "2026-11-28T00:00:00Z")!
var simulations = (0..<vehicles).map { VehicleSimulation(vin: EmulatorConfiguration.vin(index: $0 + 1), seed: UInt64($0 + 1), start: start) }
var bodies: [(VIN, [UInt8])] = []
bodies.reserveCapacity(count)
let encoder = JSONEncoder()
for index in 0..<count {
    let vehicle = index % vehicles
    let time = start.adding(milliseconds: Int64(index / vehicles) * 300_000)
    let snapshot = simulations[vehicle].snapshot(at: time)
    let json = VehicleDataRenderer.render(snapshot, shape: .autoAPI, requestID: "r")
    bodies.append((snapshot.vin, Array(try encoder.encode(json))))
}
let averageBytes = bodies.reduce(0) { $0 + $1.1.count } / bodies.count
let normalizer = Normalizer()
let received = start.adding(milliseconds: 1)
let normalized = try bodies.map { try normalizer.normalize(body: $0.1, vin: $0.0, receivedAt: received) }
let sampleCount = normalized.reduce(0) { $0 + $1.samples.count }
print("average response \(averageBytes) bytes, \(sampleCount / count) samples")

if ProcessInfo.processInfo.environment["INGEST_ONLY_STORE"] != nil {
    let onlyStore = try TelemetryStore(path: directory + "/only.sqlite")
    let items = bodies.enumerated().map { ($0.element.0, normalized[$0.offset].samples) }
    _ = try await measure("store only, no actor hop", payloads: count, samples: sampleCount) {
        try await onlyStore.recordAll(items, at: received, rules: EventRules())
    }
    exit(0)
}
if ProcessInfo.processInfo.environment["INGEST_ONLY_CEILING"] != nil {
    let c = try Connection(path: directory + "/c.sqlite")
    do { _ = try TelemetryStore(path: directory + "/c.sqlite") }
    let insert = try c.cachedStatement("""
        INSERT OR IGNORE INTO samples (vin, property, instance, observed_at, value_num, value_text, unit, received_at, source_unit)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        """)
    _ = try await measure("ceiling", payloads: count, samples: sampleCount) {
        for payload in normalized {
            try c.transaction {
                for sample in payload.samples {
                    try insert.run([
                        .text(sample.vin.rawValue), .text(sample.property), .text(sample.instance), .integer(sample.observedAt.millisecondsSince1970),
                        sample.value.number.map(SQLiteValue.real) ?? .null, sample.value.text.map(SQLiteValue.text) ?? .null,
                        sample.unit.map(SQLiteValue.text) ?? .null, .integer(received.millisecondsSince1970), sample.sourceUnit.map(SQLiteValue.text) ?? .null,
                    ])
                }
            }
        }
    }
    exit(0)
}
// 1. Ours.
let store = try TelemetryStore(path: directory + "/ours.sqlite")
let rules = EventRules()
var stored = 0
let ours = try await measure("ours (parse+normalize+store)", payloads: count, samples: sampleCount) {
    for (vin, body) in bodies {
        let payload = try normalizer.normalize(body: body, vin: vin, receivedAt: received)
        let result = try await store.record(PollRecord(vin: vin, requestedAt: received, receivedAt: received, httpStatus: 200, latencyMilliseconds: 1), samples: payload.samples, detector: rules)
        stored += result.samplesWritten
    }
}
let store2 = try TelemetryStore(path: directory + "/ours2.sqlite")
_ = try await measure("  store only (pre-normalized)", payloads: count, samples: sampleCount) {
    for (index, (vin, _)) in bodies.enumerated() {
        try await store2.record(PollRecord(vin: vin, requestedAt: received, receivedAt: received, httpStatus: 200, latencyMilliseconds: 1), samples: normalized[index].samples, detector: rules)
    }
}
_ = try await measure("  of which parse+normalize", payloads: count, samples: sampleCount) {
    for (vin, body) in bodies { _ = try normalizer.normalize(body: body, vin: vin, receivedAt: received) }
}

// 2. The ceiling: the same rows, one prepared INSERT, one transaction per payload.
let ceilingConnection = try Connection(path: directory + "/ceiling.sqlite")
do { _ = try TelemetryStore(path: directory + "/ceiling.sqlite") }  // the same schema
let insert = try ceilingConnection.cachedStatement("""
    INSERT OR IGNORE INTO samples (vin, property, instance, observed_at, value_num, value_text, unit, received_at, source_unit)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
    """)
let ceiling = try await measure("ceiling (C API, same rows)", payloads: count, samples: sampleCount) {
    for payload in normalized {
        try ceilingConnection.transaction {
            for sample in payload.samples {
                try insert.run([
                    .text(sample.vin.rawValue), .text(sample.property), .text(sample.instance), .integer(sample.observedAt.millisecondsSince1970),
                    sample.value.number.map(SQLiteValue.real) ?? .null, sample.value.text.map(SQLiteValue.text) ?? .null,
                    sample.unit.map(SQLiteValue.text) ?? .null, .integer(received.millisecondsSince1970), sample.sourceUnit.map(SQLiteValue.text) ?? .null,
                ])
            }
        }
    }
}

// 3. Dedup path: the same payloads again.
_ = try await measure("unchanged re-poll (dedup)", payloads: count, samples: sampleCount) {
    for (vin, body) in bodies {
        let payload = try normalizer.normalize(body: body, vin: vin, receivedAt: received)
        try await store.record(PollRecord(vin: vin, requestedAt: received, receivedAt: received, httpStatus: 200, latencyMilliseconds: 1), samples: payload.samples, detector: rules)
    }
}
print(String(format: "ours / ceiling: %.0f %% (%d new sample rows stored)", ours / ceiling * 100, stored))

extension TelemetryStore {
    func recordAll(_ items: [(VIN, [Sample])], at received: Timestamp, rules: EventRules) throws {
        for (vin, samples) in items {
            try record(PollRecord(vin: vin, requestedAt: received, receivedAt: received, httpStatus: 200, latencyMilliseconds: 1), samples: samples, detector: rules)
        }
    }
}
let store3 = try TelemetryStore(path: directory + "/ours3.sqlite")
let items = bodies.enumerated().map { ($0.element.0, normalized[$0.offset].samples) }
_ = try await measure("store only, no actor hop", payloads: count, samples: sampleCount) {
    try await store3.recordAll(items, at: received, rules: rules)
}
