import CMosquitto
import Logging
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One MQTT connection to a broker through the Eclipse Mosquitto C library (libmosquitto), MQTT 5.
///
/// A thread of its own connects, keeps the connection alive (libmosquitto's loop) and reconnects
/// after a loss or a failed connect (1 s doubling to 30 s, with jitter); ``publish(topic:payload:retain:timeout:)`` waits for the broker's
/// PUBACK (QoS 1). The availability topic (``Options/availabilityTopic``) says `online` (retained)
/// after each connect, and the broker publishes the last will, `offline` (retained), when the
/// connection is lost without a goodbye; ``stop()`` says `offline` itself.
public final class MQTTConnection: Sendable {
    /// Where and how to connect.
    public struct Options: Sendable, Hashable {
        /// The broker's host name or address.
        public var host: String
        /// The broker's port (1883 for `mqtt://`, 8883 for `mqtts://` by default).
        public var port: Int
        /// TLS, verifying the broker's certificate and host name.
        public var useTLS: Bool
        /// The CA certificates (PEM) the broker's certificate is checked against; `nil` for the
        /// system's (`/etc/ssl/certs`).
        public var caFile: String?
        /// MQTT user name, or `nil` for none.
        public var username: String?
        /// MQTT password; never logged.
        public var password: String?
        /// The MQTT client identifier.
        public var clientID: String
        /// Keep-alive interval, seconds.
        public var keepAlive: Int
        /// Retained `online` after a connect, `offline` as the last will and on ``stop()``.
        public var availabilityTopic: String

        public init(
            host: String, port: Int, useTLS: Bool = false, caFile: String? = nil, username: String? = nil,
            password: String? = nil, clientID: String, keepAlive: Int = 30, availabilityTopic: String
        ) {
            self.host = host
            self.port = port
            self.useTLS = useTLS
            self.caFile = caFile
            self.username = username
            self.password = password
            self.clientID = clientID
            self.keepAlive = keepAlive
            self.availabilityTopic = availabilityTopic
        }
    }

    /// What the connection knows at a moment.
    struct State: ~Copyable {
        var connected = false
        /// Increased by each successful connect: a change tells a publisher the broker may have
        /// lost what it held (a broker without persistence restarted).
        var connects = 0
        /// Why the last connect attempt or the connection failed, for the log and errors.
        var lastProblem: String?
        /// Publishes waiting for their PUBACK, by message id.
        var waiting: [Int32: CheckedContinuation<Void, any Error>] = [:]
        /// The message id of each waiting call, by call.
        var calls: [UInt64: Int32] = [:]
        var nextCall: UInt64 = 0
        var started = false
        var stopped = false
        /// Whether a connect succeeded since the connection's thread last tried (resets its delay).
        var connectedSinceAttempt = false
        /// Whether the broker refused the connection since the thread last tried.
        var refusedSinceAttempt = false
        /// The problems logged since the last successful connect.
        var reported: Set<String> = []
    }

    /// Where and how it connects, as given.
    public let options: Options
    private let state = Mutex(State())
    // Unchecked: `stopping` and `threadEnded` are read and written only with `stopCondition` locked.
    private let stopCondition = NSCondition()
    nonisolated(unsafe) private var stopping = false
    nonisolated(unsafe) private var threadEnded = false
    private let logger: Logger
    // The library's handle; libmosquitto locks its own state, so calls from any thread are safe
    // once `mosquitto_threaded_set` (done by the connection's thread before it connects).
    nonisolated(unsafe) private let handle: OpaquePointer

    private static let libraryReady: Bool = {
        mosquitto_lib_init() == MOSQ_ERR_SUCCESS.rawValue
    }()

