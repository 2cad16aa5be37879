import FleetDaemon
import FleetEvents
import FleetMQTT
import FleetModel
@testable import FleetStore
import Foundation
import Logging
import Testing

/// Events and state published to a real Mosquitto broker started by the test.
@Suite(.serialized) struct MQTTDeliveryTests {
    static let vins = [VIN("1HMFT000000000001")!, VIN("1HMFT000000000002")!]

    /// Two vehicles, each with its battery, range, charging, position and three lock readings
    /// (so two events: unlocked, then locked again).
    func storeWithEvents(
        path: String, locks: [String] = ["locked", "unlocked", "locked"]
    ) async throws
        -> TelemetryStore
    {
        let store = try TelemetryStore(path: path)
        await store.setOutboxSinks([OutboxSink(name: "mqtt")])
        for vin in Self.vins {
            for (index, state) in locks.enumerated() {
                let time = harnessStart.adding(milliseconds: Int64(index) * 60_000)
                var samples = [
                    Sample(
                        vin: vin, property: "doors.locks.lock_state", instance: "front_left", value: .text(state),
                        observedAt: time)
                ]
                if index == 0 {
                    samples += [
                        Sample(
                            vin: vin, property: "charging.battery_level", value: .number(81.5), unit: "percent",
                            observedAt: time),
                        Sample(
                            vin: vin, property: "charging.estimated_range", value: .number(312), unit: "kilometers",
                            observedAt: time),
                        Sample(vin: vin, property: "charging.status", value: .text("charging"), observedAt: time),
                        Sample(
                            vin: vin, property: "vehicle_location.coordinates.latitude", value: .number(52.52),
                            observedAt: time),
                        Sample(
                            vin: vin, property: "vehicle_location.coordinates.longitude", value: .number(13.405),
                            observedAt: time),
                    ]
                }
                _ = try await store.record(
                    PollRecord(vin: vin, requestedAt: time, receivedAt: time, httpStatus: 200, latencyMilliseconds: 5),
                    samples: samples, detector: EventRules())
            }
        }
        return store
    }

    func connection(_ broker: MosquittoBroker, prefix: String) throws -> MQTTConnection {
        try MQTTConnection(
            options: .init(
                host: "127.0.0.1", port: broker.port, clientID: "ft-test-\(UUID().uuidString.prefix(8))",
                keepAlive: 5, availabilityTopic: MQTTTopics(prefix: prefix).availability),
            logger: Logger(label: "mqtt"))
    }

    /// The connection's state service and the outbox's delivery loop, as `run` assembles them.
    func services(
        _ connection: MQTTConnection, _ store: TelemetryStore, prefix: String
    ) -> (
        MQTTStateService, DeliveryService
    ) {
        let clock = ManualWallClock(start: harnessStart.adding(milliseconds: 3_600_000))
        let topics = MQTTTopics(prefix: prefix)
        let state = MQTTStateService(
            connection: connection, topics: topics, vins: nil, homeAssistant: true, store: store, clock: clock,
            logger: Logger(label: "mqtt"))
        let delivery = DeliveryService(
            sinks: [
                .init(
                    name: "mqtt", transport: MQTTEventPublisher(connection: connection, topics: topics),
                    maxAge: .seconds(86_400))
            ], store: store, clock: clock, logger: Logger(label: "delivery"))
        return (state, delivery)
    }

    /// The connection's state service and the delivery loop, running until ``stop()``.
    struct Running {
        let connection: MQTTConnection
        let state: Task<Void, any Error>
        let delivery: Task<Void, any Error>

        /// Cancels both without waiting (the end of a test).
        func cancel() {
            delivery.cancel()
            state.cancel()
        }

        func stop() async {
            delivery.cancel()
            _ = await delivery.result
            state.cancel()
            _ = await state.result
        }
    }

    /// Connects to `broker` (prefix `ft`) and starts publishing `store`'s state and outbox.
    func start(_ broker: MosquittoBroker, _ store: TelemetryStore) throws -> Running {
        let connection = try connection(broker, prefix: "ft")
        let (state, delivery) = services(connection, store, prefix: "ft")
        return Running(
            connection: connection, state: Task { try await state.run() }, delivery: Task { try await delivery.run() })
    }

    func temporaryDatabase() -> String { NSTemporaryDirectory() + "ft-mqtt-\(UUID().uuidString).sqlite" }

