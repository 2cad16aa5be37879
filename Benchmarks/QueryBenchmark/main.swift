// Query benchmark: how `fleet-telemetry status` and one vehicle's history cost grow with the size
// of the database. Databases are generated once, outside the timed part, and reused:
//
//   .build/release/query-benchmark generate /tmp/fleet-1m.sqlite 1000000
//   .build/release/query-benchmark generate /tmp/fleet-10m.sqlite 10000000
//   .build/release/query-benchmark run /tmp/fleet-1m.sqlite /tmp/fleet-10m.sqlite
//
// A generated database holds 10,000 vehicles polled every 5 minutes, 4 new samples per poll (what
// the emulator's fleet produces once unchanged values are deduplicated) over 20 properties, with
// `latest`, `vehicles` and `schedule` filled as the daemon fills them. The 1M database holds
// about 2 hours of history, the 10M one about 20 hours.
//
// `run` reports, per database (median of repeated runs, after one warm-up; CPU and wall time):
//   - status: `TelemetryStore.status()` over every vehicle, as the `status` command runs it;
//   - history, last 24 h: one property of one vehicle (all of its history in both databases);
//   - history, 1 h window: one property of one vehicle over a fixed hour (the same rows in both),
//     which shows what the size of the database alone costs.

import FleetModel
import FleetStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

let vehicleCount = 10_000
let properties = (0..<20).map { index -> String in
    [
        "charging.battery_level", "charging.estimated_range", "diagnostics.odometer", "diagnostics.speed",
        "vehicle_location.coordinates.latitude", "vehicle_location.coordinates.longitude", "vehicle_location.heading",
        "charging.charging_rate", "charging.status", "doors.locks_state",
    ][index % 10] + (index < 10 ? "" : "_\(index)")
}
let pollInterval: Int64 = 300_000
let start = Timestamp(iso8601: "2026-11-01T00:00:00Z")!

func vin(_ index: Int) -> String { String(format: "1HMBENCH%09d", index) }

func usage() -> Never {
    print("usage: query-benchmark generate DB SAMPLES | query-benchmark run DB...")
    exit(64)
}

