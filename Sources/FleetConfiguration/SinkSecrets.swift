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

    /// Reads them from their sources, each once.
    ///
    /// - Throws: The first of ``problems(configuration:file:environment:)``: a ``ConfigError``
    ///   naming `sinks.webhooks[N].secret`, `sinks.mqtt.password` or `sinks.mqtt.ca_file`.
    public init(configuration: DaemonConfiguration, file: String, environment: [String: String]) throws {
        let (secrets, problems) = Self.read(configuration: configuration, file: file, environment: environment)
        if let first = problems.first { throw first }
        self = secrets
    }

    /// Every secret that cannot be read or is malformed, and an unreadable `sinks.mqtt.ca_file`:
    /// all of them, for `check-config`.
    public static func problems(
        configuration: DaemonConfiguration, file: String, environment: [String: String]
    ) -> [ConfigError] {
        read(configuration: configuration, file: file, environment: environment).problems
    }

    /// One pass over the sources: what could be read, and every problem.
    private static func read(
        configuration: DaemonConfiguration, file: String, environment: [String: String]
    ) -> (secrets: SinkSecrets, problems: [ConfigError]) {
        var secrets = SinkSecrets(webhooks: [:], mqttPassword: nil)
        var problems: [ConfigError] = []
        func attempt(_ body: () throws -> Void) {
            do { try body() } catch let error as ConfigError { problems.append(error) } catch {
                problems.append(ConfigError(file: file, key: "sinks", message: String(describing: error)))
            }
        }
        for webhook in configuration.webhooks {
            attempt {
                secrets.webhooks[webhook.name] = try DaemonConfiguration.webhookSecret(
                    webhook, file: file, environment: environment)
            }
        }
        attempt { secrets.mqttPassword = try configuration.mqttPassword(file: file, environment: environment) }
        if let caFile = configuration.mqtt?.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            problems.append(
                ConfigError(
                    file: file, key: "sinks.mqtt.ca_file",
                    message: "cannot read \(caFile)"
                        + (FileManager.default.fileExists(atPath: caFile) ? "" : ": no such file")))
        }
        return (secrets, problems)
    }

    private init(webhooks: [String: WebhookSecret], mqttPassword: Secret?) {
        self.webhooks = webhooks
        self.mqttPassword = mqttPassword
    }
}