    func remove(_ path: String) {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// Events arrive once each on `<prefix>/<vin>/events/<type>`, in order per vehicle and not
    /// retained; the state topics and the availability are retained; after the stop the broker
    /// holds `offline` and no event.
    @Test func eventsOnTheirTopicsStateRetained() async throws {
        let broker = try MosquittoBroker()
        try await broker.start()
        let path = temporaryDatabase()
        defer { remove(path) }
        let store = try await storeWithEvents(path: path)
        let subscriber = try MQTTSubscriber(broker: broker, topic: "ft/#")
        try await subscriber.subscribed(to: broker)
        let running = try start(broker, store)
        try await subscriber.wait { messages in
            messages.filter { $0.topic.contains("/events/") }.count >= 4
                && messages.contains { $0.topic == "ft/\(Self.vins[1].rawValue)/state/position" }
        }
        try await Task.sleep(for: .milliseconds(300))  // nothing more comes
        await running.stop()

        let stored = try await store.events()
        #expect(stored.count == 4)
        let events = subscriber.messages.filter { $0.topic.contains("/events/") }
        #expect(events.count == 4, "each once: \(events)")
        #expect(events.allSatisfy { !$0.retained })
        #expect(Set(events.map(\.payload)) == Set(stored.map(\.jsonLine)), "the daemon's own lines")
        for event in stored {
            #expect(events.contains { $0.topic == "ft/\(event.vin.rawValue)/events/\(event.type.rawValue)" })
        }
        for vin in Self.vins {
            let types = events.filter { $0.topic.hasPrefix("ft/\(vin.rawValue)/") }.map {
                $0.topic.split(separator: "/").last!
            }
            #expect(types == ["door_unlocked", "door_locked"], "in order for \(vin)")
        }
        #expect(try await store.outboxDepth().isEmpty)
        #expect(try await store.deliveries(sink: "mqtt", status: .delivered, limit: 10).count == 4)

        // What the broker keeps for a newcomer: the state and availability, never an event.
        let retained = try await MQTTSubscriber(broker: broker, topic: "ft/#", retainedOnly: true).finished()
        let byTopic = Dictionary(retained.map { ($0.topic, $0.payload) }, uniquingKeysWith: { $1 })
        let vin = Self.vins[0].rawValue
        #expect(byTopic["ft/availability"] == "offline", "said on stop")
        #expect(byTopic["ft/\(vin)/state/battery"] == "81.5")
        #expect(byTopic["ft/\(vin)/state/range"] == "312")
        #expect(byTopic["ft/\(vin)/state/locks"] == "locked")
        #expect(byTopic["ft/\(vin)/state/charging"] == "charging")
        #expect(byTopic["ft/\(vin)/state/position"] == #"{"latitude":52.52,"longitude":13.405}"#)
        #expect(byTopic["ft/\(vin)/state/last_seen"] == harnessStart.adding(milliseconds: 120_000).iso8601)
        #expect(!retained.contains { $0.topic.contains("/events/") }, "events are never retained")
        // Home Assistant discovery, retained too.
        let discovery = try await MQTTSubscriber(broker: broker, topic: "homeassistant/#", retainedOnly: true)
            .finished()
        let battery = try #require(
            discovery.first { $0.topic == "homeassistant/sensor/fleet_telemetry_\(vin.lowercased())/battery/config" })
        #expect(battery.payload.contains(#""state_topic":"ft/\#(vin)/state/battery""#))
        #expect(battery.payload.contains(#""availability_topic":"ft/availability""#))
        #expect(subscriber.messages.contains { $0.topic == "ft/availability" && $0.payload == "online" })
    }

    /// The broker restarted mid-run loses no event: events published before the stop reached
    /// the (persistent) subscriber, those detected while it was down waited in the outbox and
    /// went out once it was back.
    @Test func aBrokerRestartLosesNoEvent() async throws {
        let broker = try MosquittoBroker()
        try await broker.start()
        let path = temporaryDatabase()
        defer { remove(path) }
        let store = try await storeWithEvents(path: path)
        let subscriber = try MQTTSubscriber(broker: broker, topic: "ft/+/events/#")
        try await subscriber.subscribed(to: broker)
        let running = try start(broker, store)
        let connection = running.connection
        defer { running.cancel() }
        try await subscriber.wait { $0.count >= 4 }
        #expect(subscriber.messages.count == 4)

        try await broker.stop()
        let deadline = ContinuousClock.now + .seconds(10)
        while connection.isConnected && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!connection.isConnected)
        // Detected while the broker is down: unlocked and locked again, for each vehicle.
        for vin in Self.vins {
            for (index, lock) in ["unlocked", "locked"].enumerated() {
                let time = harnessStart.adding(milliseconds: Int64(3 + index) * 60_000)
                _ = try await store.record(
                    PollRecord(vin: vin, requestedAt: time, receivedAt: time, httpStatus: 200, latencyMilliseconds: 5),
                    samples: [
                        Sample(
                            vin: vin, property: "doors.locks.lock_state", instance: "front_left", value: .text(lock),
                            observedAt: time)
                    ], detector: EventRules())
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await store.outboxDepth() == ["mqtt": 4], "waiting in the outbox")

        let stored = try await store.events()
        #expect(stored.count == 8)
        let lines = Set(stored.map(\.jsonLine))
        try await broker.start()
        // At least once: a message in flight at the stop may come twice. The daemon's client
        // retries with a backoff of up to 30 s (libmosquitto's), and so does the subscriber.
        try await subscriber.wait(timeout: .seconds(120)) { Set($0.map(\.payload)).isSuperset(of: lines) }
        #expect(Set(subscriber.messages.map(\.payload)) == lines, "none lost")
        for vin in Self.vins {
            let ids = subscriber.messages.filter { $0.topic.hasPrefix("ft/\(vin.rawValue)/") }.compactMap {
                message -> Int64? in
                guard case .object(let object) = try? JSONParser.parse(Array(message.payload.utf8)) else { return nil }
                return object["id"]?.numberValue.map { Int64($0) }
            }
            var seen = Set<Int64>()
            let firsts = ids.filter { seen.insert($0).inserted }
            #expect(firsts == firsts.sorted(), "in order for \(vin), each at its first arrival")
        }
        let drained = ContinuousClock.now + .seconds(60)
        while try await !store.outboxDepth().isEmpty && ContinuousClock.now < drained {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await store.outboxDepth().isEmpty)
    }

