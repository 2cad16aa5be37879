import ArgumentParser
import FleetConfiguration
import FleetScheduling
import Foundation

/// `fleet-telemetry check-config [PATH]`: validates a config file without running anything.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file (and that its client secret can be read) without running anything.",
        discussion:
            "Exit 0 with a one-line summary (and a warning on standard error for a secret file readable by every user), or 78 (EX_CONFIG) with every error found on standard error, each with its file, line and key. Run it before `systemctl reload` or `restart`."
    )

    @Argument(help: "The config file.")
    var path: String = "/etc/fleet-telemetry/config.yaml"

    func run() throws {
        let (loaded, errors) = ConfigLoader.validate(path: path)
        var all = errors
        if let loaded {
            do {
                _ = try loaded.clientConfiguration(file: path, environment: ProcessInfo.processInfo.environment)
            } catch let error as ConfigError {
                all.append(error)
            }
            all += SinkSecrets.problems(
                configuration: loaded, file: path, environment: ProcessInfo.processInfo.environment)
        }
        guard all.isEmpty, let configuration = loaded else {
            for error in all.sorted(by: { ($0.line ?? .max) < ($1.line ?? .max) }) {
                printError("fleet-telemetry: \(error)")
            }
            printError("fleet-telemetry: \(path): \(all.count) error\(all.count == 1 ? "" : "s")")
            throw ExitStatus.config
        }
        if let warning = configuration.api.clientSecret.exposureWarning(
            file: path, environment: ProcessInfo.processInfo.environment)
        {
            printError("fleet-telemetry: warning: \(warning)")
        }
        let vehicles =
            configuration.vehicles.isEmpty
            ? (configuration.fleet.sync ? "the fleet's approved vehicles" : "the vehicles connected by consent")
            : "\(configuration.vehicles.count) vehicle\(configuration.vehicles.count == 1 ? "" : "s")"
        let sync =
            configuration.fleet.sync && !configuration.vehicles.isEmpty ? " and the fleet's approved vehicles" : ""
        let cadence = PollSchedule.cadence(
            of: configuration.polling.policy, fleetSize: max(1, configuration.vehicles.count),
            format: DurationParser.format)
        let sinks =
            configuration.webhooks.map { "webhook \($0.name)" } + (configuration.mqtt.map { ["MQTT \($0.url)"] } ?? [])
        let delivery = sinks.isEmpty ? "" : "; events to \(sinks.joined(separator: ", "))"
        print(
            "\(path): OK: polls \(vehicles)\(sync) every \(DurationParser.format(configuration.polling.interval)) from \(configuration.api.baseURL) into \(configuration.databasePath) (\(cadence))\(delivery)"
        )
    }
}
