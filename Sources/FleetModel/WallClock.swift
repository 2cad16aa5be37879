/// The source of wall-clock time (UTC instants) for every time decision the daemon makes.
///
/// Injected so that tests advance time instead of sleeping.
public protocol WallClock: Sendable {
    /// The current instant, UTC.
    func now() -> Timestamp
    /// Suspends until `deadline` (or returns at once if it has passed).
    ///
    /// - Throws: `CancellationError` when the task is cancelled while waiting.
    func sleep(until deadline: Timestamp) async throws
}

/// The operating system's real-time clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(millisecondsSince1970: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    public func sleep(until deadline: Timestamp) async throws {
        let remaining = deadline.duration(since: now())
        if remaining > .zero {
            try await Task.sleep(for: remaining)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
