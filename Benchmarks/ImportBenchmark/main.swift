import FleetModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// import-benchmark [vehicles (1000)] [responses per vehicle (20)]
//
// Issue 19's import target: a stream of Auto API responses where most values change (56
// properties, ~70 % of them observed anew with a new value in each response, 1,000 VINs) imported
// by `fleet-telemetry import` (the whole process: read, parse, normalize, store through the one
// ingestion path, 256 documents per transaction) and, in the same run on the same file, by the
// reference in Benchmarks/Reference/import_reference.py (json + sqlite3, a transaction per
// response, INSERT OR IGNORE into a wide samples table and an upsert into latest). Both are timed
// as child processes, wall clock and CPU (user + system); each runs 3 times into a fresh file.
//
// Needs the release fleet-telemetry beside this binary:
//   swift build -c release --product fleet-telemetry && swift run -c release import-benchmark

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count <= 2, let vehicles = Int(arguments.first ?? "1000"), vehicles >= 1,
    let perVehicle = Int(arguments.dropFirst().first ?? "20"), perVehicle >= 2
else {
    FileHandle.standardError.write(
        Data("usage: import-benchmark [vehicles ≥ 1 (1000)] [responses per vehicle ≥ 2 (20)]\n".utf8))
    exit(64)
}
let binaryDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    .deletingLastPathComponent()
let fleetTelemetry = binaryDirectory.appendingPathComponent("fleet-telemetry").path
let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Reference/import_reference.py").path
guard FileManager.default.isExecutableFile(atPath: fleetTelemetry) else {
    FileHandle.standardError.write(
        Data(
            "import-benchmark: no \(fleetTelemetry); build it: swift build -c release --product fleet-telemetry\n".utf8)
    )
    exit(1)
}

/// One property of the stream: where it is, and how its value moves.
struct Property {
    enum Kind { case fraction, measured(String), text([String]), plain }
    var capability: String
    var name: String
    var kind: Kind
}

/// 56 properties: the ones the daemon knows (with unit conversion) and others it stores as they come.
let properties: [Property] = {
    var list: [Property] = [
        .init(capability: "charging", name: "battery_level", kind: .fraction),
        .init(capability: "charging", name: "charge_limit", kind: .fraction),
        .init(capability: "charging", name: "estimated_range", kind: .measured("kilometers")),
        .init(capability: "charging", name: "charging_rate", kind: .measured("kilowatts")),
        .init(capability: "charging", name: "battery_temperature", kind: .measured("celsius")),
        .init(capability: "charging", name: "status", kind: .text(["charging", "not_charging", "charging_complete"])),
        .init(capability: "charging", name: "plugged_in", kind: .text(["plugged_in", "disconnected"])),
        .init(capability: "diagnostics", name: "odometer", kind: .measured("kilometers")),
        .init(capability: "diagnostics", name: "speed", kind: .measured("kilometers_per_hour")),
        .init(capability: "diagnostics", name: "fuel_level", kind: .fraction),
        .init(capability: "diagnostics", name: "engine_rpm", kind: .measured("revolutions_per_minute")),
        .init(capability: "diagnostics", name: "battery_voltage", kind: .measured("volts")),
        .init(capability: "diagnostics", name: "engine_coolant_temperature", kind: .measured("celsius")),
        .init(capability: "diagnostics", name: "engine_oil_temperature", kind: .measured("celsius")),
        .init(capability: "vehicle_location", name: "altitude", kind: .measured("meters")),
        .init(capability: "vehicle_location", name: "heading", kind: .measured("degrees")),
        .init(capability: "vehicle_location", name: "gps_signal_strength", kind: .fraction),
        .init(capability: "climate", name: "inside_temperature", kind: .measured("celsius")),
        .init(capability: "climate", name: "outside_temperature", kind: .measured("celsius")),
        .init(capability: "climate", name: "driver_temperature_setting", kind: .measured("celsius")),
        .init(capability: "ignition", name: "state", kind: .text(["lock", "off", "accessory", "on"])),
        .init(capability: "doors", name: "locks_state", kind: .text(["locked", "unlocked"])),
    ]
    for n in 1...(56 - list.count) {
        list.append(.init(capability: "telematics", name: "sensor_\(n)", kind: .plain))
    }
    return list
}()

nonisolated(unsafe) var random = SplitMix64(seed: 19)
/// A pseudo-random number in [0, 1).
func unit() -> Double { Double(random.next() % 1_000_000) / 1_000_000 }

