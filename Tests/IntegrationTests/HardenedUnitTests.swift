import FleetEmulator
import FleetModel
@testable import FleetStore
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `systemd/run-hardened`: the unit's restrictions applied without systemd.
enum HardenedRunner {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("systemd/run-hardened").path

    /// Whether this machine lets the runner work: root, a kernel that allows a private mount and
    /// pid namespace (some container sandboxes forbid it), python3-seccomp and systemd-analyze
    /// (`.ci/run` installs both). Where it does not, the two tests below are skipped, saying so.
    static let available: Bool = {
        guard getuid() == 0 else { return false }
        for (tool, arguments) in [
            ("/usr/bin/unshare", ["--mount", "--pid", "--fork", "true"]),
            ("/usr/bin/python3", ["-c", "import seccomp"]), ("/usr/bin/systemd-analyze", ["--version"]),
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return false }
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { return false }
        }
        return true
    }()

    /// Runs `arguments` through the runner; its exit status and both outputs.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = NSTemporaryDirectory() + "ft-hardened-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}

extension CommandLineTests {
    /// The runner's restrictions are in force: a writable and executable mapping, a netlink socket,
    /// a write outside the state directory and a chown (`@chown` is in `@privileged`) all fail, as
    /// under the unit, while the private /tmp takes writes. Without this the daemon test below
    /// could pass with no restriction at all.
    @Test(.enabled(if: HardenedRunner.available, "needs root, mount namespaces, python3-seccomp, systemd-analyze"))
    func hardenedRunnerRefusesWhatTheUnitRefuses() throws {
        let probe = """
            import mmap, socket, os
            for name, attempt in [("wx", lambda: mmap.mmap(-1, 4096, prot=7)),
                                  ("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
                                  ("write", lambda: open("/etc/fleet-telemetry-probe", "w")),
                                  ("tmp", lambda: open("/tmp/own", "w").close()),
                                  ("chown own file", lambda: os.chown("/tmp/own", os.getuid(), os.getgid()))]:
                try:
                    attempt()
                    print(name, "allowed")
                except OSError as error:
                    print(name, error.errno)
            status = open("/proc/self/status").read()
            print("seccomp", "Seccomp:\\t2" in status, "nnp", "NoNewPrivs:\\t1" in status,
                  "caps", "CapEff:\\t0000000000000000" in status, "uid", os.getuid(), "pids", sorted(os.listdir("/proc")))
            """
        let result = try HardenedRunner.run(["--", "/usr/bin/python3", "-c", probe])
        #expect(result.status == 0, "\(result.output)")
        for expected in [
            "wx \(EPERM)", "netlink \(EAFNOSUPPORT)", "write \(EROFS)", "tmp allowed", "chown own file \(EPERM)",
            "seccomp True nnp True caps True uid 65534", "pids ['1', 'self', 'thread-self']",
        ] {
            #expect(result.output.contains(expected), "\(expected) in \(result.output)")
        }
    }

    /// The daemon, Swift runtime included, works under the unit's restrictions, with any call
    /// outside the unit's syscall filter killing it (`--deny-kills`): it polls, stores, tells the
    /// notification socket it is ready and stops cleanly on SIGTERM.
    @Test(.enabled(if: HardenedRunner.available, "needs root, mount namespaces, python3-seccomp, systemd-analyze"))
    func daemonRunsUnderTheUnitsRestrictions() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2)) { h in
            let directory = DaemonProcess.newDirectory()
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            // In the daemon's own directory: the runner gives the daemon a fresh /tmp. Both are
            // the service user's, as systemd's StateDirectory= makes them.
            let notify = try NotifySocket(path: directory + "/notify")
            #expect(chown(directory, 65534, 65534) == 0 && chown(notify.path, 65534, 65534) == 0)
            let daemon = try DaemonProcess(
                h, vehicles: h.emulator.configuration.vins, environment: ["NOTIFY_SOCKET": notify.path],
                directory: directory, wrapper: [HardenedRunner.path, "--rw", directory, "--deny-kills", "--"])
            defer { withExtendedLifetime(daemon) {} }
            var messages: [String] = []
            var polled = 0
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline && daemon.process.isRunning
                && (polled < 4 || !messages.contains(where: { $0.hasPrefix("READY=1") }))
            {
                try await Task.sleep(for: .milliseconds(200))
                messages += notify.receive()
                // Opened only once the daemon made the files: a root-owned one would lock it out.
                guard messages.contains(where: { $0.hasPrefix("READY=1") }) else { continue }
                let count = try? Connection(path: daemon.database).scalarInt("SELECT count(*) FROM polls")
                polled = Int((count ?? nil) ?? 0)
            }
            #expect(daemon.process.isRunning, "killed or stopped under the restrictions: \(daemon.log)")
            #expect(polled >= 4, "\(daemon.log)")
            #expect(messages.contains(where: { $0.hasPrefix("READY=1") }), "\(messages)")
            daemon.process.terminate()  // the runner passes SIGTERM on, as systemd sends it
            let log = try await daemon.exited()
            messages += notify.receive()
            #expect(daemon.process.terminationStatus == 0, "\(log)")
            #expect(messages.contains(where: { $0.hasPrefix("STOPPING=1") }), "\(messages)")
            #expect(log.contains("run-hardened: uid 65534"), "\(log)")
            let samples = try Connection(path: daemon.database).scalarInt("SELECT count(*) FROM samples")
            #expect((samples ?? 0) > 0)
        }
    }
}
