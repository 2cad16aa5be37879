import Crypto
import FleetClient
@testable import FleetDaemon
import FleetEvents
import FleetModel
@testable import FleetStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MetricsTestKit
import Synchronization
import Testing

/// A webhook receiver on a free loopback port: it keeps every request and answers each with the
/// next scripted status (204 once the script is used up).
final class WebhookReceiver: Sendable {
    struct Request: Sendable {
        var id: String?
        var timestamp: String?
        var signature: String?
        var body: String
    }
    final class State: Sendable {
        let mutex = Mutex<(requests: [Request], script: [(Int, String?)])>(([], []))
    }
    private let state = State()
    private let task: Task<Void, any Error>
    let port: Int

    init(script: [(status: Int, retryAfter: String?)] = []) async throws {
        let ports = AsyncStream<Int>.makeStream()
        let router = Router()
        let state = self.state
        state.mutex.withLock { $0.script = script.map { ($0.status, $0.retryAfter) } }
        router.post("/hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let answer = state.mutex.withLock { state -> (Int, String?) in
                state.requests.append(
                    Request(
                        id: request.headers[HTTPField.Name("webhook-id")!],
                        timestamp: request.headers[HTTPField.Name("webhook-timestamp")!],
                        signature: request.headers[HTTPField.Name("webhook-signature")!], body: String(buffer: body)))
                return state.script.isEmpty ? (204, nil) : state.script.removeFirst()
            }
            var headers = HTTPFields()
            if let retryAfter = answer.1 { headers[.retryAfter] = retryAfter }
            return Response(status: .init(code: answer.0), headers: headers)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in ports.continuation.yield(channel.localAddress?.port ?? 0) },
            logger: Logger(label: "receiver"))
        task = Task { try await app.runService() }
        var found = 0
        for await port in ports.stream {
            found = port
            break
        }
        port = found
    }

    var requests: [Request] { state.mutex.withLock { $0.requests } }

    deinit { task.cancel() }
}

@Suite(.serialized) struct WebhookDeliveryTests {
    static let secretText = "whsec_" + Data((0..<24).map { UInt8($0) }).base64EncodedString()

    /// Two vehicles, two events each (door unlocked, then locked again).
    func storeWithEvents(sink: String, path: String) async throws -> TelemetryStore {
        let store = try TelemetryStore(path: path)
        await store.setOutboxSinks([OutboxSink(name: sink)])
        for vin in [VIN("1HMFT000000000001")!, VIN("1HMFT000000000002")!] {
            for (index, state) in ["locked", "unlocked", "locked"].enumerated() {
                let time = harnessStart.adding(milliseconds: Int64(index) * 60_000)
                _ = try await store.record(
                    PollRecord(vin: vin, requestedAt: time, receivedAt: time, httpStatus: 200, latencyMilliseconds: 5),
                    samples: [
                        Sample(
                            vin: vin, property: "doors.locks.lock_state", instance: "front_left", value: .text(state),
                            observedAt: time)
                    ], detector: EventRules())
            }
        }
        return store
    }

    func service(
        _ store: TelemetryStore, port: Int, clock: any WallClock, metrics: TestMetrics = TestMetrics()
    ) -> DeliveryService {
        DeliveryService(
            sinks: [
                .init(
                    name: "ops",
                    transport: WebhookSender(
                        url: "http://127.0.0.1:\(port)/hook", secret: WebhookSecret(Self.secretText)!),
                    maxAge: .seconds(86_400))
            ], store: store, clock: clock, logger: Logger(label: "delivery"), metrics: metrics)
    }

