import FleetEmulator
import FleetModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `fleet-telemetry run` as a child process against a harness's emulator, with a directory of
/// its own holding its config, database and standard-error file (a file, not a pipe: a test
/// never blocks a thread of the cooperative pool reading it). Stopped and its directory removed
/// when released.
final class DaemonProcess {
    let process = Process()
    let directory: String
    let config: String
    let database: String
    let stderr: String
    private let port: Int

    /// - Parameters:
    ///   - polling: Extra lines of the `polling` section (indented), besides `interval: 1s`.
    ///   - extra: Extra top-level YAML.
    ///   - environment: Added to `HM_SECRET` and `PATH`.
    ///   - journal: Sets `JOURNAL_STREAM` to the standard-error file, as systemd does for the journal.
    ///   - directory: An existing directory to use (and remove at the end); a new one by default.
    ///   - wrapper: A command that runs the binary (`[runner, options..., "--"]`), or none.
    init(
        _ h: Harness, vehicles: [VIN], polling: String = "", extra: String = "",
        environment: [String: String] = [:], journal: Bool = false, directory: String? = nil,
        wrapper: [String] = []
    ) throws {
        if let directory {
            self.directory = directory
        } else {
            self.directory = DaemonProcess.newDirectory()
            try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: false)
        }
        config = self.directory + "/config.yaml"
        database = self.directory + "/telemetry.sqlite"
        stderr = self.directory + "/stderr"
        port = h.port
        try writeConfig(vehicles: vehicles, polling: polling, extra: extra)
        _ = FileManager.default.createFile(atPath: stderr, contents: nil)
        var environment = environment
        environment["HM_SECRET"] = EmulatorConfiguration.defaultClientSecret
        environment["PATH"] = "/usr/bin:/bin"
        if journal {
            var status = stat()
            _ = stat(stderr, &status)
            environment["JOURNAL_STREAM"] = "\(status.st_dev):\(status.st_ino)"
        }
        if let runner = wrapper.first {
            process.executableURL = URL(fileURLWithPath: runner)
            process.arguments = wrapper.dropFirst() + [CLI.binary.path, "run", "--config", config]
        } else {
            process.executableURL = CLI.binary
            process.arguments = ["run", "--config", config]
        }
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
        try process.run()
    }

    /// A fresh path in the temporary directory, not created.
    static func newDirectory() -> String { NSTemporaryDirectory() + "ft-daemon-\(UUID().uuidString)" }

    /// Writes (or rewrites, before a SIGHUP) the config file.
    func writeConfig(vehicles: [VIN], polling: String = "", extra: String = "") throws {
        try """
        api:
          base_url: http://127.0.0.1:\(port)
          client_id: \(EmulatorConfiguration.defaultClientID)
          client_secret:
            env: HM_SECRET
        database:
          path: \(database)
        polling:
          interval: 1s
        \(polling)
        vehicles:
        \(vehicles.map { "  - \($0.rawValue)" }.joined(separator: "\n"))
        \(extra)
        """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    /// Waits for the process to exit without blocking a thread; its standard error.
    func exited() async throws -> String {
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return log
    }

    /// Its standard error so far.
    var log: String { (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
