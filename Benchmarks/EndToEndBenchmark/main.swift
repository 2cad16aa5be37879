// End-to-end benchmark: the daemon (`fleet-telemetry run`) against the emulator
// (`fleet-telemetry emulator`), two processes over loopback HTTP with keep-alive. Each process's
// CPU time is read from /proc, so the daemon's cost per poll is measured apart from the
// emulator's although they share the machine's cores.
//
//   swift build -c release --product fleet-telemetry && swift build -c release --product e2e-benchmark
//   .build/release/e2e-benchmark [SECONDS] [--only realtime|steady|saturated | --references]
//
// SECONDS per run (default 8); each scenario runs 3 times (~2 min for the three). `--only` runs
// one scenario (`steady` is the default-clock one); `--references` runs the references instead of
// the scenarios (~1.5 min). E2E_FLEET_TELEMETRY=PATH runs that fleet-telemetry binary instead of
// the one next to this benchmark (to compare two builds in one sitting).
//
// Three scenarios: a steady load (1,000 vehicles every 5 s: 200 polls/s offered) with the
// emulator's clock at real time (a realistic few new values per poll) and at its default 1440×
// (most values new at every poll), and a saturating one (3,000 vehicles every second, 16 requests
// in flight). Polls are counted in the database.
//
// References (`--references`): the HTTP layer alone (async-http-client; the same on one
// event loop with the requesting tasks on it; the daemon's `HighMobilityClient` over it)
// requesting vehicle data from the emulator in this process, with no parsing and no store: the
// floor under the daemon's CPU per poll.

import FleetEmulator
import FleetModel
import FleetStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

let usageLine = "usage: e2e-benchmark [SECONDS] [--only realtime|steady|saturated | --references]"

/// Exits with the usage on standard error (exit 64, EX_USAGE).
func usage(_ problem: String) -> Never {
    FileHandle.standardError.write(
        Data(
            ("e2e-benchmark: \(problem)\n"
                + usageLine + "\n").utf8))
    exit(64)
}
/// The command line: seconds per run, the one scenario to run, references only, no references.
func parseArguments() -> (seconds: Int, only: String?, referencesOnly: Bool) {
    var seconds = 8
    var only: String?
    var referencesOnly = false
    var arguments = CommandLine.arguments.dropFirst()[...]
    while let argument = arguments.popFirst() {
        switch argument {
        case "--only":
            guard let name = arguments.popFirst(), ["realtime", "steady", "saturated"].contains(name) else {
                usage("--only takes realtime, steady or saturated")
            }
            only = name
        case "--references": referencesOnly = true
        case "--help", "-h":
            print(usageLine)
            exit(0)
        default:
            guard let value = Int(argument), value > 0 else { usage("unknown argument \(argument)") }
            seconds = value
        }
    }
    if referencesOnly && only != nil {
        usage("--references runs the references instead of the scenarios; it does not combine with --only")
    }
    return (seconds, only, referencesOnly)
}
let (seconds, only, referencesOnly) = parseArguments()
ChildProcesses.shared.stopOnSignals()
let repeats = 3
// The fleet-telemetry next to this binary, or the one E2E_FLEET_TELEMETRY names (to compare two builds).
let binary =
    ProcessInfo.processInfo.environment["E2E_FLEET_TELEMETRY"]
    ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
        "fleet-telemetry"
    ).path
guard FileManager.default.isExecutableFile(atPath: binary) else {
    print("build fleet-telemetry first: swift build -c release --product fleet-telemetry")
    exit(69)
}
func residentMiB(pid: Int32) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kb / 1024
}

struct RunFigures {
    var pollsPerSecond: Double
    var daemonMicroseconds: Double
    var daemonShare: Double
    var residentMiB: Double
    var emulatorMicroseconds: Double
    var failed: Int64
    /// New sample rows and events per poll in the window: what each poll gave the store to write.
    var samplesPerPoll: Double
    var eventsPerPoll: Double
}

/// Starts `fleet-telemetry emulator` on an ephemeral port; returns the process and its base URL.
func startEmulator(vehicles: Int, timeScale: Int) throws -> (Process, String) {
    let emulator = Process()
    emulator.executableURL = URL(fileURLWithPath: binary)
    emulator.arguments = [
        "emulator", "--port", "0", "--vehicles", "\(vehicles)", "--time-scale", "\(timeScale)", "--log-level", "error",
    ]
    let announce = Pipe()
    emulator.standardError = announce
    emulator.standardOutput = FileHandle.nullDevice
    try emulator.run()
    ChildProcesses.shared.add(emulator)
    var announced = ""
    while !announced.contains("http://127.0.0.1:") || !announced.contains("\n") {
        let chunk = announce.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        announced += String(decoding: chunk, as: UTF8.self)
    }
    guard let line = announced.split(separator: "\n").first(where: { $0.contains("http://127.0.0.1:") }) else {
        print("the emulator did not start: \(announced)")
        exit(70)
    }
    return (
        emulator,
        String(line[line.range(of: "http://")!.lowerBound...]).split(separator: " ").first.map(String.init) ?? ""
    )
}