    func waitFor(_ count: Int, _ receiver: WebhookReceiver) async throws {
        let deadline = ContinuousClock.now + .seconds(15)
        while receiver.requests.count < count && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The receiver checks each request as the Standard Webhooks specification says, with its
    /// own HMAC-SHA256 of `id.timestamp.body`: every event arrives once, in order per vehicle.
    @Test func everyEventOnceInOrderAndSigned() async throws {
        let path = NSTemporaryDirectory() + "ft-webhook-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await storeWithEvents(sink: "ops", path: path)
        let receiver = try await WebhookReceiver()
        let clock = ManualWallClock(start: harnessStart.adding(milliseconds: 3_600_000))
        let delivery = Task { try await service(store, port: receiver.port, clock: clock).run() }
        try await waitFor(4, receiver)
        try await Task.sleep(for: .milliseconds(500))  // nothing more comes
        delivery.cancel()
        let requests = receiver.requests
        #expect(requests.count == 4)
        let key = SymmetricKey(data: Data((0..<24).map { UInt8($0) }))
        for request in requests {
            let id = try #require(request.id), timestamp = try #require(request.timestamp)
            let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).\(request.body)".utf8), using: key)
            #expect(request.signature == "v1," + Data(mac).base64EncodedString(), "signature of \(id)")
            #expect(Int64(timestamp) == clock.now().millisecondsSince1970 / 1000)
        }
        let stored = try await store.events()
        #expect(Set(requests.compactMap(\.id)) == Set(stored.map { "evt_\($0.id!)" }), "each once")
        #expect(requests.map(\.body).sorted() == stored.map(\.jsonLine).sorted(), "the daemon's own lines")
        for vin in ["1HMFT000000000001", "1HMFT000000000002"] {
            let ids = requests.filter { $0.body.contains(vin) }.compactMap { $0.id.flatMap { Int($0.dropFirst(4)) } }
            #expect(ids == ids.sorted(), "in order for \(vin)")
        }
        #expect(try await store.deliveries(sink: "ops", status: .delivered, limit: 10).count == 4)
    }

