import FleetClient
import FleetConfiguration
import FleetMQTT
import FleetModel
import FleetStore
import Foundation
import Logging
import Metrics
import ServiceLifecycle

extension Daemon {
    /// The one assembly of event delivery: sets the store's outbox sinks (so that the events of
    /// every poll from now on are queued in its transaction) and returns the services that
    /// deliver them: the MQTT connection with its state topics, then the delivery loop of every
    /// sink, in the order the service group must run them (it stops them in reverse). Empty when
    /// no sink is configured.
    ///
    /// - Throws: ``MQTTError`` when the MQTT client cannot be set up (a CA file it cannot read).
    public static func deliveryServices(
        configuration: DaemonConfiguration, secrets: SinkSecrets, store: TelemetryStore, clock: any WallClock,
        logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory
    ) async throws -> [any Service] {
        var outboxSinks = configuration.webhooks.map { OutboxSink(name: $0.name, types: $0.types, vins: $0.vins) }
        var sinks: [DeliveryService.Sink] = configuration.webhooks.compactMap { webhook in
            secrets.webhooks[webhook.name].map {
                .init(
                    name: webhook.name,
                    transport: WebhookSender(url: webhook.url, secret: $0, timeout: webhook.timeout),
                    maxAge: webhook.maxAge)
            }
        }
        var services: [any Service] = []
        if let mqtt = configuration.mqtt {
            let topics = MQTTTopics(prefix: mqtt.prefix)
            let connection = try MQTTConnection(
                options: .init(
                    host: mqtt.url.host, port: mqtt.url.port, useTLS: mqtt.url.useTLS, caFile: mqtt.caFile,
                    username: mqtt.username, password: secrets.mqttPassword?.value,
                    clientID: mqtt.clientID ?? defaultClientID(), keepAlive: Int(mqtt.keepAlive.milliseconds / 1000),
                    availabilityTopic: topics.availability),
                logger: logger)
            outboxSinks.append(OutboxSink(name: DaemonConfiguration.MQTT.sinkName, types: mqtt.types, vins: mqtt.vins))
            sinks.append(
                .init(
                    name: DaemonConfiguration.MQTT.sinkName,
                    transport: MQTTEventPublisher(connection: connection, topics: topics, timeout: mqtt.timeout),
                    maxAge: mqtt.maxAge))
            services.append(
                MQTTStateService(
                    connection: connection, topics: topics, vins: mqtt.vins, homeAssistant: mqtt.homeAssistant,
                    store: store, clock: clock, logger: logger, metrics: metrics))
        }
        await store.setOutboxSinks(outboxSinks)
        let configured = Set(outboxSinks.map(\.name))
        for (name, pending) in (try? await store.outboxDepth()) ?? [:] where !configured.contains(name) {
            logger.warning(
                "the outbox holds \(pending) undelivered events for sink \(name), which is no longer configured; they wait until it is again (or see `fleet-telemetry events deliveries --sink \(name)`)"
            )
        }
        if !sinks.isEmpty {
            services.append(DeliveryService(sinks: sinks, store: store, clock: clock, logger: logger, metrics: metrics))
        }
        return services
    }

    /// `fleet-telemetry-<host name>-<process id>`: distinct between hosts and between processes
    /// on one host (a broker disconnects a client when another connects with its id).
    static func defaultClientID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        return "fleet-telemetry-\(host.isEmpty ? "host" : host)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}
