import BenchmarkSupport
import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetEmulator
import FleetEvents
import FleetIngestion
import FleetMQTT
import FleetModel
import FleetStore
import Foundation
import Hummingbird
import Logging
import Synchronization

// delivery-benchmark [events (5000)]
//
// 1. Throughput from a backlog: `events` events queued in the outbox, delivered by the daemon's
//    DeliveryService to a local webhook receiver that answers at once, and to a local Mosquitto
//    broker when one is installed. The reference in the same run is the same transport sending
//    the same events directly (8 at a time, as the service does), without the outbox.
// 2. Polling cadence: the daemon (one assembly, the real client) polls 20 emulated vehicles every
//    second for 20 s, once without sinks and once with 1,000 events queued for a webhook whose
//    receiver takes 100 ms per request. Reported: polls per second and the 95th percentile of the
//    gap between two polls of a vehicle, and their ratio to the run without sinks.

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count <= 1, let eventCount = Int(arguments.first ?? "5000"), eventCount >= 100 else {
    FileHandle.standardError.write(Data("usage: delivery-benchmark [events ≥ 100 (5000)]\n".utf8))
    exit(64)
}
let logger = quietLogger("delivery-benchmark")
let start = Timestamp(iso8601: "2026-11-28T06:00:00Z")!
let secretText = "whsec_" + Data((0..<24).map { UInt8($0) }).base64EncodedString()

/// A receiver on a free loopback port that answers 204 after `delay`, counting requests.
final class Counter: Sendable {
    let value = Mutex(0)
}

final class Receiver: Sendable {
    let counter = Counter()
    var count: Int { counter.value.withLock { $0 } }
    let port: Int
    private let task: Task<Void, any Error>

    init(delay: Duration) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let router = Router()
        let counter = self.counter
        router.post("/hook") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            if delay > .zero { try await Task.sleep(for: delay) }
            counter.value.withLock { $0 += 1 }
            return Response(status: .noContent)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        task = Task { try await app.runService() }
        var found = 0
        for await port in ports {
            found = port
            break
        }
        port = found
    }

    deinit { task.cancel() }
}

/// A store with `count` door events queued for `sink` (`vehicles` vehicles, their doors
/// unlocked and locked in turn).
func storeWithBacklog(_ path: String, sink: String, count: Int, vehicles: Int = 100) async throws -> TelemetryStore {
    let store = try TelemetryStore(path: path)
    await store.setOutboxSinks([OutboxSink(name: sink)])
    let vins = (1...vehicles).map { VIN(String(format: "1HMBENCH%09d", $0))! }
    let rules = EventRules()
    for round in 0...(count / vehicles) {
        let time = start.adding(milliseconds: Int64(round) * 60_000)
        for vin in vins {
            _ = try await store.record(
                PollRecord(vin: vin, requestedAt: time, receivedAt: time, httpStatus: 200, latencyMilliseconds: 1),
                samples: [
                    Sample(
                        vin: vin, property: "doors.locks.lock_state", instance: "front_left",
                        value: .text(round % 2 == 0 ? "locked" : "unlocked"), observedAt: time)
                ], detector: rules)
        }
    }
    return store
}

func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "delivery-benchmark-\(name)-\(UUID().uuidString)"
}

func remove(_ path: String) {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}

/// Runs `service` until the store's outbox is empty; events per second.
func drain(_ store: TelemetryStore, _ service: DeliveryService) async throws -> (events: Int, perSecond: Double) {
    let total = try await store.outboxDepth().values.reduce(0, +)
    let began = ContinuousClock.now
    let task = Task { try await service.run() }
    while try await !store.outboxDepth().isEmpty { try await Task.sleep(for: .milliseconds(5)) }
    let took = ContinuousClock.now - began
    task.cancel()
    _ = await task.result
    return (total, Double(total) / secondsOf(took))
}

