import FleetMQTT
import FleetModel
import FleetStore
import Logging
import Metrics
import ServiceLifecycle

/// Runs the MQTT connection for as long as the daemon runs, and keeps each vehicle's latest
/// state on retained topics: `<prefix>/<vin>/state/battery` (percent), `range` (km), `locks`
/// (`locked`/`unlocked`), `charging` (`charging.status`), `position` (`{"latitude":…,"longitude":…}`,
/// degrees WGS 84), `health` (the scheduler's `ok`, `backoff`, …), `status` (polling status,
/// `active`, …) and `last_seen` (ISO 8601, UTC), the values of `fleet-telemetry status`.
///
/// Every ``period`` it reads the state and publishes what changed since the last publish; after
/// every (re)connect it publishes everything again, since a broker without persistence forgets
/// retained messages when it restarts. A value that became unknown, or a vehicle that left the
/// fleet, has its retained topic cleared (an empty retained message). With Home Assistant
/// discovery, each state topic also gets its retained `homeassistant/…/config`.
///
/// On graceful shutdown it says `offline` on the availability topic and disconnects, after the
/// delivery loop stopped (the service group stops services in reverse order).
public struct MQTTStateService: Service {
    /// How often the state is read and the changes published.
    public static let period: Duration = .seconds(2)

    let connection: MQTTConnection
    let topics: MQTTTopics
    let vins: Set<VIN>?
    let homeAssistant: Bool
    let store: TelemetryStore
    let clock: any WallClock
    let logger: Logger
    let metrics: any MetricsFactory

    /// - Parameters:
    ///   - vins: Only these vehicles' state (`sinks.mqtt.vins`); `nil` for every vehicle.
    ///   - homeAssistant: Publish Home Assistant MQTT discovery (`sinks.mqtt.home_assistant`).
    public init(
        connection: MQTTConnection, topics: MQTTTopics, vins: Set<VIN>?, homeAssistant: Bool,
        store: TelemetryStore, clock: any WallClock, logger: Logger,
        metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.connection = connection
        self.topics = topics
        self.vins = vins
        self.homeAssistant = homeAssistant
        self.store = store
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
    }

    /// Starts the connection, publishes the state until graceful shutdown, then says
    /// `offline` and disconnects. Never throws: a broker that is down is waited for.
    public func run() async throws {
        connection.start()
        let connected = Gauge(label: "fleet_telemetry_mqtt_connected", factory: metrics)
        var published: [String: [UInt8]] = [:]
        var seenConnects = 0
        var downSince: Timestamp? = clock.now()
        var warnedDown = false
        while !(Task.isShuttingDownGracefully || Task.isCancelled) {
            connected.record(connection.isConnected ? 1 : 0)
            if connection.isConnected {
                downSince = nil
                warnedDown = false
                if connection.connects != seenConnects {
                    seenConnects = connection.connects
                    published = [:]
                }
                do {
                    let statuses = try await store.status(now: clock.now()).filter { vins?.contains($0.vin) ?? true }
                    let wanted = MQTTStateMessages(topics: topics, homeAssistant: homeAssistant).messages(for: statuses)
                    for (topic, payload) in wanted where published[topic] != payload {
                        try connection.publishWithoutWaiting(topic: topic, payload: payload, retain: true)
                        published[topic] = payload
                    }
                    for topic in published.keys where wanted[topic] == nil {
                        try connection.publishWithoutWaiting(topic: topic, payload: [], retain: true)
                        published[topic] = nil
                    }
                } catch let error as MQTTError {
                    logger.debug("mqtt: state not published: \(error)")
                } catch {
                    logger.warning("mqtt: cannot read the vehicles' state: \(error)")
                }
            } else {
                let since = downSince ?? clock.now()
                downSince = since
                if !warnedDown, clock.now().millisecondsSince1970 - since.millisecondsSince1970 >= 30_000 {
                    warnedDown = true
                    logger.warning(
                        "mqtt: not connected to \(connection.options.host):\(connection.options.port) for 30 s (\(connection.lastProblem ?? "no answer")); events wait in the outbox"
                    )
                }
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.period) } } catch { break }
        }
        connected.record(0)
        connection.stop()
    }
}