func generate(path: String, samples: Int) async throws {
    guard !FileManager.default.fileExists(atPath: path) else {
        print("\(path) exists; remove it first")
        exit(73)
    }
    // Every vehicle's `latest` rows stay in memory: a poll is compared with them without reading.
    let store = try TelemetryStore(path: path, latestCacheVehicles: vehicleCount)
    let vins = (0..<vehicleCount).map { VIN(vin($0))! }
    let fleet = vins.map { FleetVehicle(vin: $0, brand: "sandbox", status: .approved) }
    _ = try await store.recordClearance(fleet, at: start, detector: NoEvents())
    let polls = max(1, samples / (vehicleCount * 4))
    let clock = ContinuousClock.now
    var written = 0
    for poll in 0..<polls {
        // One poll of the whole fleet per transaction, written as `import` writes its documents.
        let batch = vins.enumerated().map { vehicle, vin -> PollWrite in
            let time = start.adding(milliseconds: Int64(poll) * pollInterval + Int64(vehicle) * 29)
            let samples = (0..<4).map { k in
                Sample(
                    vin: vin, property: properties[(poll * 4 + k + vehicle) % properties.count],
                    value: .number(Double((poll + vehicle + k) % 100)), unit: "percent", observedAt: time)
            }
            var record = PollRecord(
                vin: vin, requestedAt: time, receivedAt: time.adding(milliseconds: 500),
                httpStatus: 200, latencyMilliseconds: 0, brand: "sandbox")
            record.imported = true
            return PollWrite(poll: record, samples: samples)
        }
        for outcome in try await store.record(batch: batch, detector: NoEvents()) {
            switch outcome {
            case .written(let result): written += result.samplesWritten
            case .failed(let error): throw error
            case .duplicate: break
            }
        }
        if poll % 10 == 0, isatty(STDERR_FILENO) == 1 {
            FileHandle.standardError.write(Data("\rgenerating: \(written) samples".utf8))
        }
    }
    let end = start.adding(milliseconds: Int64(polls) * pollInterval)
    try await store.saveSchedule(
        vins.map {
            ScheduleRow(
                vin: $0, nextDueAt: end, health: "ok", reason: nil, consecutiveFailures: 0, activity: nil,
                pollsToday: 0, day: 0, updatedAt: end)
        })
    _ = try await store.checkpoint()
    let seconds = (ContinuousClock.now - clock).components.seconds
    let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
    if isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    print(
        "generated \(path): \(written) samples of \(vehicleCount) vehicles (\(polls) polls each, \(start.iso8601) to \(end.iso8601)), \(size >> 20) MiB, in \(seconds) s"
    )
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Median wall and CPU milliseconds of `repeats` runs after one warm-up.
func time(repeats: Int, _ body: () async throws -> Int) async rethrows -> (wall: Double, cpu: Double, rows: Int) {
    var rows = try await body()
    var walls: [Double] = []
    var cpus: [Double] = []
    for _ in 0..<repeats {
        let cpu = cpuSeconds()
        let started = ContinuousClock.now
        rows = try await body()
        let elapsed = ContinuousClock.now - started
        walls.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
        cpus.append((cpuSeconds() - cpu) * 1e3)
    }
    return (walls.sorted()[repeats / 2], cpus.sorted()[repeats / 2], rows)
}

func run(paths: [String]) async throws {
    print(
        "database                        samples        MiB   status ms (CPU)   history 24 h ms (p99)   history 1 h ms (p99)"
    )
    for path in paths {
        let store = try TelemetryStore(path: path)
        let samples = Int64(try await store.summary().samples)
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        let status = try await time(repeats: 5) { try await store.status().count }
        precondition(status.rows == vehicleCount, "status lists every vehicle")
        // One property of one vehicle: the newest 24 h, and the first hour of history.
        // The newest observation of any vehicle: `max(observed_at)` of `samples`.
        let end = try await store.status().compactMap(\.lastSeen).max() ?? Timestamp(millisecondsSince1970: 0)
        var seed: UInt64 = 42
        var historyDay: [Double] = [], historyHour: [Double] = []
        var dayRows = 0, hourRows = 0
        for _ in 0..<25 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let vehicle = VIN(vin(Int(seed >> 33) % vehicleCount))!
            let day = try await time(repeats: 3) {
                try await store.history(
                    vehicle: vehicle, property: "charging.battery_level", since: end.adding(milliseconds: -86_400_000),
                    until: end)
            }
            let hour = try await time(repeats: 3) {
                try await store.history(
                    vehicle: vehicle, property: "charging.battery_level", since: start,
                    until: start.adding(milliseconds: 3_600_000))
            }
            historyDay.append(day.wall); historyHour.append(hour.wall)
            dayRows += day.rows; hourRows += hour.rows
        }
        historyDay.sort(); historyHour.sort()
        let name = (path as NSString).lastPathComponent.padding(toLength: 28, withPad: " ", startingAt: 0)
        print(
            name
                + String(
                    format: " %10lld %10lld %9.1f (%5.1f) %13.3f (%5.3f) %14.3f (%5.3f)", samples, size >> 20,
                    status.wall, status.cpu, historyDay[12], historyDay[24], historyHour[12], historyHour[24]))
        print(
            "    status: \(status.rows) vehicles; history: \(dayRows / 25) rows per 24 h query, \(hourRows / 25) per 1 h query (medians over 25 vehicles; status CPU ms in parentheses)"
        )
    }
}

extension TelemetryStore {
    func history(vehicle: VIN, property: String, since: Timestamp, until: Timestamp) throws -> Int {
        try history(vin: vehicle, property: property, since: since, until: until).count
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "generate":
    guard arguments.count == 3, let samples = Int(arguments[2].replacingOccurrences(of: "_", with: "")) else { usage() }
    try await generate(path: arguments[1], samples: samples)
case "run":
    guard arguments.count >= 2 else { usage() }
    try await run(paths: Array(arguments.dropFirst()))
default:
    usage()
}
