import ArgumentParser
import FleetClient
import FleetConsent
import FleetDaemon
import FleetIngestion
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
    @Option(name: .long, help: "The SQLite database file (overrides database.path; with --store).") var database:
        String?

    func validate() throws { _ = try parseVIN(vin) }

    func run() async throws {
        let vin = try parseVIN(vin)
        let (configuration, client) = try options.makeClient()
        var ingestion: Ingestion?
        if store {
            do {
                let telemetryStore = try await Daemon.openStore(
                    path: database ?? configuration.databasePath, configuration: configuration)
                var logger = Logger(label: "fleet-telemetry")
                logger.logLevel = .error
                ingestion = Daemon.ingestion(
                    events: configuration.events, archiveRawDays: configuration.archiveRawDays, store: telemetryStore,
                    sink: DiscardingEventSink(), logger: logger)
            } catch {
                try? await client.shutdown()
                printError("fleet-telemetry: \(error)")
                throw ExitStatus.ioError
            }
        }
        let clock = SystemWallClock()
        let requestedAt = clock.now()
        let answer: Result<VehicleDataResponse, APIError>
        do {
            // A vehicle its owner connected is asked for with its own token (refreshed if due).
            let consent = ConsentTokens(
                file: GrantFile(path: configuration.consentStateFile), client: client, clock: SystemWallClock(),
                logger: Logger(label: "fleet-telemetry"))
            _ = try? await consent.reload()
            switch await consent.access(for: vin) {
            case nil: answer = .success(try await client.vehicleData(vin: vin))
            case .ready(let token)?: answer = .success(try await client.vehicleData(vin: vin, token: token))
            case .unavailable(let error, _)?: answer = .failure(error)
            case .pending?, .consentRequired?, .revoked?:
                printError("fleet-telemetry: \(vin)'s consent is pending or lost; see: fleet-telemetry consent list")
                throw ExitStatus.failure
            }
        } catch let error as APIError {
            answer = .failure(error)
        }
        let payload: NormalizedPayload
        var events: [Event] = []
        var samplesWritten = 0
        if let ingestion {
            // The one ingestion path, as a scheduled poll: configured rules, property failures,
            // privacy mode and the raw archive; the polls row is marked manual.
            let polled = await ingestion.ingest(
                vin: vin, requestedAt: requestedAt, answer: answer, failedAt: clock.now(), manual: true)
            guard polled.stored else {
                try? await client.shutdown()
                printError("fleet-telemetry: could not store the poll: \(polled.error ?? "unknown error")")
                throw ExitStatus.ioError
            }
            guard let read = polled.payload else {
                try? await client.shutdown()
                printError("fleet-telemetry: \(polled.error ?? "no data")")
                throw polled.failure == .credentialsRejected ? ExitStatus.config : ExitStatus.failure
            }
            payload = read
            events = polled.events
            samplesWritten = polled.samplesWritten
        } else {
            do {
                let response = try answer.get()
                payload = try Normalizer().normalize(body: response.body, vin: vin, receivedAt: response.receivedAt)
            } catch let error as APIError {
                try? await client.shutdown()
                printError("fleet-telemetry: \(error)")
                throw error.vehicleDataFailure == .credentialsRejected ? ExitStatus.config : ExitStatus.failure
            } catch {
                try? await client.shutdown()
                printError("fleet-telemetry: \(error)")
                throw ExitStatus.failure
            }
        }
        try? await client.shutdown()
        if options.json {
            printJSON(
                .object([
                    "vin": .string(vin.rawValue), "shape": .string(payload.shape.rawValue),
                    "samples": .array(
                        payload.samples.map { sample in
                            .object([
                                "property": .string(sample.property), "instance": .string(sample.instance),
                                "value": sample.value.number.map(JSONValue.number) ?? .string(sample.value.text ?? ""),
                                "unit": sample.unit.map(JSONValue.string) ?? .null,
                                "observed_at": .string(sample.observedAt.iso8601),
                            ])
                        }),
                    "failures": .array(
                        payload.failures.map {
                            .object([
                                "property": .string($0.property), "reason": .string($0.reason.rawValue),
                                "description": $0.description.map(JSONValue.string) ?? .null,
                            ])
                        }),
                    "stored": .bool(store), "samples_written": store ? .number(Double(samplesWritten)) : .null,
                    "events": .array(events.map(\.json)),
                ]))
        } else {
            printTable(
                ["PROPERTY", "INSTANCE", "VALUE", "UNIT", "OBSERVED_AT"],
                payload.samples.map {
                    [
                        $0.property, $0.instance.isEmpty ? "-" : $0.instance,
                        $0.value.number.map(tableNumber) ?? $0.value.description, $0.unit ?? "-",
                        $0.observedAt.iso8601,
                    ]
                })
            for failure in payload.failures {
                printError(
                    "failed: \(failure.property): \(failure.reason)\(failure.description.map { " (\($0))" } ?? "")")
            }
            if store {
                // What the polls row says: values unchanged since the last poll are not stored again.
                printError(
                    "stored \(counted(samplesWritten, "new sample")) of \(payload.samples.count) received "
                        + "(unchanged values are not stored again), \(counted(events.count, "event"))")
            } else {
                printError("nothing stored (use --store to write to the database)")
            }
        }
    }
}
