import Foundation

/// The serial executor of one ``TelemetryStore``: a thread of its own that runs the store's jobs
/// one at a time, in the order they were enqueued, as GRDB runs SQLite on a serial dispatch queue.
///
/// It owns the thread every SQLite call of its store is made on. SQLite blocks that thread while
/// it works and while it waits for a lock held by another process (the busy timeout, up to 30 s),
/// so those waits never take a thread of Swift's cooperative pool, which has only one per core:
/// the scheduler, the HTTP client and the sinks keep running meanwhile.
///
/// Not `DispatchSerialQueue`: on Linux, Swift 6.3's Dispatch has no `DispatchSerialQueue` (and
/// no queue that conforms to `SerialExecutor`). The thread stops once ``shutdown()`` was called
/// and the jobs already enqueued have run; its store calls it from `deinit`.
final class DatabaseExecutor: SerialExecutor, @unchecked Sendable {
    // Unchecked: `pending`, `isShutDown` and `threadID` are read and written only with
    // `condition` locked; everything else is immutable.
    private let condition = NSCondition()
    private var pending: [UnownedJob] = []
    private var isShutDown = false
    private var threadID: pthread_t?

    /// Starts the executor's thread.
    ///
    /// - Parameter name: The thread's name, as tools show it (`top -H`, `perf`, a debugger).
    init(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        pending.append(job)
        condition.signal()
        condition.unlock()
    }

    /// True on the executor's own thread.
    var isCurrentThread: Bool {
        condition.lock()
        defer { condition.unlock() }
        return threadID.map { pthread_equal($0, pthread_self()) != 0 } ?? false
    }

    func checkIsolated() {
        precondition(isCurrentThread, "not on the thread of the store's DatabaseExecutor")
    }

    /// Lets the thread end once the jobs enqueued so far have run. Returns at once: it may be
    /// called from a job of this executor (the store's last reference dropped on its thread).
    func shutdown() {
        condition.lock()
        isShutDown = true
        condition.signal()
        condition.unlock()
    }

    /// The thread's loop: takes every enqueued job at once and runs them outside the lock, so
    /// that enqueuing never waits for a job to finish.
    private func run() {
        condition.lock()
        threadID = pthread_self()
        condition.unlock()
        let executor = asUnownedSerialExecutor()
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while pending.isEmpty && !isShutDown { condition.wait() }
            if pending.isEmpty {
                condition.unlock()
                return
            }
            swap(&batch, &pending)
            condition.unlock()
            for job in batch { job.runSynchronously(on: executor) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
