import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real Mosquitto broker (Debian's `mosquitto`, which `.ci/run` installs) on a free loopback
/// port, with persistence in a directory of its own, so that it can be stopped and started again
/// on the same port with its queued messages. Stopped and its directory removed when released.
final class MosquittoBroker {
    static let executable = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let subscriberExecutable = "/usr/bin/mosquitto_sub"

    /// Started from a thread of the test's pool, a child inherits that thread's blocked signals:
    /// mosquitto_sub would then ignore its -W alarm and SIGTERM. The launcher clears the mask and
    /// execs the program.
    static let launcher = URL(fileURLWithPath: "/usr/bin/python3")
    static let launcherArguments = [
        "-c",
        "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
    ]

    let directory: String
    let port: Int
    private var process: Process?

    /// - Parameters:
    ///   - tls: Listen with TLS (a CA and a certificate for `localhost` made with openssl, the CA at
    ///     ``caFile``).
    ///   - users: User names and passwords; anonymous clients are refused when given.
    init(tls: Bool = false, users: [String: String] = [:]) throws {
        guard Self.executable != nil, FileManager.default.isExecutableFile(atPath: Self.subscriberExecutable) else {
            throw BrokerError("mosquitto is not installed: apt-get install mosquitto mosquitto-clients (.ci/run does)")
        }
        directory = NSTemporaryDirectory() + "ft-mqtt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        port = try Self.freePort()
        // Run as root, mosquitto would switch to its own user, which cannot write here.
        let user = getuid() == 0 ? "user root\n" : ""
        var security = "allow_anonymous \(users.isEmpty)\n"
        if tls {
            try Self.makeCertificates(in: directory)
            security +=
                "cafile \(directory)/ca.pem\ncertfile \(directory)/server.pem\nkeyfile \(directory)/server.key\n"
        }
        if !users.isEmpty {
            try users.map { "\($0.key):\($0.value)" }.joined(separator: "\n").appending("\n")
                .write(toFile: directory + "/passwords", atomically: true, encoding: .utf8)
            try Self.runTool("/usr/bin/mosquitto_passwd", ["-U", directory + "/passwords"])
            security += "password_file \(directory)/passwords\n"
        }
        try """
        \(user)listener \(port) 127.0.0.1
        \(security)
        persistence true
        persistence_location \(directory)/
        log_dest file \(directory)/broker.log
        log_type all

        """.write(toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
    }

    deinit {
        if let process, process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts the broker and returns once it accepts connections.
    func start() async throws {
        let process = Process()
        process.executableURL = Self.launcher
        process.arguments = Self.launcherArguments + [Self.executable!, "-c", directory + "/mosquitto.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(10)
        while !Self.accepts(port: port) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                throw BrokerError("mosquitto did not start on port \(port): \(log)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Stops the broker (SIGTERM: it saves its persistence file) and waits for its exit.
    func stop() async throws {
        guard let process else { return }
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        self.process = nil
    }

    /// The CA certificate a TLS broker's certificate is signed with.
    var caFile: String { directory + "/ca.pem" }

    /// A CA and a server certificate for `localhost` (and 127.0.0.1), signed by it.
    static func makeCertificates(in directory: String) throws {
        let openssl = "/usr/bin/openssl"
        try runTool(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fleet-telemetry test CA",
                "-keyout", directory + "/ca.key", "-out", directory + "/ca.pem",
            ])
        try runTool(
            openssl,
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", directory + "/server.key",
                "-out", directory + "/server.csr",
            ])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(
            toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        try runTool(
            openssl,
            [
                "x509", "-req", "-in", directory + "/server.csr", "-CA", directory + "/ca.pem", "-CAkey",
                directory + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile", directory + "/san.ext", "-out",
                directory + "/server.pem",
            ])
    }

    /// Runs a short tool to its end (a few hundred milliseconds at most).
    static func runTool(_ path: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BrokerError("\(path) \(arguments.first ?? "") failed") }
    }

    var log: String { (try? String(contentsOfFile: directory + "/broker.log", encoding: .utf8)) ?? "" }

    /// A port nobody listens on at the moment it is asked.
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw BrokerError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

struct BrokerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One message as `mosquitto_sub -F '%r|%t|%p'` prints it.
struct ReceivedMessage: Hashable {
    var retained: Bool
    var topic: String
    var payload: String
}

/// `mosquitto_sub` subscribed to `topic` with QoS 1 in a persistent session (`-c` with a fixed
/// client id), so that messages published while it was away (the broker restarted) reach it
/// once it is back. Its output goes to a file (never a pipe read on the cooperative pool).
final class MQTTSubscriber {
    let process = Process()
    let output: String
    let clientID = "sub-\(UUID().uuidString.prefix(8))"

    /// - Parameter retainedOnly: Print only the retained messages the broker holds, then exit.
    init(broker: MosquittoBroker, topic: String, retainedOnly: Bool = false) throws {
        output = broker.directory + "/sub-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.executableURL = MosquittoBroker.launcher
        var arguments =
            MosquittoBroker.launcherArguments + [
                MosquittoBroker.subscriberExecutable, "-h", "127.0.0.1", "-p", String(broker.port), "-t", topic, "-q",
                "1", "-F", "%r|%t|%p",
            ]
        if retainedOnly {
            arguments += ["--retained-only", "-W", "2"]
        } else {
            arguments += ["-c", "-i", clientID]
        }
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// Waits until the broker logged this subscriber's SUBSCRIBE.
    func subscribed(to broker: MosquittoBroker) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !broker.log.contains("Received SUBSCRIBE from \(clientID)") {
            guard ContinuousClock.now < deadline else { throw BrokerError("mosquitto_sub did not subscribe") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    var messages: [ReceivedMessage] {
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { return nil }
            return ReceivedMessage(retained: parts[0] == "1", topic: String(parts[1]), payload: String(parts[2]))
        }
    }

    /// Waits until `condition` holds for the messages so far (at most 20 s).
    func wait(timeout: Duration = .seconds(20), until condition: ([ReceivedMessage]) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(messages) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// Waits for a `retainedOnly` subscriber to exit and returns what it printed.
    func finished() async throws -> [ReceivedMessage] {
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return messages
    }
}
