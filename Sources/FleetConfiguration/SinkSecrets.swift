import FleetClient
import Foundation

/// The secrets the `sinks` section names, read once at start (and checked by `check-config` and
/// before a reload): every webhook's signing secret and the MQTT password (and that the MQTT CA
/// file can be read).
public struct SinkSecrets: Sendable {
    /// By webhook name.
    public var webhooks: [String: WebhookSecret]
    /// `sinks.mqtt.password`, `nil` when none is configured.
    public var mqttPassword: Secret?

    /// Reads them from their sources.
    ///
    /// - Throws: ``ConfigError`` naming `sinks.webhooks[N].secret`, `sinks.mqtt.password` or
    ///   `sinks.mqtt.ca_file`.
    public init(configuration: DaemonConfiguration, file: String, environment: [String: String]) throws {
        webhooks = try configuration.webhookSecrets(file: file, environment: environment)
        mqttPassword = try configuration.mqttPassword(file: file, environment: environment)
        if let caFile = configuration.mqtt?.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw ConfigError(
                file: file, key: "sinks.mqtt.ca_file",
                message: "cannot read \(caFile)"
                    + (FileManager.default.fileExists(atPath: caFile) ? "" : ": no such file"))
        }
    }
}
