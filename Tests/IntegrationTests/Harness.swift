import FleetClient
import FleetDaemon
import FleetEmulator
import FleetModel
import FleetStore
import Foundation
import Logging
import CoreMetrics
import Synchronization

/// Keeps every log line (message and metadata), so tests can check what was logged.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    func logger(label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }
}

/// Collects the events the pipeline delivers, in order.
actor CollectingSink: EventSink {
    private(set) var events: [Event] = []
    func deliver(_ events: [Event]) async { self.events += events }
}

/// The daemon wired to an emulator served over real loopback HTTP on an ephemeral port, all on
/// one manual clock: tests move time with ``step(by:)`` instead of sleeping.
struct Harness {
    let clock: ManualWallClock
    let emulator: Emulator
    let store: TelemetryStore
    let sink: CollectingSink
    let service: PollingService
    let client: HighMobilityClient
    /// The emulator's port on 127.0.0.1.
    let port: Int
    let databasePath: String

    /// Moves the clock forward and polls whatever is due.
    @discardableResult
    func step(by duration: Duration) async -> [PollPipeline.Result] {
        clock.advance(by: duration)
        return await service.tick(now: clock.now())
    }
}

let harnessStart = Timestamp(iso8601: "2026-11-28T06:00:00Z")!

/// Runs `body` against a fresh emulator and database; stops the server and removes the database after.
func withHarness<T: Sendable>(
    emulator configuration: EmulatorConfiguration = .init(),
    interval: Duration = .seconds(1),
    maxConcurrentRequests: Int = 8,
    clientSecret: String? = nil,
    family: PathFamily = .platform,
    fleetSync: Bool = false,
    maxResponseBytes: Int = 4 * 1024 * 1024,
    logs: LogCapture? = nil,
    metrics: (any MetricsFactory)? = nil,
    policy: PollSchedule.Policy? = nil,
    requestTimeout: Duration = .seconds(30),
    _ body: (Harness) async throws -> T
) async throws -> T {
    let clock = ManualWallClock(start: harnessStart)
    let emulator = Emulator(configuration: configuration, wallClock: clock)
    let directory = NSTemporaryDirectory() + "fleet-telemetry-it-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try TelemetryStore(path: directory + "/telemetry.sqlite")
    var logger = logs?.logger(label: "it") ?? Logger(label: "it")
    if logs == nil { logger.logLevel = .critical }
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = EmulatorServer.application(emulator: emulator, port: 0, logger: logger) { port in
        portContinuation.yield(port)
        portContinuation.finish()
    }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await app.run()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        let client = HighMobilityClient(
            configuration: .init(baseURL: "http://127.0.0.1:\(port)", clientID: configuration.clientID, clientSecret: Secret(clientSecret ?? configuration.clientSecret), requestTimeout: requestTimeout, maxResponseBytes: maxResponseBytes, pathFamily: family),
            clock: clock, logger: logger)
        let sink = CollectingSink()
        let pipeline = PollPipeline(client: client, store: store, sink: sink, clock: clock, logger: logger, metrics: metrics)
        let service = PollingService(
            vins: fleetSync ? [] : configuration.vins, policy: policy ?? .init(interval: interval, maxBackoff: interval * 8),
            pipeline: pipeline, clock: clock, maxConcurrentRequests: maxConcurrentRequests,
            fleetSync: fleetSync ? FleetSync(interval: .seconds(60)) { try await client.fleetVehicles() } : nil,
            seed: 11, logger: logger)
        let harness = Harness(clock: clock, emulator: emulator, store: store, sink: sink, service: service, client: client, port: port, databasePath: directory + "/telemetry.sqlite")
        do {
            let result = try await body(harness)
            try await client.shutdown()
            group.cancelAll()
            return result
        } catch {
            try? await client.shutdown()
            group.cancelAll()
            throw error
        }
    }
}
