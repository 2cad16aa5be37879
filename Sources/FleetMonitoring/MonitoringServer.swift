import FleetDaemon
import Foundation
import Hummingbird
import Logging
import Prometheus
import Synchronization

/// The operator's endpoint (`metrics.listen`): `GET /metrics` in the Prometheus text format
/// (every swift-metrics counter, gauge and timer of the process, from `registry`) and
/// `GET /healthz`: 200 `ok` while the polling loop turns and the database takes a write, 503
/// with the reason otherwise (an answer within 3 s whatever the database does); the body's
/// second line is the version (`fleet-telemetry 0.17.0`), also in the `Server` header.
public enum MonitoringServer {
    /// Builds the Hummingbird application; run it as a service of the daemon's group.
    ///
    /// - Parameter unhealthyReason: `nil` when healthy (``PollingService/unhealthyReason()``).
    public static func application(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        unhealthyReason: @escaping @Sendable () async -> String?, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.on("/healthz", method: .head) { _, _ -> Response in
            let reason = await firstAnswer(of: unhealthyReason, within: .seconds(3))
            return Response(status: reason == nil ? .ok : .serviceUnavailable)
        }
        router.get("/healthz") { _, _ -> Response in
            let reason = await firstAnswer(of: unhealthyReason, within: .seconds(3))
            let status: HTTPResponse.Status = reason == nil ? .ok : .serviceUnavailable
            return Response(
                status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        string: (reason ?? "ok") + "\nfleet-telemetry \(FleetTelemetryVersion.current)\n")))
        }
        return Application(
            router: router,
            configuration: .init(
                address: .hostname(host, port: port), serverName: "fleet-telemetry/\(FleetTelemetryVersion.current)"),
            logger: logger)
    }

    /// `check`'s answer, or a reason when it gives none within `limit`: the check goes on in the
    /// background (a store busy for 30 s must not hold the health request).
    static func firstAnswer(
        of check: @escaping @Sendable () async -> String?, within limit: Duration
    ) async -> String? {
        await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            let once = Once(continuation)
            Task { once.resume(await check()) }
            Task {
                try? await Task.sleep(for: limit)
                once.resume("no answer from the daemon within \(limit) (the database may be locked by another process)")
            }
        }
    }
}

/// Resumes a continuation once, whichever caller comes first.
private final class Once: Sendable {
    private let continuation: Mutex<CheckedContinuation<String?, Never>?>
    init(_ continuation: CheckedContinuation<String?, Never>) { self.continuation = Mutex(continuation) }
    func resume(_ value: String?) {
        let taken = continuation.withLock { stored in
            defer { stored = nil }
            return stored
        }
        taken?.resume(returning: value)
    }
}