/// The retained messages that describe the fleet's latest state (and, optionally, its Home
/// Assistant discovery), by topic: pure, so that what is published is tested without a broker.
public struct MQTTStateMessages: Sendable {
    /// The prefix the state topics are under.
    public var topics: MQTTTopics
    /// Adds `homeassistant/<component>/fleet_telemetry_<vin>/<name>/config` for each value.
    public var homeAssistant: Bool
    /// The discovery prefix Home Assistant listens on.
    public static let discoveryPrefix = "homeassistant"

    public init(topics: MQTTTopics, homeAssistant: Bool) {
        self.topics = topics
        self.homeAssistant = homeAssistant
    }

    /// Every state topic with a known value, and its payload.
    public func messages(for statuses: [VehicleStatus]) -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for status in statuses {
            for (name, value) in values(of: status) {
                result[topics.state(status.vin, name)] = Array(value.utf8)
                if homeAssistant, let (topic, config) = discovery(status.vin, name) {
                    result[topic] = Array(config.serialized(sortingKeys: false).utf8)
                }
            }
        }
        return result
    }

    /// The state values of one vehicle by topic name, as payload text.
    func values(of status: VehicleStatus) -> [(String, String)] {
        var values: [(String, String)] = []
        func number(_ value: Double?) -> String? { value.map { JSONValue.number($0).serialized } }
        if let battery = number(status.batteryPercent) { values.append(("battery", battery)) }
        if let range = number(status.rangeKm) { values.append(("range", range)) }
        if let locks = status.locks { values.append(("locks", locks)) }
        if let charging = status.charging { values.append(("charging", charging)) }
        if let latitude = status.latitude, let longitude = status.longitude {
            let position: JSONValue = .object(["latitude": .number(latitude), "longitude": .number(longitude)])
            values.append(("position", position.serialized(sortingKeys: false)))
        }
        if let health = status.health { values.append(("health", health)) }
        if let polling = status.status { values.append(("status", polling)) }
        if let lastSeen = status.lastSeen { values.append(("last_seen", lastSeen.iso8601)) }
        return values
    }

    /// Home Assistant's discovery topic and config for one state value.
    func discovery(_ vin: VIN, _ name: String) -> (String, JSONValue)? {
        let objectID = "fleet_telemetry_\(vin.rawValue.lowercased())"
        var config: [(String, JSONValue)] = [
            ("unique_id", .string("\(objectID)_\(name)")),
            ("availability_topic", .string(topics.availability)),
            (
                "device",
                .object([
                    "identifiers": .array([.string(vin.rawValue)]), "name": .string(vin.rawValue),
                    "manufacturer": .string("fleet-telemetry"),
                ])
            ),
        ]
        let component: String
        switch name {
        case "battery":
            component = "sensor"
            config += [
                ("name", .string("Battery")), ("device_class", .string("battery")),
                ("unit_of_measurement", .string("%")),
                ("state_class", .string("measurement")),
            ]
        case "range":
            component = "sensor"
            config += [
                ("name", .string("Range")), ("device_class", .string("distance")),
                ("unit_of_measurement", .string("km")),
                ("state_class", .string("measurement")),
            ]
        case "locks":
            // Home Assistant's lock class: "on" means unlocked.
            component = "binary_sensor"
            config += [
                ("name", .string("Locks")), ("device_class", .string("lock")), ("payload_on", .string("unlocked")),
                ("payload_off", .string("locked")),
            ]
        case "charging":
            component = "sensor"
            config += [("name", .string("Charging"))]
        case "position":
            component = "device_tracker"
            config += [("name", .string("Position")), ("json_attributes_topic", .string(topics.state(vin, name)))]
        case "health", "status":
            component = "sensor"
            config += [
                ("name", .string(name == "health" ? "Polling health" : "Polling status")),
                ("entity_category", .string("diagnostic")),
            ]
        case "last_seen":
            component = "sensor"
            config += [
                ("name", .string("Last seen")), ("device_class", .string("timestamp")),
                ("entity_category", .string("diagnostic")),
            ]
        default:
            return nil
        }
        if name != "position" { config.append(("state_topic", .string(topics.state(vin, name)))) }
        return (
            "\(Self.discoveryPrefix)/\(component)/\(objectID)/\(name)/config",
            .object(JSONObject(members: config.map { (key: $0.0, value: $0.1) }))
        )
    }
}