func run(vehicles: Int, interval: String, concurrency: Int, timeScale: Int) async throws -> RunFigures {
    let directory = NSTemporaryDirectory() + "e2e-benchmark-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    ChildProcesses.shared.add(folder: directory)
    defer { try? FileManager.default.removeItem(atPath: directory); ChildProcesses.shared.remove(folder: directory) }

    let (emulator, base) = try startEmulator(vehicles: vehicles, timeScale: timeScale)
    defer {
        if emulator.isRunning { emulator.terminate(); emulator.waitUntilExit() }; ChildProcesses.shared.remove(emulator)
    }

    let database = directory + "/telemetry.sqlite"
    let config = directory + "/config.yaml"
    let vins = (1...vehicles).map { EmulatorConfiguration.vin(index: $0).rawValue }
    try """
    api:
      base_url: \(base)
      client_id: \(EmulatorConfiguration.defaultClientID)
      client_secret:
        env: HM_SECRET
    database:
      path: \(database)
    polling:
      interval: \(interval)
      intervals: {driving: \(interval), charging: \(interval), parked: \(interval)}
      max_concurrent_requests: \(concurrency)
    fleet:
      sync: false
    log_level: error
    vehicles: [\(vins.joined(separator: ", "))]
    """.write(toFile: config, atomically: true, encoding: .utf8)

    let daemon = Process()
    daemon.executableURL = URL(fileURLWithPath: binary)
    daemon.arguments = ["run", "--config", config]
    daemon.environment = ["HM_SECRET": EmulatorConfiguration.defaultClientSecret]
    daemon.standardOutput = FileHandle.nullDevice
    daemon.standardError = FileHandle.nullDevice
    try daemon.run()
    ChildProcesses.shared.add(daemon)
    defer { if daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() }; ChildProcesses.shared.remove(daemon) }
    // Warm-up (the first due times are spread over one interval), then the measured window.
    try await Task.sleep(for: .seconds(4))
    // The store is opened beside the daemon only to read, and closed during the measured window.
    let allPolls = Timestamp(millisecondsSince1970: 0)
    let polls0: Int, firstID: Int64
    do {
        let store = try TelemetryStore(existingPath: database)
        polls0 = try await store.pollCount(since: allPolls)
        firstID = try await store.lastPollID()
    }
    let daemonCPU0 = cpuSeconds(pid: daemon.processIdentifier),
        emulatorCPU0 = cpuSeconds(pid: emulator.processIdentifier)
    let start = Date()
    try await Task.sleep(for: .seconds(seconds))
    let elapsed = Date().timeIntervalSince(start)
    let daemonCPU = cpuSeconds(pid: daemon.processIdentifier) - daemonCPU0
    let emulatorCPU = cpuSeconds(pid: emulator.processIdentifier) - emulatorCPU0
    let rss = residentMiB(pid: daemon.processIdentifier)
    let store = try TelemetryStore(existingPath: database)
    let polls = try await store.pollCount(since: allPolls) - polls0
    let byStatus = try await store.summary(since: allPolls).pollsByStatus
    let failed = Int64(byStatus.filter { $0.key != 200 }.values.reduce(0, +))
    let (samplesPerPoll, eventsPerPoll) = try await store.averageWrites(afterID: firstID)
    daemon.terminate()
    daemon.waitUntilExit()
    return RunFigures(
        pollsPerSecond: Double(polls) / elapsed, daemonMicroseconds: daemonCPU / Double(max(polls, 1)) * 1e6,
        daemonShare: daemonCPU / elapsed * 100, residentMiB: rss,
        emulatorMicroseconds: emulatorCPU / Double(max(polls, 1)) * 1e6, failed: failed,
        samplesPerPoll: samplesPerPoll, eventsPerPoll: eventsPerPoll)
}

/// Repeated runs summed up: the run with the median CPU, the range of the CPU, and the median and
/// range of the CPU divided by the emulator's. The emulator does the same work per request in
/// every run, so that ratio is the in-run reference for how fast the machine was at that moment.
struct Spread<Run> {
    var median: Run
    var cpu: ClosedRange<Double>
    var ratio: Double
    var ratios: ClosedRange<Double>

    init(_ runs: [Run], cpu: (Run) -> Double, emulator: (Run) -> Double) {
        let sorted = runs.sorted { cpu($0) < cpu($1) }
        median = sorted[sorted.count / 2]
        self.cpu = cpu(sorted.first!)...cpu(sorted.last!)
        let ratios = sorted.map { cpu($0) / max(emulator($0), 1) }.sorted()
        ratio = ratios[ratios.count / 2]
        self.ratios = ratios.first!...ratios.last!
    }
}

