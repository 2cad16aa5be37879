import ArgumentParser
import FleetEmulator
import FleetModel
import Foundation
import Logging
import ServiceLifecycle

/// `fleet-telemetry emulator`: the built-in High Mobility API emulator, on its own.
struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Serve the High Mobility API emulator, so that `fleet-telemetry run` can be pointed at it."
    )

    @Option(name: .long, help: "TCP port (0 picks a free one).")
    var port: Int = 8080

    @Option(name: .long, help: "Address to bind.")
    var host: String = "127.0.0.1"

    @OptionGroup var simulation: SimulationOptions

    @Option(
        name: .long, help: "Vehicle-data body shape: auto_api (the live platform) or simplified (the OpenAPI document)."
    )
    var shape: String = "auto_api"

    @Option(name: .long, help: "The client id the emulator accepts.")
    var clientID: String = EmulatorConfiguration.defaultClientID

    @Option(name: .long, help: "Log level on standard error.")
    var logLevel: String = "info"

    @Option(
        name: .long,
        help:
            "An emulator config file (fleet, delays, rate limit, faults); replaces --vehicles, --seed, --time-scale, --shape and --client-id."
    )
    var config: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard !clientID.isEmpty else { throw ValidationError("--client-id must not be empty") }
        guard VehicleDataRenderer.Shape(rawValue: shape) != nil else {
            throw ValidationError("--shape must be auto_api or simplified")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        let logger = Logger(label: "fleet-telemetry.emulator")
        var configuration = simulation.emulatorConfiguration(
            clientID: clientID, shape: VehicleDataRenderer.Shape(rawValue: shape) ?? .autoAPI)
        var faults: [(vin: VIN?, fault: Emulator.Fault, count: Int)] = []
        var tokenFaults: [(fault: Emulator.Fault, count: Int)] = []
        if let config {
            do {
                let loaded = try EmulatorConfigFile.load(path: config)
                configuration = loaded.configuration
                faults = loaded.faults
                tokenFaults = loaded.tokenFaults
            } catch {
                printError("fleet-telemetry: \(error)")
                throw ExitStatus.config
            }
        }
        let emulator = Emulator(configuration: configuration)
        let clientID = configuration.clientID
        let clientSecret = configuration.clientSecret
        for item in faults { emulator.inject(item.fault, vin: item.vin, count: item.count) }
        for item in tokenFaults { emulator.injectTokenFault(item.fault, count: item.count) }
        let vins = emulator.configuration.vins
        let consentVINs = emulator.configuration.consentVINs
        let host = self.host
        let app = EmulatorServer.application(emulator: emulator, host: host, port: port, logger: logger) { bound in
            var text = "High Mobility API emulator on http://\(host):\(bound)\n"
            text += "client_id: \(clientID)   client secret: \(clientSecret)\n"
            text += "vehicles:\n" + vins.prefix(20).map { "  - \($0.rawValue)" }.joined(separator: "\n")
            if vins.count > 20 { text += "\n  … \(vins.count - 20) more (GET /emulator/vehicles)" }
            if !consentVINs.isEmpty {
                text +=
                    "\nvehicles only their owner's consent reaches (fleet-telemetry consent url, page /oauth/new):\n"
                text += consentVINs.prefix(20).map { "  - \($0.rawValue)" }.joined(separator: "\n")
            }
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        do {
            try await group.run()
        } catch {
            if String(describing: error).contains("Address already in use") {
                printError("fleet-telemetry: cannot listen on \(host):\(port): the port is already in use")
                throw ExitStatus.failure
            }
            throw error
        }
    }
}