/// The stream as JSON lines, in time order: each vehicle reports every 5 minutes; in each response
/// ~70 % of the properties are observed anew with a new value, the others keep value and time.
let start = Timestamp(iso8601: "2026-11-28T00:00:00Z")!
var lines: [UInt8] = []
var state = Array(
    repeating: Array(repeating: (value: JSONValue.null, time: start), count: properties.count),
    count: vehicles)
for round in 0..<perVehicle {
    let time = start.adding(milliseconds: Int64(round) * 300_000)
    for vehicle in 0..<vehicles {
        var capabilities: [String: [(key: String, value: JSONValue)]] = [:]
        for (index, property) in properties.enumerated() {
            if round == 0 || unit() < 0.7 {
                let value: JSONValue
                switch property.kind {
                case .fraction: value = .number((unit() * 1000).rounded() / 1000)
                case .measured(let name):
                    value = .object(
                        JSONObject(members: [
                            (key: "unit", value: .string(name)),
                            (key: "value", value: .number((unit() * 100_000).rounded() / 10)),
                        ]))
                case .text(let values): value = .string(values[Int(random.next() % UInt64(values.count))])
                case .plain: value = .number((unit() * 10_000).rounded() / 100)
                }
                state[vehicle][index] = (value, time)
            }
            let entry = JSONValue.object(
                JSONObject(members: [
                    (key: "data", value: state[vehicle][index].value),
                    (key: "timestamp", value: .string(state[vehicle][index].time.iso8601)),
                ]))
            capabilities[property.capability, default: []].append((key: property.name, value: entry))
        }
        var members: [(key: String, value: JSONValue)] = [
            (key: "vin", value: .string(String(format: "1HMBB%012d", vehicle + 1))),
            (key: "brand", value: .string("sandbox")),
        ]
        for (name, fields) in capabilities.sorted(by: { $0.key < $1.key }) {
            members.append((key: name, value: .object(JSONObject(members: fields))))
        }
        lines += Array(JSONValue.object(JSONObject(members: members)).serialized.utf8)
        lines.append(0x0A)
    }
}
let directory = NSTemporaryDirectory() + "import-benchmark-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
// IMPORT_BENCHMARK_KEEP=1 keeps the stream and the databases (for a profiler), and says where.
let keep = ProcessInfo.processInfo.environment["IMPORT_BENCHMARK_KEEP"] != nil
defer { if keep { print("kept \(directory)") } else { try? FileManager.default.removeItem(atPath: directory) } }
let stream = directory + "/stream.jsonl"
try Data(lines).write(to: URL(fileURLWithPath: stream))
let responses = vehicles * perVehicle
print(
    "import benchmark: \(responses) responses of \(vehicles) vehicles, \(properties.count) properties, "
        + "~70 % observed anew per response (\(lines.count >> 20) MiB)")

/// Wall and CPU seconds of a child process run to its end; exits when it fails.
func timed(_ executable: String, _ arguments: [String]) throws -> (wall: Double, cpu: Double) {
    func childrenCPU() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    let cpu = childrenCPU()
    let began = ContinuousClock.now
    try process.run()
    process.waitUntilExit()
    let took = ContinuousClock.now - began
    guard process.terminationStatus == 0 else {
        FileHandle.standardError.write(Data("import-benchmark: \(executable) \(arguments) failed\n".utf8))
        exit(1)
    }
    return (Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18, childrenCPU() - cpu)
}

var ours: [(wall: Double, cpu: Double)] = []
var python: [(wall: Double, cpu: Double)] = []
for run in 0..<3 {
    ours.append(try timed(fleetTelemetry, ["import", stream, "--database", directory + "/ours-\(run).sqlite"]))
    python.append(try timed("/usr/bin/python3", [reference, stream, directory + "/python-\(run).sqlite"]))
}
func perResponse(_ seconds: Double) -> Double { seconds / Double(responses) * 1e6 }
func row(_ label: String, _ figures: [(wall: Double, cpu: Double)]) {
    let walls = figures.map { perResponse($0.wall) }.sorted()
    let cpus = figures.map { perResponse($0.cpu) }.sorted()
    print(
        label.padding(toLength: 38, withPad: " ", startingAt: 0)
            + String(
                format: "%7.0f µs wall per response (%.0f–%.0f), %7.0f µs CPU", walls[1], walls[0], walls[2], cpus[1]))
}
row("fleet-telemetry import", ours)
row("Python reference (json + sqlite3)", python)
let ratios = zip(ours, python).map { $1.wall / $0.wall }.sorted()
print(
    String(
        format: "ours is %.1f× the reference's speed (wall; %.1f–%.1f×)          target ≥ 5×", ratios[1], ratios[0],
        ratios[2]))