func secondsOf(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Sends every event with `send`, 8 at a time, without the outbox; events per second.
func direct(_ events: [Event], _ send: @escaping @Sendable (Event) async -> Void) async -> Double {
    let began = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        var running = 0
        for event in events {
            if running == 8 {
                await group.next()
                running -= 1
            }
            group.addTask { await send(event) }
            running += 1
        }
    }
    return Double(events.count) / secondsOf(ContinuousClock.now - began)
}

func line(_ name: String, _ perSecond: Double, _ reference: Double) -> String {
    String(
        format: "  %-8@ outbox %7.0f events/s   direct %7.0f events/s   ratio %.2f", name, perSecond, reference,
        perSecond / reference)
}

// MARK: 1. Throughput

print("1. Throughput from a backlog of \(eventCount) events (each vehicle's in order, 8 vehicles at once):")
do {
    let receiver = try await Receiver(delay: .zero)
    let path = temporaryPath("webhook")
    defer { remove(path) }
    let store = try await storeWithBacklog(path, sink: "bench", count: eventCount)
    let sender = WebhookSender(url: "http://127.0.0.1:\(receiver.port)/hook", secret: WebhookSecret(secretText)!)
    let service = DeliveryService(
        sinks: [.init(name: "bench", transport: sender, maxAge: .seconds(86_400))], store: store,
        clock: SystemWallClock(), logger: logger)
    let events = try await store.events()
    let reference = await direct(events) { _ = await sender.send($0, now: SystemWallClock().now()) }
    let (delivered, rate) = try await drain(store, service)
    print(line("webhook", rate, reference) + "   (\(delivered) delivered)")
}

