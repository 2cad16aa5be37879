import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetEvents
import FleetIngestion
import FleetScheduling
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

/// The daemon (the one assembly, ``Daemon``) wired to an emulator served over real loopback
/// HTTP on an ephemeral port, all on one manual clock: tests move time with ``step(by:)``
/// instead of sleeping, and the loop that production runs does the polling.
struct Harness {
    let clock: ManualWallClock
    let emulator: Emulator
    let store: TelemetryStore
    let sink: CollectingSink
    let client: HighMobilityClient
    /// The emulator's port on 127.0.0.1.
    let port: Int
    let databasePath: String
    let runner: LoopRunner

    /// The running daemon's polling loop.
    var service: PollingService { runner.daemon.polling }
    var daemon: Daemon { runner.daemon }

    /// Moves the clock forward, lets the daemon's loop do whatever is due, and returns the
    /// results of the polls that ended meanwhile, in completion order.
    @discardableResult
    func step(by duration: Duration) async -> [PollPipeline.Result] {
        clock.advance(by: duration)
        runner.startIfNeeded()
        await runner.daemon.polling.settled(at: clock.now())
        return runner.takeResults()
    }

    /// Moves the clock to the loop's next wake-up (at most `limit` ahead, at least 1 ms), as
    /// ``step(by:)`` does: simulated time that skips the idle stretches, for long runs.
    @discardableResult
    func stepToNextWakeUp(limit: Duration = .seconds(1)) async -> [PollPipeline.Result] {
        runner.startIfNeeded()
        let now = clock.now()
        let next = await runner.daemon.polling.nextWakeUp ?? now.adding(limit)
        let wait = min(max(next.duration(since: now), .milliseconds(1)), limit)
        return await step(by: wait)
    }

    /// Stops the running daemon (as a restart of the process would) and assembles a new one on
    /// the same database, emulator and clock; it starts at the next ``step(by:)``.
    func restart(seed: UInt64) async {
        await runner.stop()
        runner.replace(with: runner.makeDaemon(seed))
    }

    /// Runs the daemon until its loop ends and returns how: for a daemon that stops by itself.
    func runToEnd() async throws {
        runner.startIfNeeded()
        try await runner.wait()
    }
}

/// Starts, stops and replaces the harness's daemon; collects the results of its polls.
final class LoopRunner: Sendable {
    let makeDaemon: @Sendable (UInt64) -> Daemon
    private let state: Mutex<State>
    private let results = Mutex<[PollPipeline.Result]>([])

    private struct State {
        var daemon: Daemon
        var task: Task<Void, any Error>?
    }

    init(seed: UInt64, makeDaemon: @escaping @Sendable (UInt64) -> Daemon) {
        self.makeDaemon = makeDaemon
        state = Mutex(State(daemon: makeDaemon(seed)))
    }

    var daemon: Daemon { state.withLock { $0.daemon } }

    func record(_ result: PollPipeline.Result) {
        results.withLock { $0.append(result) }
    }

    func takeResults() -> [PollPipeline.Result] {
        results.withLock { results in
            defer { results.removeAll() }
            return results
        }
    }

    func startIfNeeded() {
        state.withLock { state in
            guard state.task == nil else { return }
            let polling = state.daemon.polling
            state.task = Task { try await polling.run() }
        }
    }

    /// Waits for the loop to end.
    func wait() async throws {
        let task = state.withLock { $0.task }
        try await task?.value
    }

    /// Cancels the loop (it stores the polls in flight, saves the schedule and returns).
    func stop() async {
        let task = state.withLock { $0.task }
        task?.cancel()
        _ = try? await task?.value
    }

    func replace(with daemon: Daemon) {
        state.withLock { $0 = State(daemon: daemon) }
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
    events: EventRulesConfiguration = .init(),
    requestTimeout: Duration = .seconds(30),
    start: Timestamp = harnessStart,
    _ body: (Harness) async throws -> T
) async throws -> T {
    let clock = ManualWallClock(start: start)
    let emulator = Emulator(configuration: configuration, wallClock: clock)
    let directory = NSTemporaryDirectory() + "fleet-telemetry-it-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var logger = logs?.logger(label: "it") ?? Logger(label: "it")
    if logs == nil { logger.logLevel = .critical }
    var daemonConfiguration = DaemonConfiguration(
        api: .init(baseURL: "http://127.0.0.1", clientID: configuration.clientID, clientSecret: .literal(Secret(""))),
        databasePath: directory + "/telemetry.sqlite")
    daemonConfiguration.polling = .init(
        policy: policy ?? .init(interval: interval, maxBackoff: interval * 8),
        maxConcurrentRequests: maxConcurrentRequests)
    daemonConfiguration.fleet = .init(sync: fleetSync, syncInterval: .seconds(60))
    daemonConfiguration.vehicles = fleetSync ? [] : configuration.vins
    daemonConfiguration.events = events
    let store = try await Daemon.openStore(path: daemonConfiguration.databasePath, configuration: daemonConfiguration)
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
            configuration: .init(
                baseURL: "http://127.0.0.1:\(port)", clientID: configuration.clientID,
                clientSecret: Secret(clientSecret ?? configuration.clientSecret), requestTimeout: requestTimeout,
                maxResponseBytes: maxResponseBytes, pathFamily: family),
            clock: clock, logger: logger)
        let sink = CollectingSink()
        let resultBox = Mutex<LoopRunner?>(nil)
        let runner = LoopRunner(seed: 11) { [daemonConfiguration, logger] seed in
            Daemon(
                configuration: daemonConfiguration, store: store, client: client, clock: clock, sink: sink, seed: seed,
                logger: logger, metrics: metrics,
                onPoll: { result in resultBox.withLock { $0 }?.record(result) })
        }
        resultBox.withLock { $0 = runner }
        let harness = Harness(
            clock: clock, emulator: emulator, store: store, sink: sink, client: client, port: port,
            databasePath: directory + "/telemetry.sqlite", runner: runner)
        do {
            let result = try await body(harness)
            await runner.stop()
            try await client.shutdown()
            group.cancelAll()
            return result
        } catch {
            await runner.stop()
            try? await client.shutdown()
            group.cancelAll()
            throw error
        }
    }
}
