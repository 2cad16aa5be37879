import FleetModel
import Logging
import ServiceLifecycle

/// The daemon's main loop: asks the ``PollSchedule`` who is due, polls them through the
/// ``PollPipeline`` (at most `maxConcurrentRequests` at once, in one task group), records each
/// outcome, and sleeps on the injected clock until the next VIN is due.
///
/// A `Service`: it stops on graceful shutdown (SIGTERM/SIGINT through `ServiceGroup`) after the
/// polls in flight have been stored, so no accepted response is lost.
public actor PollingService: Service {
    private var schedule: PollSchedule
    private let pipeline: PollPipeline
    private let clock: any WallClock
    private let maxConcurrentRequests: Int
    private let logger: Logger

    /// - Parameters:
    ///   - vins: The VINs to poll.
    ///   - policy: Interval and backoff limits.
    ///   - seed: Seeds the start offsets and jitter; defaults to a random one.
    public init(vins: [VIN], policy: PollSchedule.Policy, pipeline: PollPipeline, clock: any WallClock, maxConcurrentRequests: Int, seed: UInt64 = UInt64.random(in: 0...UInt64.max), logger: Logger) {
        self.schedule = PollSchedule(vins: vins, policy: policy, start: clock.now(), seed: seed)
        self.pipeline = pipeline
        self.clock = clock
        self.maxConcurrentRequests = max(1, maxConcurrentRequests)
        self.logger = logger
    }

    /// The current schedule (for tests and status output).
    public var currentSchedule: PollSchedule { schedule }

    /// Polls every VIN due at `now`, waits for all of them, and records their outcomes.
    ///
    /// - Returns: The result of each poll, in completion order.
    @discardableResult
    public func tick(now: Timestamp) async -> [PollPipeline.Result] {
        let due = schedule.due(at: now)
        guard !due.isEmpty else { return [] }
        for vin in due { schedule.start(vin) }
        let pipeline = self.pipeline
        var results: [PollPipeline.Result] = []
        await withTaskGroup(of: PollPipeline.Result.self) { group in
            var pending = due.makeIterator()
            for _ in 0..<maxConcurrentRequests {
                guard let vin = pending.next() else { break }
                group.addTask { await pipeline.poll(vin) }
            }
            for await result in group {
                schedule.record(result.outcome, for: result.vin, at: clock.now())
                results.append(result)
                if let vin = pending.next() {
                    group.addTask { await pipeline.poll(vin) }
                }
            }
        }
        return results
    }

    /// Runs until graceful shutdown.
    ///
    /// - Throws: ``DaemonError/credentialsRejected(_:)`` when the API refuses the client id or
    ///   secret, since no poll can succeed until the config is fixed.
    public func run() async throws {
        logger.info("polling \(schedule.entries.count) vehicles every \(DurationParser.format(schedule.policy.interval))")
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = clock.now()
            if schedule.due(at: now).isEmpty {
                let next = schedule.nextDueTime
                let clock = self.clock
                do {
                    try await cancelWhenGracefulShutdown {
                        if let next {
                            try await clock.sleep(until: next)
                        } else {
                            try await gracefulShutdown()
                        }
                    }
                } catch {
                    break
                }
                continue
            }
            let results = await tick(now: now)
            if let rejected = results.first(where: { $0.outcome == .credentialsRejected }) {
                throw DaemonError.credentialsRejected(rejected.error ?? "the token request was refused")
            }
        }
        logger.info("polling stopped")
    }
}

/// A condition that stops the daemon.
public enum DaemonError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The token endpoint refused `api.client_id` / `api.client_secret`.
    case credentialsRejected(String)

    public var description: String {
        switch self {
        case .credentialsRejected(let detail):
            return "the API refused the client credentials (check api.client_id and api.client_secret): \(detail)"
        }
    }
}
