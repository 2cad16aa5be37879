// Scheduler benchmark: how PollSchedule behaves with 10k and 100k VINs, in real time, with the
// HTTP layer stubbed out (each due VIN "succeeds" at once). Prints, per scenario: memory (RSS),
// CPU share over the run, polls handed out, and lateness of due polls (p50/p99/max); and, as a
// reference in the same run, the cost of finding due VINs by scanning every entry (what a
// schedule without a heap does) against the heap.
//
//   swift run -c release scheduler-benchmark [seconds per scenario, default 15]

import FleetScheduling
import FleetModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

func rssMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return .nan }
    let kib = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    return kib / 1024
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

func vins(_ count: Int) -> [VIN] {
    (0..<count).map { index in
        let digits = String(index)
        return VIN("1HMBENCH" + String(repeating: "0", count: 9 - digits.count) + digits)!
    }
}

func percentile(_ sorted: [Int64], _ p: Double) -> Int64 {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

struct Scenario {
    var name: String
    var vehicles: Int
    var interval: Duration
}

func run(_ scenario: Scenario, seconds: Double) async throws {
    let clock = SystemWallClock()
    let fleet = vins(scenario.vehicles)
    let rssBefore = rssMiB()
    // Start two seconds from now, so that building the schedule does not count as lateness.
    let origin = clock.now().adding(.seconds(2))
    var schedule = PollSchedule(vins: fleet, policy: .init(interval: scenario.interval), start: origin, seed: 1)
    let rssAfter = rssMiB()
    try await clock.sleep(until: origin)
    var lateness: [Int64] = []
    var handedOut = 0
    let cpuStart = cpuSeconds()
    let wallStart = ContinuousClock.now
    let end = clock.now().adding(milliseconds: Int64(seconds * 1000))
    while clock.now() < end {
        let now = clock.now()
        // Due times of what is about to be taken, for the lateness figure.
        let due = schedule.takeDue(at: now)
        for vin in due {
            // The entry's nextDue still holds the slot being served.
            let slot = schedule.entry(vin)!.nextDue
            lateness.append(now.millisecondsSince1970 - slot.millisecondsSince1970)
            schedule.record(.success(nil), for: vin, at: now)
        }
        handedOut += due.count
        if let next = schedule.nextDueTime() {
            try await clock.sleep(until: min(next, end))
        }
    }
    let wall = (ContinuousClock.now - wallStart).seconds
    let cpu = cpuSeconds() - cpuStart
    lateness.sort()
    print(
        String(
            format:
                "%-28@ %8d VINs  RSS %6.1f MiB (schedule %6.1f MiB)  CPU %5.2f %%  polls %7d (%6.0f/s)  lateness p50 %3lld ms  p99 %3lld ms  max %4lld ms",
            scenario.name as NSString, scenario.vehicles, rssAfter, rssAfter - rssBefore, cpu / wall * 100, handedOut,
            Double(handedOut) / wall, percentile(lateness, 0.5), percentile(lateness, 0.99), lateness.last ?? 0))
}

/// Reference in the same run: finding the due VINs by a scan of every entry vs the heap.
func scanVersusHeap(vehicles: Int) {
    let start = Timestamp(millisecondsSince1970: 1_800_000_000_000)
    var schedule = PollSchedule(vins: vins(vehicles), policy: .init(interval: .seconds(300)), start: start, seed: 1)
    let rounds = 200
    var now = start
    var scanned = 0
    let scanStart = ContinuousClock.now
    for _ in 0..<rounds {
        now = now.adding(milliseconds: 10)
        scanned += schedule.due(at: now).count
    }
    let scanTime = (ContinuousClock.now - scanStart).seconds / Double(rounds)
    now = start
    var taken = 0
    let heapStart = ContinuousClock.now
    for _ in 0..<rounds {
        now = now.adding(milliseconds: 10)
        let due = schedule.takeDue(at: now)
        taken += due.count
        for vin in due { schedule.record(.success(nil), for: vin, at: now) }
    }
    let heapTime = (ContinuousClock.now - heapStart).seconds / Double(rounds)
    print(
        String(
            format:
                "find due VINs, %d VINs: scan %.3f ms/round, heap (take + record) %.4f ms/round: heap is %.0f× faster",
            vehicles, scanTime * 1000, heapTime * 1000, scanTime / max(heapTime, 1e-9)))
    _ = scanned + taken
}

let seconds = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 15
print("scheduler benchmark: \(Int(seconds)) s per scenario, HTTP stubbed, real clock")
for vehicles in [10_000, 100_000] {
    scanVersusHeap(vehicles: vehicles)
}
for scenario in [
    Scenario(name: "busy (interval 5m)", vehicles: 10_000, interval: .seconds(300)),
    Scenario(name: "busy (interval 5m)", vehicles: 100_000, interval: .seconds(300)),
    Scenario(name: "quiet (interval 1h)", vehicles: 100_000, interval: .seconds(3600)),
] {
    try await run(scenario, seconds: seconds)
}
