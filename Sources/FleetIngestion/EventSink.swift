import FleetModel
import Logging
import Synchronization

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
/// A descriptor that cannot be written (a pipe whose reader exited, as in `run | head -1`, a
/// full disk) is logged once and written no more; the daemon goes on polling and storing. So
/// that a closed pipe is an error (`EPIPE`) instead of the end of the process, creating a sink
/// makes the process ignore `SIGPIPE`.
public final class StdoutEventSink: EventSink {
    private let fileDescriptor: Int32
    private let logger: Logger?
    /// True once a write failed; taken while writing, so that two deliveries never interleave.
    private let broken = Mutex(false)

    /// - Parameters:
    ///   - fileDescriptor: Where the lines go (standard output unless a test says otherwise).
    ///   - logger: Where the one line about a failed write goes.
    public init(fileDescriptor: Int32 = STDOUT_FILENO, logger: Logger? = nil) {
        self.fileDescriptor = fileDescriptor
        self.logger = logger
        signal(SIGPIPE, SIG_IGN)
    }

    /// True once a write failed and the sink stopped writing.
    public var isBroken: Bool { broken.withLock { $0 } }

    /// Writes each event as one line, in the order given.
    public func deliver(_ events: [Event]) async {
        guard !events.isEmpty else { return }
        var text = ""
        for event in events { text += event.jsonLine + "\n" }
        let failure: Int32? = broken.withLock { broken in
            guard !broken else { return nil }
            let error = Self.write(Array(text.utf8), to: fileDescriptor)
            if error != nil { broken = true }
            return error
        }
        if let failure {
            let reason = String(cString: strerror(failure))
            logger?.error(
                "event output closed (\(reason)): events are no longer printed; they are still stored in the database")
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
