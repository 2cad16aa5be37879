import ArgumentParser
import FleetClient
import FleetDaemon
import FleetEvents
import FleetModel
import FleetNormalizer
import FleetStore
import Logging

/// `fleet-telemetry poll VIN`: one request now, for checking a setup.
struct PollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poll",
        abstract: "Request one vehicle's data now and print the normalized samples (nothing is written unless --store)."
    )
    @OptionGroup var options: APIOptions
    @Argument(help: "The VIN.") var vin: String
    @Flag(name: .long, help: "Also write the samples, events and poll row to the database.") var store = false
    @Option(name: .long, help: "The SQLite database file (overrides database.path; with --store).") var database: String?

    func validate() throws { _ = try parseVIN(vin) }

    func run() async throws {
        let vin = try parseVIN(vin)
        let (configuration, client) = try options.makeClient()
        var telemetryStore: TelemetryStore?
        if store {
            do {
                try validateDatabasePath(database ?? configuration.databasePath)
                telemetryStore = try TelemetryStore(path: database ?? configuration.databasePath)
            } catch {
                try? await client.shutdown()
                printError("fleet-telemetry: \(error)")
                throw ExitCode(74)
            }
        }
        let response: VehicleDataResponse
        do {
            response = try await client.vehicleData(vin: vin)
        } catch {
            if let telemetryStore {
                let now = SystemWallClock().now()
                var record = PollRecord(vin: vin, requestedAt: now, receivedAt: now, httpStatus: error.status, latencyMilliseconds: 0, error: error.description, requestID: error.requestID)
                record.manual = true
                _ = try? await telemetryStore.record(record, samples: [], detector: EventRules())
            }
            try? await client.shutdown()
            printError("fleet-telemetry: \(error)")
            throw ExitCode(1)
        }
        let payload: NormalizedPayload
        do {
            payload = try Normalizer().normalize(body: response.body, vin: vin, receivedAt: response.receivedAt)
        } catch {
            try? await client.shutdown()
            printError("fleet-telemetry: \(error)")
            throw ExitCode(1)
        }
        var events: [Event] = []
        if let telemetryStore {
            var record = PollRecord(vin: vin, requestedAt: response.requestedAt, receivedAt: response.receivedAt, httpStatus: 200, latencyMilliseconds: response.latencyMilliseconds, requestID: payload.requestID, brand: payload.brand)
            record.manual = true
            do {
                events = try await telemetryStore.record(record, samples: payload.samples, detector: EventRules()).events
            } catch {
                try? await client.shutdown()
                printError("fleet-telemetry: could not store the poll: \(error)")
                throw ExitCode(74)
            }
        }
        try? await client.shutdown()
        if options.json {
            printJSON(.object([
                "vin": .string(vin.rawValue), "shape": .string(payload.shape.rawValue),
                "samples": .array(payload.samples.map { sample in
                    .object([
                        "property": .string(sample.property), "instance": .string(sample.instance),
                        "value": sample.value.number.map(JSONValue.number) ?? .string(sample.value.text ?? ""),
                        "unit": sample.unit.map(JSONValue.string) ?? .null, "observed_at": .string(sample.observedAt.iso8601),
                    ])
                }),
                "failures": .array(payload.failures.map { .object(["property": .string($0.property), "reason": .string($0.reason), "description": $0.description.map(JSONValue.string) ?? .null]) }),
                "stored": .bool(store), "events": .array(events.map { .string($0.jsonLine) }),
            ]))
        } else {
            printTable(["PROPERTY", "INSTANCE", "VALUE", "UNIT", "OBSERVED AT"], payload.samples.map {
                [$0.property, $0.instance.isEmpty ? "-" : $0.instance, $0.value.description, $0.unit ?? "-", $0.observedAt.iso8601]
            })
            for failure in payload.failures {
                printError("failed: \(failure.property): \(failure.reason)\(failure.description.map { " (\($0))" } ?? "")")
            }
            if store {
                printError("stored \(payload.samples.count) samples, \(events.count) events")
            } else {
                printError("nothing stored (use --store to write to the database)")
            }
        }
    }
}
