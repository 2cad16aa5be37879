import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import Synchronization
import Testing

/// A second connection, on a thread of its own, that holds the write lock for `seconds` and,
/// half a second in, asks the cooperative pool to run a task while it still holds the lock.
private final class WriteLockHolder: Sendable {
    private let poolRan = Mutex<Bool?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(path: String, holdFor seconds: Double) throws {
        let locked = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        Thread.detachNewThread { [self] in
            do {
                let other = try Connection(path: path)
                try other.execute("BEGIN IMMEDIATE")
                let start = Date()
                locked.signal()
                Thread.sleep(forTimeInterval: 0.5)
                let ran = DispatchSemaphore(value: 0)
                // High priority: the other suites flood the pool meanwhile; this task must not
                // queue behind them, only never behind the stores' busy waits.
                Task(priority: .high) { ran.signal() }
                let inTime = ran.wait(timeout: .now() + seconds - 0.5) == .success
                poolRan.withLock { $0 = inTime }
                Thread.sleep(forTimeInterval: max(0, seconds - Date().timeIntervalSince(start)))
                try other.execute("COMMIT")
            } catch {
                failure.withLock { $0 = "\(error)" }
                locked.signal()
            }
            done.signal()
        }
        locked.wait()
        if let message = failure.withLock({ $0 }) { throw SQLiteError(code: .error, message: message) }
    }

    /// Whether the pool ran the task before the lock was let go; waits until it is.
    func poolRanWhileLocked() -> Bool {
        done.wait()
        done.signal()
        return poolRan.withLock { $0 } ?? false
    }
}

@Suite struct DatabaseExecutorTests {
    /// Every isolated method of a store runs on that store's own thread, not on the pool's.
    @Test func storeWorkRunsOnItsOwnThread() async throws {
        let db = TemporaryDatabase()
        let store = try TelemetryStore(path: db.path)
        #expect(await store.isOnExecutorThread())
        try await store.record(poll(at: t0), samples: [], detector: EventRules())
        #expect(try await store.summary().pollsByStatus == [200: 1])
    }

    /// More stores than the pool has threads wait for a write lock another process holds: with
    /// SQLite on the pool, nothing else could run until the lock is let go; on the stores' own
    /// threads, unrelated work goes on meanwhile, and every write is stored once the lock is free.
    @Test func busyWaitsLeaveTheCooperativePoolFree() async throws {
        let db = TemporaryDatabase()
        let stores = try (0...ProcessInfo.processInfo.activeProcessorCount).map { _ in
            try TelemetryStore(path: db.path)
        }
        // Long enough for a loaded machine (other suites run meanwhile) to get to the task.
        let holder = try WriteLockHolder(path: db.path, holdFor: 10)
        let writes = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, store) in stores.enumerated() {
                    let time = t0.adding(milliseconds: Int64(index) * 60_000)
                    group.addTask { try await store.record(poll(at: time), samples: [], detector: EventRules()) }
                }
                try await group.waitForAll()
            }
        }
        try await writes.value
        #expect(holder.poolRanWhileLocked(), "unrelated work ran on the pool while the stores waited for the lock")
        #expect(try await stores[0].summary().pollsByStatus == [200: stores.count])
    }
}