    /// A receiver that fails (503 without `Retry-After`, then refused connections while it is
    /// down) loses nothing: once it answers, every event arrives, each vehicle's in order.
    @Test func aReceiverDownForAWhileLosesNothing() async throws {
        let path = NSTemporaryDirectory() + "ft-webhook-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await storeWithEvents(sink: "ops", path: path)
        let receiver = try await WebhookReceiver(script: Array(repeating: (status: 503, retryAfter: nil), count: 3))
        let clock = ManualWallClock(start: harnessStart.adding(milliseconds: 3_600_000))
        let delivery = Task { try await service(store, port: receiver.port, clock: clock).run() }
        defer { delivery.cancel() }
        // Each failure backs off at most 1 s, 2 s, 4 s (full jitter) on the daemon's clock.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await !store.outboxDepth().isEmpty && ContinuousClock.now < deadline {
            clock.advance(by: .seconds(5))
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await store.outboxDepth().isEmpty, "every event delivered in the end")
        #expect(Set(receiver.requests.compactMap(\.id)).count == 4, "the 4 events, none lost")
        #expect(receiver.requests.count == 7, "3 refused, then the 4 events: \(receiver.requests.map { $0.id ?? "" })")
        for vin in ["1HMFT000000000001", "1HMFT000000000002"] {
            let ids = receiver.requests.filter { $0.body.contains(vin) }.compactMap {
                $0.id.flatMap { Int($0.dropFirst(4)) }
            }
            #expect(ids == ids.sorted(), "in order for \(vin), retries included: \(ids)")
        }
    }

    /// Deliveries are counted by sink and outcome, timed, and the outbox depth is a gauge.
    @Test func deliveriesAreMeasured() async throws {
        let path = NSTemporaryDirectory() + "ft-webhook-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await storeWithEvents(sink: "ops", path: path)
        let receiver = try await WebhookReceiver(script: [(status: 500, retryAfter: nil)])
        let clock = ManualWallClock(start: harnessStart.adding(milliseconds: 3_600_000))
        let metrics = TestMetrics()
        let delivery = Task { try await service(store, port: receiver.port, clock: clock, metrics: metrics).run() }
        defer { delivery.cancel() }
        let deadline = ContinuousClock.now + .seconds(20)
        while try await !store.outboxDepth().isEmpty && ContinuousClock.now < deadline {
            clock.advance(by: .seconds(5))
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .milliseconds(600))  // one more turn of the loop records the depth
        let counted = { (outcome: String) throws -> Int64 in
            try metrics.expectCounter("fleet_telemetry_deliveries_total", [("sink", "ops"), ("outcome", outcome)])
                .totalValue
        }
        #expect(try counted("delivered") == 4)
        #expect(try counted("failed") == 1)
        #expect(
            try metrics.expectTimer("fleet_telemetry_delivery_duration_seconds", [("sink", "ops")]).values.count == 5)
        #expect(try metrics.expectGauge("fleet_telemetry_outbox_depth", [("sink", "ops")]).lastValue == 0)
    }

    /// Events still in the outbox when the daemon stops are delivered after a restart: a new
    /// store and delivery service on the same file.
    @Test func undeliveredEventsGoOutAfterARestart() async throws {
        let path = NSTemporaryDirectory() + "ft-webhook-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do { _ = try await storeWithEvents(sink: "ops", path: path) }
        let reopened = try TelemetryStore(path: path)
        #expect(try await reopened.outboxDepth() == ["ops": 4])
        let receiver = try await WebhookReceiver()
        let clock = ManualWallClock(start: harnessStart.adding(milliseconds: 3_600_000))
        let delivery = Task { try await service(reopened, port: receiver.port, clock: clock).run() }
        defer { delivery.cancel() }
        try await waitFor(4, receiver)
        let deadline = ContinuousClock.now + .seconds(10)
        while try await !reopened.outboxDepth().isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(receiver.requests.count == 4 && Set(receiver.requests.compactMap(\.id)).count == 4)
    }

    /// A retry is never later than `max_age` after the detection: the last attempt is made
    /// then, and a failure at or after it is dead.
    @Test func retriesStopAtMaxAge() {
        let detected = harnessStart
        let maxAge = Duration.seconds(60)
        let early = DeliveryService.retryTime(
            after: detected.adding(.seconds(10)), detectedAt: detected, maxAge: maxAge, wait: .seconds(5))
        #expect(early == detected.adding(.seconds(15)))
        let capped = DeliveryService.retryTime(
            after: detected.adding(.seconds(50)), detectedAt: detected, maxAge: maxAge, wait: .seconds(300))
        #expect(capped == detected.adding(maxAge), "the last attempt at max_age, not 5 min later")
        #expect(
            DeliveryService.retryTime(
                after: detected.adding(maxAge), detectedAt: detected, maxAge: maxAge, wait: .seconds(1))
                == nil)
    }

    /// A 429 with `Retry-After: 30` is honoured: the event is not sent again before 30 s have
    /// passed on the daemon's clock, and the vehicle's next event waits behind it.
    @Test func aRefusalIsRetriedAfterItsRetryAfter() async throws {
        let path = NSTemporaryDirectory() + "ft-webhook-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await storeWithEvents(sink: "ops", path: path)
        _ = try await store.purge(vin: VIN("1HMFT000000000002")!)
        let receiver = try await WebhookReceiver(script: [(status: 429, retryAfter: "30")])
        let clock = ManualWallClock(start: harnessStart.adding(milliseconds: 3_600_000))
        let delivery = Task { try await service(store, port: receiver.port, clock: clock).run() }
        defer { delivery.cancel() }
        try await waitFor(1, receiver)
        try await Task.sleep(for: .seconds(1))
        #expect(receiver.requests.count == 1, "nothing before Retry-After, not even the next event")
        let waiting = try await store.deliveries(sink: "ops", status: .pending, limit: 10)
        #expect(waiting.first { $0.attempts == 1 }?.lastHTTPStatus == 429)
        clock.advance(by: .seconds(29))
        try await Task.sleep(for: .seconds(1))
        #expect(receiver.requests.count == 1, "29 s is not enough")
        clock.advance(by: .seconds(1))
        try await waitFor(3, receiver)
        let ids = receiver.requests.compactMap(\.id)
        #expect(ids.count == 3 && ids[0] == ids[1] && ids[2] != ids[0], "the same event again, then the next: \(ids)")
        // The last acknowledgement is recorded just after the receiver answered.
        let deadline = ContinuousClock.now + .seconds(10)
        while try await !store.outboxDepth().isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await store.outboxDepth().isEmpty)
    }
}