let mosquitto = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].first { FileManager.default.isExecutableFile(atPath: $0) }
if let mosquitto {
    let directory = temporaryPath("broker")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let port = 20_000 + Int.random(in: 0..<20_000)
    let user = getuid() == 0 ? "user root\n" : ""
    try "\(user)listener \(port) 127.0.0.1\nallow_anonymous true\n".write(
        toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
    let broker = Process()
    broker.executableURL = URL(fileURLWithPath: mosquitto)
    broker.arguments = ["-c", directory + "/mosquitto.conf"]
    broker.standardError = FileHandle.nullDevice
    try broker.run()
    defer { kill(broker.processIdentifier, SIGKILL) }
    let connection = try MQTTConnection(
        options: .init(
            host: "127.0.0.1", port: port, clientID: "delivery-benchmark", availabilityTopic: "bench/availability"),
        logger: logger)
    connection.start()
    let deadline = ContinuousClock.now + .seconds(10)
    while !connection.isConnected && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    let path = temporaryPath("mqtt")
    defer { remove(path) }
    let store = try await storeWithBacklog(path, sink: "mqtt", count: eventCount)
    let publisher = MQTTEventPublisher(connection: connection, topics: MQTTTopics(prefix: "bench"))
    let service = DeliveryService(
        sinks: [.init(name: "mqtt", transport: publisher, maxAge: .seconds(86_400))], store: store,
        clock: SystemWallClock(), logger: logger)
    let events = try await store.events()
    let reference = await direct(events) { _ = await publisher.send($0, now: SystemWallClock().now()) }
    let (delivered, rate) = try await drain(store, service)
    print(line("mqtt", rate, reference) + "   (\(delivered) delivered)")
    connection.stop()
} else {
    print("  mqtt     skipped: mosquitto is not installed")
}

// MARK: 2. Polling cadence

/// Polls of 20 vehicles every second for `seconds`, the daemon assembled as `run` does, with a
/// webhook receiver taking `receiverDelay` and `backlog` events queued for it when given.
func cadence(
    seconds: Int, webhook receiverDelay: Duration?, backlog: Int
) async throws -> (
    pollsPerSecond: Double, p95GapSeconds: Double, delivered: Int
) {
    let clock = SystemWallClock()
    let emulatorConfiguration = EmulatorConfiguration(vehicleCount: 20)
    let emulator = Emulator(configuration: emulatorConfiguration, wallClock: clock)
    let directory = temporaryPath("cadence")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = daemonConfiguration(
        for: emulatorConfiguration, databasePath: directory + "/telemetry.sqlite")
    configuration.polling = .init(policy: .init(interval: .seconds(1)), maxConcurrentRequests: 8)
    var receiver: Receiver?
    if let receiverDelay { receiver = try await Receiver(delay: receiverDelay) }
    if let receiver {
        configuration.webhooks = [
            .init(name: "bench", url: "http://127.0.0.1:\(receiver.port)/hook", secret: .environment("BENCH_SECRET"))
        ]
    }
    let store = try await Daemon.openStore(path: configuration.databasePath, configuration: configuration)
    let secrets = try SinkSecrets(
        configuration: configuration, file: "bench.yaml", environment: ["BENCH_SECRET": secretText])
    let services = try await Daemon.deliveryServices(
        configuration: configuration, secrets: secrets, store: store, clock: clock, logger: logger)
    if backlog > 0 {
        // Other vehicles' events, queued before the start.
        let rules = EventRules()
        for index in 0..<backlog {
            let vin = VIN(String(format: "1HMBACK%010d", index % 50))!
            let time = start.adding(milliseconds: Int64(index / 50) * 60_000)
            _ = try await store.record(
                PollRecord(vin: vin, requestedAt: time, receivedAt: time, httpStatus: 200, latencyMilliseconds: 1),
                samples: [
                    Sample(
                        vin: vin, property: "doors.locks.lock_state", instance: "front_left",
                        value: .text((index / 50) % 2 == 0 ? "unlocked" : "locked"), observedAt: time)
                ], detector: rules)
        }
    }
    return try await withEmulatedAPI(emulator, clock: clock, logger: logger) { client in
        let polls = Mutex<[VIN: [ContinuousClock.Instant]]>([:])
        let daemon = Daemon(
            configuration: configuration, store: store, client: client, clock: clock, sink: DiscardingEventSink(),
            seed: 7, logger: logger, onPoll: { result in polls.withLock { $0[result.vin, default: []].append(.now) } })
        let polling = daemon.polling
        let loop = Task { try await polling.run() }
        let delivering = services.map { service in Task { try await service.run() } }
        try await Task.sleep(for: .seconds(seconds))
        for task in delivering { task.cancel() }
        loop.cancel()
        _ = try? await loop.value
        let all = polls.withLock { $0 }
        // After the first 3 s (start offsets spread the first polls).
        let settled = all.values.compactMap(\.first).min().map { $0 + .seconds(3) } ?? .now
        var gaps: [Double] = []
        var count = 0
        for instants in all.values {
            let kept = instants.filter { $0 >= settled }
            count += kept.count
            gaps += zip(kept, kept.dropFirst()).map { secondsOf($1 - $0) }
        }
        gaps.sort()
        let p95 = gaps.isEmpty ? 0 : gaps[min(gaps.count - 1, Int(Double(gaps.count) * 0.95))]
        let delivered = receiver?.count ?? 0
        return (Double(count) / Double(seconds - 3), p95, delivered)
    }
}

print("2. Polling cadence: 20 vehicles every 1 s for 20 s (real time):")
let quiet = try await cadence(seconds: 20, webhook: nil, backlog: 0)
print(
    String(
        format: "  no sinks                         %5.1f polls/s   p95 gap %.2f s", quiet.pollsPerSecond,
        quiet.p95GapSeconds))
let busy = try await cadence(seconds: 20, webhook: .milliseconds(100), backlog: 1000)
print(
    String(
        format: "  1,000 queued, receiver 100 ms    %5.1f polls/s   p95 gap %.2f s   (%d delivered meanwhile)",
        busy.pollsPerSecond, busy.p95GapSeconds, busy.delivered))
print(
    String(
        format: "  ratio (with delivery / without):  polls/s %.3f   p95 gap %.3f",
        busy.pollsPerSecond / quiet.pollsPerSecond,
        busy.p95GapSeconds / quiet.p95GapSeconds))
