import FleetConfiguration
import FleetDaemon
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP (`systemctl reload`): re-reads the config file, validates it and applies it to the
/// running daemon without dropping state (``Daemon/reload(from:to:)``); `log_level` too. An
/// invalid file is logged with its file, line and key and the running config stays. systemd hears
/// `RELOADING=1` (with `MONOTONIC_USEC=`) before and `READY=1` after.
struct ReloadService: Service {
    let daemon: Daemon
    let path: String
    let initial: DaemonConfiguration
    let notifier: ServiceNotifier
    let logger: Logger

    func run() async throws {
        var current = initial
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            notifier.send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"])
            do {
                let new = try ConfigLoader.load(path: path)
                // Refused as `check-config` and the next start would refuse it: a secret that
                // cannot be read now would keep the service down after a restart.
                _ = try new.clientConfiguration(file: path, environment: ProcessInfo.processInfo.environment)
                _ = try SinkSecrets(configuration: new, file: path, environment: ProcessInfo.processInfo.environment)
                let outcome = await daemon.reload(from: current, to: new)
                LogLevelControl.set(new.logLevel)
                // What needs a restart keeps its running value: the next reload names it again.
                var running = new
                running.api = current.api
                running.databasePath = current.databasePath
                running.staleAfter = current.staleAfter
                running.repeatHeartbeat = current.repeatHeartbeat
                running.maxSizeMegabytes = current.maxSizeMegabytes
                running.fleet = current.fleet
                running.retention = current.retention
                running.polling.maxConcurrentRequests = current.polling.maxConcurrentRequests
                running.metricsListen = current.metricsListen
                running.webhooks = current.webhooks
                running.mqtt = current.mqtt
                current = running
                let applied = outcome.applied.isEmpty ? "no change" : outcome.applied.joined(separator: ", ")
                let later =
                    outcome.needRestart.isEmpty
                    ? "" : "; changed but applied only after a restart: " + outcome.needRestart.joined(separator: ", ")
                logger.notice("config reloaded from \(path): \(applied)\(later)")
            } catch {
                logger.error("config reload refused, the running config stays: \(error)")
            }
            notifier.send(["READY=1", "STATUS=" + (await daemon.polling.status)])
        }
    }

    /// `CLOCK_MONOTONIC` in microseconds, as `sd_notify` wants it with `RELOADING=1`.
    static func monotonicMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }
}
