import NIOCore

/// A Swift task executor that runs jobs on one SwiftNIO event loop: the reference
/// "async-http-client on its event loop" runs each request with it preferred
/// (`withTaskExecutorPreference`), so that the awaiting task resumes on the loop that completed
/// the request instead of being handed to Swift's global thread pool at every step.
///
/// Tried in `HighMobilityClient` (one event-loop thread, each request on it): no gain in the
/// daemon at 200 polls/s (daemon/emulator 1.71 both), worse at saturation (2.54–2.61 against
/// 2.28–2.36); so the daemon keeps async-http-client's default event loops.
final class EventLoopExecutor: TaskExecutor {
    /// The loop the jobs run on.
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