/// Runs a scenario `repeats` times (the machine is noisy) and prints the median, and the range of
/// the daemon's CPU per poll.
func scenario(label: String, vehicles: Int, interval: String, concurrency: Int, timeScale: Int = 1440) async throws {
    var runs: [RunFigures] = []
    for _ in 0..<repeats {
        runs.append(
            try await run(
                vehicles: vehicles, interval: interval, concurrency: concurrency,
                timeScale: timeScale))
    }
    let spread = Spread(runs, cpu: \.daemonMicroseconds, emulator: \.emulatorMicroseconds)
    let median = spread.median
    print(
        label.padding(toLength: 48, withPad: " ", startingAt: 0)
            + String(
                format:
                    "%6.0f polls/s  daemon %5.0f µs CPU/poll (runs %.0f–%.0f; %3.0f %% of a core, %3.0f MiB)  emulator %4.0f µs/poll  daemon/emulator %.2f (%.2f–%.2f)  %lld not 200;  per poll %.1f new samples, %.1f events",
                median.pollsPerSecond, median.daemonMicroseconds, spread.cpu.lowerBound, spread.cpu.upperBound,
                median.daemonShare, median.residentMiB, median.emulatorMicroseconds, spread.ratio,
                spread.ratios.lowerBound, spread.ratios.upperBound,
                runs.reduce(0) { $0 + $1.failed }, median.samplesPerPoll, median.eventsPerPoll))
}

if referencesOnly {
    print(
        "end-to-end benchmark, references: \(max(2, seconds - 2)) s per run after 1.5 s of warm-up, median of \(repeats) runs, \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
} else {
    print(
        "end-to-end benchmark: fleet-telemetry run against fleet-telemetry emulator, \(seconds) s per run, median of \(repeats) runs, \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
}
// The emulator's clock runs a vehicle's day per minute by default (1440×): every 5 s poll then
// finds hours of driving and charging, most values new. At 1× a poll finds what a real car
// reports in 5 s: the realistic load.
if !referencesOnly {
    if only == nil || only == "realtime" {
        try await scenario(
            label: "steady, real-time clock (1×)", vehicles: 1_000, interval: "5s", concurrency: 8,
            timeScale: 1)
    }
    if only == nil || only == "steady" {
        try await scenario(label: "steady, default clock (1440×)", vehicles: 1_000, interval: "5s", concurrency: 8)
    }
    if only == nil || only == "saturated" {
        try await scenario(label: "saturated (3,000 every 1 s)", vehicles: 3_000, interval: "1s", concurrency: 16)
    }
}

/// The HTTP layer alone against a fresh emulator (real-time clock), from this process: the floor
/// under the daemon's CPU per poll, measured `repeats` times.
func reference(label: String, layer: ClientLayer, concurrency: Int, rate: Double?) async throws {
    var runs: [ClientFigures] = []
    for _ in 0..<repeats {
        let (emulator, base) = try startEmulator(vehicles: 1_000, timeScale: 1)
        defer { emulator.terminate(); emulator.waitUntilExit(); ChildProcesses.shared.remove(emulator) }
        let pid = emulator.processIdentifier
        runs.append(
            try await clientAlone(
                layer: layer, base: base, vehicles: 1_000, concurrency: concurrency, rate: rate,
                warmUp: 1.5, seconds: Double(max(2, seconds - 2)), emulatorPID: pid))
    }
    let spread = Spread(runs, cpu: \.clientMicroseconds, emulator: \.emulatorMicroseconds)
    print(
        label.padding(toLength: 48, withPad: " ", startingAt: 0)
            + String(
                format:
                    "%6.0f req/s   client %5.0f µs CPU/request (runs %.0f–%.0f)  emulator %4.0f µs/request  client/emulator %.2f (%.2f–%.2f)  %d failed",
                spread.median.requestsPerSecond, spread.median.clientMicroseconds, spread.cpu.lowerBound,
                spread.cpu.upperBound,
                spread.median.emulatorMicroseconds, spread.ratio, spread.ratios.lowerBound, spread.ratios.upperBound,
                runs.reduce(0) { $0 + $1.failed }))
}

if !referencesOnly { exit(0) }
print("references: the HTTP layer alone, in this process, against the emulator (real-time clock): no parsing, no store")
try await reference(label: "async-http-client, 200/s, 8 in flight", layer: .asyncHTTPClient, concurrency: 8, rate: 200)
try await reference(
    label: "async-http-client on its own event loop, 200/s", layer: .asyncHTTPClientOnEventLoop, concurrency: 8,
    rate: 200)
try await reference(label: "HighMobilityClient, 200/s, 8 in flight", layer: .fleetClient, concurrency: 8, rate: 200)
try await reference(
    label: "async-http-client, 16 in flight, unpaced", layer: .asyncHTTPClient, concurrency: 16, rate: nil)
