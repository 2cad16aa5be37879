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
    /// - Throws: The first of ``problems(configuration:file:environment:)``: a ``ConfigError``
    ///   naming `sinks.webhooks[N].secret`, `sinks.mqtt.password` or `sinks.mqtt.ca_file`.
    public init(configuration: DaemonConfiguration, file: String, environment: [String: String]) throws {
        if let first = Self.problems(configuration: configuration, file: file, environment: environment).first {
            throw first
        }
        webhooks = try configuration.webhookSecrets(file: file, environment: environment)
        mqttPassword = try configuration.mqttPassword(file: file, environment: environment)
    }

    /// Every secret that cannot be read or is malformed, and an unreadable `sinks.mqtt.ca_file`:
    /// all of them, for `check-config`.
    public static func problems(
        configuration: DaemonConfiguration, file: String, environment: [String: String]
    ) -> [ConfigError] {
        var problems: [ConfigError] = []
        for webhook in configuration.webhooks {
            var one = configuration
            one.webhooks = [webhook]
            do { _ = try one.webhookSecrets(file: file, environment: environment) } catch let error as ConfigError {
                problems.append(error)
            } catch {}
        }
        do { _ = try configuration.mqttPassword(file: file, environment: environment) } catch let error as ConfigError {
            problems.append(error)
        } catch {}
        if let caFile = configuration.mqtt?.caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            problems.append(
                ConfigError(
                    file: file, key: "sinks.mqtt.ca_file",
                    message: "cannot read \(caFile)"
                        + (FileManager.default.fileExists(atPath: caFile) ? "" : ": no such file")))
        }
        return problems
    }
}