    /// A broker that is down when the daemon starts is connected to once it is up (the client
    /// keeps trying), and the events that waited are published.
    @Test func aBrokerDownAtTheStartIsConnectedToLater() async throws {
        let broker = try MosquittoBroker()
        let path = temporaryDatabase()
        defer { remove(path) }
        let store = try await storeWithEvents(path: path)
        let running = try start(broker, store)
        let connection = running.connection
        defer { running.cancel() }
        try await Task.sleep(for: .milliseconds(1500))
        #expect(!connection.isConnected && connection.lastProblem?.contains("refused") == true)
        #expect(try await store.outboxDepth() == ["mqtt": 4], "nothing spent while the broker is down")
        #expect(try await store.deliveries(sink: "mqtt", status: .pending, limit: 10).allSatisfy { $0.attempts == 0 })
        try await broker.start()
        let deadline = ContinuousClock.now + .seconds(20)
        while try await !store.outboxDepth().isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await store.outboxDepth().isEmpty)
        #expect(connection.connects == 1)
    }

    /// `mqtts://` with a user name and password: the broker's certificate is checked against
    /// `ca_file`; a wrong password or an unknown CA is refused with the reason, and nothing is
    /// published.
    @Test func tlsWithAPassword() async throws {
        let broker = try MosquittoBroker(tls: true, users: ["fleet": "s3cret"])
        try await broker.start()
        func connect(password: String, caFile: String?) async throws -> MQTTConnection {
            let connection = try MQTTConnection(
                options: .init(
                    host: "localhost", port: broker.port, useTLS: true, caFile: caFile, username: "fleet",
                    password: password, clientID: "ft-tls-\(UUID().uuidString.prefix(8))", keepAlive: 5,
                    availabilityTopic: "ft/availability"),
                logger: Logger(label: "mqtt"))
            connection.start()
            let deadline = ContinuousClock.now + .seconds(3)
            while !connection.isConnected && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            return connection
        }
        let good = try await connect(password: "s3cret", caFile: broker.caFile)
        #expect(good.isConnected)
        try await good.publish(topic: "ft/x", payload: Array("1".utf8), retain: false, timeout: .seconds(5))
        good.stop()

        let wrong = try await connect(password: "guess", caFile: broker.caFile)
        #expect(!wrong.isConnected)
        #expect(wrong.lastProblem?.lowercased().contains("not authorized") == true, "\(wrong.lastProblem ?? "")")
        await #expect(throws: MQTTError.self) {
            try await wrong.publish(topic: "ft/x", payload: [], retain: false, timeout: .seconds(1))
        }
        wrong.stop()

        let untrusted = try await connect(password: "s3cret", caFile: nil)
        #expect(!untrusted.isConnected, "the system's CAs do not know the test CA")
        untrusted.stop()
    }

    /// The retained messages for a fleet's state are exactly the known values, and discovery
    /// follows them.
    @Test func stateMessagesCoverTheKnownValues() throws {
        var status = VehicleStatus(vin: Self.vins[0], health: "ok", status: "active")
        status.batteryPercent = 80
        status.locks = "unlocked"
        let messages = MQTTStateMessages(topics: MQTTTopics(prefix: "p"), homeAssistant: false).messages(for: [status])
        let vin = Self.vins[0].rawValue
        #expect(
            messages.mapValues { String(decoding: $0, as: UTF8.self) } == [
                "p/\(vin)/state/battery": "80", "p/\(vin)/state/locks": "unlocked", "p/\(vin)/state/health": "ok",
                "p/\(vin)/state/status": "active",
            ])
        let withDiscovery = MQTTStateMessages(topics: MQTTTopics(prefix: "p"), homeAssistant: true)
            .messages(for: [status])
        let lock = try #require(
            withDiscovery["homeassistant/binary_sensor/fleet_telemetry_\(vin.lowercased())/locks/config"])
        #expect(String(decoding: lock, as: UTF8.self).contains(#""payload_on":"unlocked""#))
        #expect(withDiscovery.count == 8)
    }
}
