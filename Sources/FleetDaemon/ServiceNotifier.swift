#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import FleetModel

/// Tells the service manager how the daemon is doing: the `sd_notify(3)` protocol, one datagram
/// of `KEY=VALUE` lines to the Unix socket named by `NOTIFY_SOCKET` (a path, or `@name` in the
/// abstract namespace). No Swift package implements it; it is a dozen lines of socket calls.
///
/// Messages the daemon sends: `READY=1` once the database is open and the schedule loaded,
/// `STATUS=` a one-line summary, `WATCHDOG=1` from the polling loop every half
/// ``watchdogInterval``, `RELOADING=1` and `STOPPING=1`. Without `NOTIFY_SOCKET` nothing is sent
/// and every call returns at once.
public struct ServiceNotifier: Sendable {
    /// The socket, `nil` when not run by a service manager that listens.
    public let socketPath: String?
    /// `WATCHDOG_USEC`, when it applies to this process (`WATCHDOG_PID` unset or ours).
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketPath = path
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if path != nil, forUs, let text = environment["WATCHDOG_USEC"], let micro = Int64(text), micro > 0 {
            watchdogInterval = .microseconds(micro)
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends nothing.
    public static let disabled = ServiceNotifier(environment: [:])

    /// Whether a service manager listens.
    public var isEnabled: Bool { socketPath != nil }

    /// How often the polling loop says it still turns: half of ``watchdogInterval``, and never
    /// more often than every 100 ms (a `WATCHDOG_USEC` of a few microseconds must not spin).
    public var watchdogPing: Duration? { watchdogInterval.map { max($0 / 2, .milliseconds(100)) } }

    /// Sends `lines` (`READY=1`, `STATUS=…`) as one datagram.
    ///
    /// Never waits: when the manager's queue is full the datagram is dropped (a manager that does
    /// not read must not stall the polling loop; the next STATUS or WATCHDOG follows).
    ///
    /// - Returns: False when no service manager listens or the datagram could not be sent (a
    ///   notification is advisory: a failure is not an error of the daemon).
    @discardableResult
    public func send(_ lines: [String]) -> Bool {
        guard let socketPath else { return false }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // the abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.enumerated() { buffer[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let message = Array(lines.map { $0.replacingNewlines() }.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(descriptor, message, message.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), socketAddress, length)
            }
        }
        return sent == message.count
    }

    /// Sends one line.
    @discardableResult
    public func send(_ line: String) -> Bool { send([line]) }
}

extension String {
    /// This text on one line (a `STATUS=` value must not start another field).
    fileprivate func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
