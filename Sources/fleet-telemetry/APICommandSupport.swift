import ArgumentParser
import FleetClient
import FleetConfiguration
import FleetDaemon
import FleetModel
import Foundation
import Logging

/// Options of the commands that call the API once (`vehicles`, `eligibility`, `poll`).
struct APIOptions: ParsableArguments {
    @Option(name: .long, help: "The config file (api section: base URL, client id, client secret, paths).")
    var config: String = "/etc/fleet-telemetry/config.yaml"

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    /// Loads the config and makes a client; exits 78 with a one-line reason on a bad config.
    func makeClient() throws -> (DaemonConfiguration, HighMobilityClient) {
        do {
            let configuration = try ConfigLoader.load(path: config)
            let clientConfiguration = try configuration.clientConfiguration(
                file: config, environment: ProcessInfo.processInfo.environment)
            var logger = Logger(label: "fleet-telemetry")
            logger.logLevel = .error
            return (configuration, HighMobilityClient(configuration: clientConfiguration, logger: logger))
        } catch {
            printError("fleet-telemetry: \(error)")
            throw ExitStatus.config
        }
    }
}

/// Runs `body` with the client, shuts the client down, and turns an API error into one line on
/// standard error and exit status 1.
func withClient<T>(
    _ options: APIOptions, _ body: (DaemonConfiguration, HighMobilityClient) async throws -> T
) async throws -> T {
    let (configuration, client) = try options.makeClient()
    do {
        let result = try await body(configuration, client)
        try? await client.shutdown()
        return result
    } catch let error as APIError {
        try? await client.shutdown()
        if error.isCredentialsRejected {
            printError("fleet-telemetry: \(DaemonError.credentialsRejected(error.description))")
            throw ExitStatus.config
        }
        printError("fleet-telemetry: \(error)")
        throw ExitStatus.failure
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// Parses a VIN argument, or exits 64 with the reason.
func parseVIN(_ text: String) throws -> VIN {
    do {
        return try VIN(validating: text)
    } catch {
        throw ValidationError(error.description)
    }
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    // Control characters in stored values (an escape sequence, a newline) are shown, not obeyed.
    let rows = rows.map { row in
        row.map { cell in
            cell.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
                ? String(
                    String.UnicodeScalarView(
                        cell.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\u{FFFD}" : $0 }))
                : cell
        }
    }
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() where index < widths.count {
            widths[index] = max(widths[index], cell.count)
        }
    }
    // One string written once: a table of 10,000 vehicles prints in milliseconds.
    var text = ""
    func append(_ cells: [String]) {
        for (index, cell) in cells.enumerated() {
            text += cell
            if index < cells.count - 1 {
                text += String(
                    repeating: " ", count: max(0, (index < widths.count ? widths[index] : 0) - cell.count) + 2)
            }
        }
        text += "\n"
    }
    append(header)
    for row in rows { append(row) }
    writeStandardOutput(text)
}

/// Prints a JSON value on one line, object members in the order they were built (a table's
/// column order).
func printJSON(_ value: JSONValue) {
    writeStandardOutput(value.serialized(sortingKeys: false) + "\n")
}

extension FleetVehicle {
    var json: JSONValue {
        var object: JSONObject = [
            "vin": .string(vin.rawValue), "status": .string(status.rawValue),
            "tags": .object(JSONObject(strings: tags)),
        ]
        object["brand"] = brand.map(JSONValue.string) ?? .null
        if let licensePlate { object["license_plate"] = .string(licensePlate) }
        if let description { object["description"] = .string(description) }
        return .object(object)
    }

    var row: [String] {
        [
            vin.rawValue, brand ?? "-", status.rawValue,
            tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                + (description.map { " \($0)" } ?? ""),
        ]
    }
}
