import FleetModel
import Logging
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where detected events go once they are stored.
public protocol EventSink: Sendable {
    /// Delivers events that were just stored (each once, with its id). It never throws: the
    /// events are in the database whatever a sink does with them.
    func deliver(_ events: [Event]) async
}

/// Prints each event as one JSON line (see ``Event/jsonLine``) on a file descriptor, standard
/// output by default.
///
/// The lines are written by a thread of the sink's own, so that a reader that stops reading (a
/// stuck forwarder, a full pipe) never stalls polling or storing: ``deliver(_:)`` only queues.
/// While more than ``maximumQueuedBytes`` wait, new events are not printed (they are in the
/// database) and that is logged once per episode. A descriptor that cannot be written at all (a
/// pipe whose reader exited, as in `run | head -1`) is logged once and written no more. So that
/// a closed pipe is an error (`EPIPE`) instead of the end of the process, creating a sink makes
/// the process ignore `SIGPIPE`.
public final class StdoutEventSink: EventSink, @unchecked Sendable {
    // Unchecked: `queue`, `queuedBytes`, `broken` and `dropping` are read and written only with
    // `condition` locked; the rest is immutable.
    private let fileDescriptor: Int32
    private let logger: Logger?
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var broken = false
    private var dropping = false

    /// The most bytes of event lines waiting for a slow reader (4 MiB) before new ones are
    /// dropped from the output.
    public static let maximumQueuedBytes = 4 << 20

    /// - Parameters:
    ///   - fileDescriptor: Where the lines go (standard output unless a test says otherwise).
    ///   - logger: Where the lines about a failed or stalled output go.
    public init(fileDescriptor: Int32 = STDOUT_FILENO, logger: Logger? = nil) {
        self.fileDescriptor = fileDescriptor
        self.logger = logger
        signal(SIGPIPE, SIG_IGN)
        let thread = Thread { [self] in writeLoop() }
        thread.name = "fleet-telemetry events"
        thread.start()
    }

    /// True once a write failed and the sink stopped writing.
    public var isBroken: Bool {
        condition.lock()
        defer { condition.unlock() }
        return broken
    }

    /// Queues each event as one line, in the order given; returns at once.
    public func deliver(_ events: [Event]) async {
        guard !events.isEmpty else { return }
        var text = ""
        for event in events { text += event.jsonLine + "\n" }
        if enqueue(Array(text.utf8)) {
            logger?.warning(
                "event output is not being read: events are not printed until it is; they are still stored in the database"
            )
        }
    }

    /// Queues `bytes` unless the output failed or too much waits already; true when that starts
    /// an episode of dropped lines.
    private func enqueue(_ bytes: [UInt8]) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !broken else { return false }
        guard queuedBytes + bytes.count <= Self.maximumQueuedBytes else {
            defer { dropping = true }
            return !dropping
        }
        dropping = false
        queue.append(bytes)
        queuedBytes += bytes.count
        condition.signal()
        return false
    }

    /// Waits until every queued line has been written or the output failed, at most `timeout`
    /// (a reader that never reads would hold an exit forever).
    ///
    /// - Returns: True when nothing is left to write.
    @discardableResult
    public func flush(timeout: Duration = .seconds(3600)) -> Bool {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty && !broken {
            guard condition.wait(until: deadline) else { return queue.isEmpty || broken }
        }
        return true
    }

    /// The writer thread: takes what is queued and writes it, outside the lock. It lives as long
    /// as the process (one sink per process).
    private func writeLoop() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let batch = queue
            condition.unlock()
            var failure: Int32?
            for bytes in batch where failure == nil { failure = Self.write(bytes, to: fileDescriptor) }
            if let failure {
                // Logged before the sink reads as broken and a flush returns: the line is there
                // by the time anyone can see that the output closed.
                let reason = String(cString: strerror(failure))
                logger?.error(
                    "event output closed (\(reason)): events are no longer printed; they are still stored in the database"
                )
            }
            condition.lock()
            queue.removeFirst(batch.count)
            queuedBytes -= batch.reduce(0) { $0 + $1.count }
            if failure != nil {
                broken = true
                queue.removeAll()
                queuedBytes = 0
            }
            condition.broadcast()
            condition.unlock()
            if failure != nil { return }
        }
    }

    /// Writes all of `bytes`, retrying interrupted and partial writes; the `errno` of a failure.
    private static func write(_ bytes: [UInt8], to descriptor: Int32) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                #if canImport(Glibc)
                Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                #else
                Darwin.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                #endif
            }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += written
        }
        return nil
    }
}

/// A sink for commands that report events themselves (`poll --store`) or whose events are
/// history (`reprocess`): the events are in the database, and go nowhere else.
public struct DiscardingEventSink: EventSink {
    public init() {}

    public func deliver(_ events: [Event]) async {}
}
