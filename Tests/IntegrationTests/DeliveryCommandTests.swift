import FleetEmulator
import FleetModel
@testable import FleetStore
import Foundation
import Testing

/// `fleet-telemetry run` with both kinds of sink configured, against the emulator, a webhook
/// receiver and a Mosquitto broker: what the daemon detects reaches both, and the stop says
/// `offline`.
extension CommandLineTests {
    @Test func runDeliversToAWebhookAndMQTT() async throws {
        let broker = try MosquittoBroker()
        try await broker.start()
        let receiver = try await WebhookReceiver()
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.script(
                vin,
                steps: [
                    ["charging": ["status": .string("not_charging")]],
                    ["charging": ["status": .string("charging")]],
                    ["charging": ["status": .string("charging_complete")]],
                ])
            let subscriber = try MQTTSubscriber(broker: broker, topic: "ft/#")
            try await subscriber.subscribed(to: broker)
            let secretFile = NSTemporaryDirectory() + "ft-whsec-\(UUID().uuidString)"
            try WebhookDeliveryTests.secretText.write(toFile: secretFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: secretFile) }
            let daemon = try DaemonProcess(
                h, vehicles: [vin],
                extra: """
                    sinks:
                      webhooks:
                        - name: ops
                          url: http://127.0.0.1:\(receiver.port)/hook
                          secret: {file: \(secretFile)}
                          types: [charging_completed]
                      mqtt:
                        url: mqtt://127.0.0.1:\(broker.port)
                        prefix: ft
                    """)
            defer { withExtendedLifetime(daemon) {} }
            // Each scripted answer must carry a newer timestamp than the one before.
            let clock = h.clock
            let ticking = Task {
                while !Task.isCancelled {
                    clock.advance(by: .seconds(1))
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            defer { ticking.cancel() }
            try await subscriber.wait { messages in
                messages.contains { $0.topic == "ft/\(vin.rawValue)/events/charging_completed" }
                    && messages.contains {
                        $0.topic == "ft/\(vin.rawValue)/state/charging" && $0.payload == "charging_complete"
                    }
            }
            try await waitUntil { receiver.requests.count >= 1 }
            // No more changes; the stop comes once the outbox is empty.
            ticking.cancel()
            try await Task.sleep(for: .seconds(1.5))
            let database = daemon.database
            try await waitUntil {
                (try? Connection(path: database).scalarInt("SELECT count(*) FROM outbox WHERE status = 'pending'")) == 0
            }
            daemon.process.terminate()
            let log = try await daemon.exited()
            #expect(daemon.process.terminationStatus == 0, "\(log.suffix(600))")

            let store = try TelemetryStore(existingPath: daemon.database, readOnly: true)
            let stored = try await store.events()
            let events = subscriber.messages.filter { $0.topic.contains("/events/") }
            #expect(
                events.map(\.topic) == stored.map { "ft/\(vin.rawValue)/events/\($0.type.rawValue)" },
                "every stored event, once, in order: \(log.suffix(600))")
            let types = stored.map(\.type.rawValue)
            #expect(
                (types.firstIndex(of: "charging_started") ?? .max) < (types.lastIndex(of: "charging_completed") ?? -1))
            #expect(events.allSatisfy { !$0.retained })
            let completed = stored.filter { $0.type == .chargingCompleted }
            #expect(receiver.requests.count == completed.count, "only the type the webhook asked for")
            #expect(receiver.requests.allSatisfy { $0.body.contains(#""type":"charging_completed""#) })
            #expect(subscriber.messages.contains { $0.topic == "ft/availability" && $0.payload == "online" })
            #expect(subscriber.messages.last { $0.topic == "ft/availability" }?.payload == "offline", "said on stop")
            #expect(log.contains("delivering events to webhook ops, MQTT mqtt://127.0.0.1:\(broker.port)"))

            #expect(try await store.deliveries(sink: "mqtt", status: .delivered, limit: 100).count == stored.count)
            #expect(try await store.deliveries(sink: "ops", status: .delivered, limit: 100).count == completed.count)
        }
    }
}
