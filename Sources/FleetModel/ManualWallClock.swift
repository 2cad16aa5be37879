import Synchronization

/// A wall clock that moves only when told to: for tests and simulations.
///
/// ``sleep(until:)`` suspends until ``advance(by:)`` or ``set(_:)`` moves the clock to or past
/// the deadline (or the task is cancelled).
public final class ManualWallClock: WallClock {
    private struct Waiter {
        let id: UInt64
        let deadline: Timestamp
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Timestamp
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
        var cancelled: Set<UInt64> = []
    }

    private let state: Mutex<State>

    /// Starts at `start` (UTC).
    public init(start: Timestamp) {
        state = Mutex(State(now: start))
    }

    public func now() -> Timestamp {
        state.withLock { $0.now }
    }

    /// Moves the clock forward by `duration` and wakes the sleepers whose deadline has come.
    public func advance(by duration: Duration) {
        set(now().adding(duration))
    }

    /// Sets the clock to `time` (never backwards) and wakes the sleepers whose deadline has come.
    public func set(_ time: Timestamp) {
        let due = state.withLock { state -> [Waiter] in
            state.now = max(state.now, time)
            let now = state.now
            let due = state.waiters.filter { $0.deadline <= now }
            state.waiters.removeAll { $0.deadline <= now }
            return due
        }
        for waiter in due { waiter.continuation.resume() }
    }

    /// Number of tasks suspended in ``sleep(until:)``.
    public var sleeperCount: Int {
        state.withLock { $0.waiters.count }
    }

    public func sleep(until deadline: Timestamp) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: (any Error)?? = state.withLock { state in
                    if state.cancelled.remove(id) != nil { return .some(CancellationError()) }
                    if deadline <= state.now { return .some(nil) }
                    state.waiters.append(Waiter(id: id, deadline: deadline, continuation: continuation))
                    return .none
                }
                switch resumeNow {
                case .some(.some(let error)): continuation.resume(throwing: error)
                case .some(.none): continuation.resume()
                case .none: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}