    /// Sets the connection up; nothing is sent before ``start()``.
    ///
    /// - Throws: ``MQTTError/library(code:detail:)`` when libmosquitto refuses an option (a CA file
    ///   it cannot read, an invalid client id).
    public init(options: Options, logger: Logger) throws(MQTTError) {
        guard Self.libraryReady, let handle = mosquitto_new(options.clientID, true, nil) else {
            throw .library(code: Int32(MOSQ_ERR_NOMEM.rawValue), detail: "cannot create an MQTT client")
        }
        self.handle = handle
        self.options = options
        self.logger = logger
        mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5)
        mosquitto_reconnect_delay_set(handle, 1, 30, true)
        let offline = Array("offline".utf8)
        try Self.check(
            mosquitto_will_set(handle, options.availabilityTopic, Int32(offline.count), offline, 1, true),
            "cannot set the last will")
        if options.username != nil || options.password != nil {
            try Self.check(
                mosquitto_username_pw_set(handle, options.username, options.password), "cannot set the user name")
        }
        if options.useTLS {
            try Self.check(
                mosquitto_tls_set(
                    handle, options.caFile, options.caFile == nil ? "/etc/ssl/certs" : nil, nil, nil, nil),
                "cannot use the CA certificates \(options.caFile ?? "/etc/ssl/certs")")
            try Self.check(mosquitto_tls_opts_set(handle, 1, nil, nil), "cannot require certificate verification")
        }
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_v5_callback_set(handle) { _, context, reason, _, _ in
            guard let context else { return }
            Unmanaged<MQTTConnection>.fromOpaque(context).takeUnretainedValue().connected(reason: reason)
        }
        mosquitto_disconnect_v5_callback_set(handle) { _, context, reason, _ in
            guard let context else { return }
            Unmanaged<MQTTConnection>.fromOpaque(context).takeUnretainedValue().disconnected(reason: reason)
        }
        mosquitto_publish_v5_callback_set(handle) { _, context, mid, reason, _ in
            guard let context else { return }
            Unmanaged<MQTTConnection>.fromOpaque(context).takeUnretainedValue().acknowledged(mid: mid, reason: reason)
        }
        mosquitto_log_callback_set(handle) { _, context, level, message in
            guard let context, let message, level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING) != 0 else { return }
            Unmanaged<MQTTConnection>.fromOpaque(context).takeUnretainedValue().problem(String(cString: message))
        }
    }

    deinit {
        mosquitto_destroy(handle)
    }

    /// Starts connecting, and reconnecting whenever the connection is lost or cannot be made
    /// (the broker down at the start, a name that does not resolve, a TLS handshake that
    /// fails), 1 s doubling to 30 s, until ``stop()``. The connection runs on a thread of its own.
    public func start() {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        // The thread keeps the connection alive until it ends.
        let thread = Thread { [self] in supervise() }
        thread.name = "fleet-telemetry mqtt"
        thread.start()
    }

    /// The connection's thread: connect, run libmosquitto's loop (which itself reconnects after
    /// an ordinary loss), and after a failure it does not retry (a refused connect, a DNS or TLS
    /// error) wait and connect again.
    private func supervise() {
        mosquitto_threaded_set(handle, true)
        var delay = 1.0
        while !stopRequested {
            let code = mosquitto_connect_bind_v5(
                handle, options.host, Int32(options.port), Int32(options.keepAlive), nil, nil)
            if code == MOSQ_ERR_SUCCESS.rawValue {
                let loop = mosquitto_loop_forever(handle, 1000, 1)
                if stopRequested { break }
                if loop != MOSQ_ERR_SUCCESS.rawValue { problem(Self.describe(loop)) }
            } else {
                problem(Self.describe(code))
            }
            if state.withLock({ $0.connectedSinceAttempt }) { delay = 1 }
            state.withLock { state in
                state.connectedSinceAttempt = false
                state.refusedSinceAttempt = false
            }
            wait(seconds: delay * Double.random(in: 0.8...1.2))
            delay = min(delay * 2, 30)
        }
        stopCondition.lock()
        threadEnded = true
        stopCondition.broadcast()
        stopCondition.unlock()
    }

    private var stopRequested: Bool {
        stopCondition.lock()
        defer { stopCondition.unlock() }
        return stopping
    }

    /// Sleeps up to `seconds`, less when ``stop()`` comes.
    private func wait(seconds: Double) {
        stopCondition.lock()
        defer { stopCondition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !stopping && stopCondition.wait(until: deadline) {}
    }

    /// Whether the broker accepted the connection and it has not been lost since.
    public var isConnected: Bool { state.withLock { $0.connected } }

    /// How many times the broker accepted a connection.
    public var connects: Int { state.withLock { $0.connects } }

    /// Why the connection is down, when it is and the library said.
    public var lastProblem: String? { state.withLock { $0.lastProblem } }

    /// Publishes `payload` on `topic` with QoS 1 and returns after the broker's PUBACK.
    ///
    /// - Parameters:
    ///   - retain: Whether the broker keeps it as the topic's last message (for state), or not
    ///     (for events).
    ///   - timeout: The longest wait for the PUBACK.
    /// - Throws: ``MQTTError/notConnected(_:)`` when not connected, ``MQTTError/timeout(_:)``
    ///   without a PUBACK in time, ``MQTTError/refused(reason:)`` when the broker refused it (MQTT 5
    ///   reason code ≥ 0x80, such as *not authorized*), ``MQTTError/library(code:detail:)`` for the
    ///   library's own errors, `CancellationError` when cancelled.
    public func publish(topic: String, payload: [UInt8], retain: Bool, timeout: Duration) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.publishAndWait(topic: topic, payload: payload, retain: retain) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw MQTTError.timeout(timeout)
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// Publishes with QoS 1 and does not wait for the PUBACK: for retained state, which is
    /// published again after every connect.
    ///
    /// - Throws: ``MQTTError`` when the library cannot queue it (not connected, too large).
    public func publishWithoutWaiting(topic: String, payload: [UInt8], retain: Bool) throws(MQTTError) {
        guard isConnected else { throw .notConnected(lastProblem) }
        try Self.check(
            mosquitto_publish_v5(handle, nil, topic, Int32(payload.count), payload, 1, retain, nil),
            "cannot publish on \(topic)")
    }

    /// Says `offline` on the availability topic, disconnects and ends the library's thread.
    /// Publishes still waiting fail.
    public func stop() {
        let wasStarted = state.withLock { state in
            defer { state.stopped = true }
            return state.started && !state.stopped
        }
        guard wasStarted else { return }
        if isConnected {
            // Queued ahead of the DISCONNECT, which the broker reads after it.
            try? publishWithoutWaiting(topic: options.availabilityTopic, payload: Array("offline".utf8), retain: true)
        }
        stopCondition.lock()
        stopping = true
        stopCondition.broadcast()
        stopCondition.unlock()
        mosquitto_disconnect_v5(handle, 0, nil)
        // The thread ends once the DISCONNECT is written; a connect still under way (a host that
        // does not answer) is not waited for beyond 2 s: the thread ends on its own after it.
        stopCondition.lock()
        let deadline = Date(timeIntervalSinceNow: 2)
        while !threadEnded && stopCondition.wait(until: deadline) {}
        stopCondition.unlock()
        let waiting = state.withLock { state in
            defer { state.waiting = [:] }
            state.connected = false
            return Array(state.waiting.values)
        }
        for continuation in waiting { continuation.resume(throwing: MQTTError.notConnected("stopped")) }
    }

    private func publishAndWait(topic: String, payload: [UInt8], retain: Bool) async throws {
        let call = state.withLock { state in
            defer { state.nextCall += 1 }
            return state.nextCall
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Queued and registered under one lock, so that a PUBACK cannot come first.
                let failure: (any Error)? = state.withLock { state in
                    guard state.connected else { return MQTTError.notConnected(state.lastProblem) }
                    if Task.isCancelled { return CancellationError() }
                    var mid: Int32 = 0
                    let code = mosquitto_publish_v5(handle, &mid, topic, Int32(payload.count), payload, 1, retain, nil)
                    guard code == MOSQ_ERR_SUCCESS.rawValue else {
                        return code == MOSQ_ERR_NO_CONN.rawValue
                            ? MQTTError.notConnected(state.lastProblem)
                            : MQTTError.library(code: code, detail: Self.describe(code))
                    }
                    state.waiting[mid] = continuation
                    state.calls[call] = mid
                    return nil
                }
                if let failure { continuation.resume(throwing: failure) }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let mid = state.calls.removeValue(forKey: call) else { return nil }
                return state.waiting.removeValue(forKey: mid)
            }
            continuation?.resume(throwing: CancellationError())
        }
        _ = state.withLock { $0.calls.removeValue(forKey: call) }
    }

    // MARK: - The library's callbacks (on its thread)

    private func connected(reason: Int32) {
        if reason == 0 {
            let first = state.withLock { state in
                state.connected = true
                state.connectedSinceAttempt = true
                state.connects += 1
                state.lastProblem = nil
                state.reported = []
                return state.connects == 1
            }
            logger.info("mqtt: connected to \(options.host):\(options.port)\(first ? "" : " again")")
            let online = Array("online".utf8)
            mosquitto_publish_v5(
                handle, nil, options.availabilityTopic, Int32(online.count), online, 1, true, nil)
        } else {
            problem(
                "the broker refused the connection: \(String(cString: mosquitto_reason_string(reason)))", refusal: true)
        }
    }

    private func disconnected(reason: Int32) {
        let wasConnected = state.withLock { state in
            defer { state.connected = false }
            return state.connected
        }
        guard reason != 0 else { return }
        let detail = "connection lost (\(Self.describe(reason)))"
        state.withLock { state in
            if !state.refusedSinceAttempt { state.lastProblem = detail }
        }
        if wasConnected {
            logger.warning("mqtt: \(detail); reconnecting, events wait in the outbox")
        }
    }

    private func acknowledged(mid: Int32, reason: Int32) {
        let continuation = state.withLock { $0.waiting.removeValue(forKey: mid) }
        if reason >= 0x80 {
            continuation?.resume(
                throwing: MQTTError.refused(reason: String(cString: mosquitto_reason_string(reason))))
        } else {
            continuation?.resume()
        }
    }

    /// A problem the library reported: logged when it is new, kept for errors.
    /// Each distinct problem is logged once until the next successful connect; a broker's
    /// refusal (`Not authorized`, …) stays the ``lastProblem`` over the protocol error that
    /// follows it.
    private func problem(_ detail: String, refusal: Bool = false) {
        let isNew = state.withLock { state in
            if refusal || !state.refusedSinceAttempt { state.lastProblem = detail }
            if refusal { state.refusedSinceAttempt = true }
            return state.reported.insert(detail).inserted
        }
        if isNew { logger.warning("mqtt: \(options.host):\(options.port): \(detail)") }
    }

    // MARK: - Errors

    private static func check(_ code: Int32, _ what: String) throws(MQTTError) {
        guard code == MOSQ_ERR_SUCCESS.rawValue else {
            throw .library(code: code, detail: "\(what): \(describe(code))")
        }
    }

    /// The library's text for one of its error codes (`errno`'s for `MOSQ_ERR_ERRNO`).
    static func describe(_ code: Int32) -> String {
        if code == MOSQ_ERR_ERRNO.rawValue, let text = strerror(errno) { return String(cString: text) }
        return String(cString: mosquitto_strerror(code))
    }
}

/// Why a publish failed.
public enum MQTTError: Error, Sendable, CustomStringConvertible {
    /// Not connected to the broker; the library's last word on why, when it said.
    case notConnected(String?)
    /// No PUBACK within the wait.
    case timeout(Duration)
    /// The broker answered with an MQTT 5 failure reason (`Not authorized`, `Quota exceeded`, …).
    case refused(reason: String)
    /// libmosquitto's own error (`MOSQ_ERR_…`).
    case library(code: Int32, detail: String)

    public var description: String {
        switch self {
        case .notConnected(let why): "not connected to the MQTT broker" + (why.map { ": \($0)" } ?? "")
        case .timeout(let wait): "no PUBACK from the MQTT broker within \(wait)"
        case .refused(let reason): "the MQTT broker refused the message: \(reason)"
        case .library(_, let detail): detail
        }
    }
}
