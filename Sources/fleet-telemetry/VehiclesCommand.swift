import ArgumentParser
import FleetClient
import FleetModel

/// `fleet-telemetry vehicles`: the fleet clearance of the application.
struct VehiclesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vehicles",
        abstract: "List, register, show and remove the fleet's vehicles (Fleet Clearance API).",
        subcommands: [List.self, Add.self, Show.self, Remove.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the fleet's vehicles and their clearance status.")
        @OptionGroup var options: APIOptions

        func run() async throws {
            let vehicles = try await withClient(options) { _, client in try await client.fleetVehicles() }
            printVehicles(vehicles, json: options.json)
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a vehicle for clearance (it starts as pending).")
        @OptionGroup var options: APIOptions
        @Argument(help: "The VIN.") var vin: String
        @Option(name: .long, help: "The brand (e.g. sandbox, mercedes-benz, bmw).") var brand: String
        @Option(name: .long, help: "License plate (sent with the OpenAPI document's paths).") var licensePlate: String?
        @Option(name: .long, help: "A tag key=value (platform paths); repeatable.") var tag: [String] = []

        func validate() throws {
            _ = try parseVIN(vin)
            guard Brand.isValid(brand) else {
                throw ValidationError("--brand must be a brand name such as sandbox, mercedes-benz or bmw")
            }
            for item in tag where !item.contains("=") || item.hasPrefix("=") {
                throw ValidationError("--tag takes key=value, got \"\(item)\"")
            }
        }

        func run() async throws {
            let vin = try parseVIN(vin)
            var tags: [String: String] = [:]
            for item in tag {
                let parts = item.split(separator: "=", maxSplits: 1)
                tags[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            let request = FleetVehicle(vin: vin, brand: brand, status: .pending, tags: tags, licensePlate: licensePlate)
            let answers = try await withClient(options) { _, client in try await client.register([request]) }
            printVehicles(answers, json: options.json)
            if answers.contains(where: { $0.status == .error }) {
                printError(
                    "fleet-telemetry: registration of \(vin) failed: \(answers.first { $0.status == .error }?.description ?? "error")"
                )
                throw ExitStatus.failure
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one vehicle's clearance.")
        @OptionGroup var options: APIOptions
        @Argument(help: "The VIN.") var vin: String

        func validate() throws { _ = try parseVIN(vin) }

        func run() async throws {
            let vin = try parseVIN(vin)
            let vehicle = try await withClient(options) { _, client in try await client.fleetVehicle(vin: vin) }
            printVehicles([vehicle], json: options.json)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a vehicle from the fleet (revokes an approved clearance, cancels a pending one).")
        @OptionGroup var options: APIOptions
        @Argument(help: "The VIN.") var vin: String

        func validate() throws { _ = try parseVIN(vin) }

        func run() async throws {
            let vin = try parseVIN(vin)
            let vehicle = try await withClient(options) { _, client in try await client.remove(vin: vin) }
            printVehicles([vehicle], json: options.json)
        }
    }
}

/// Prints fleet vehicles as a table, or as JSON lines (one object per vehicle).
func printVehicles(_ vehicles: [FleetVehicle], json: Bool) {
    if json {
        // JSON lines, one vehicle per line, as every listing prints them.
        for vehicle in vehicles { printJSON(vehicle.json) }
    } else {
        printTable(["VIN", "BRAND", "STATUS", "TAGS"], vehicles.map(\.row))
    }
}

/// `fleet-telemetry eligibility VIN --brand B`.
struct EligibilityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eligibility",
        abstract: "Check whether a vehicle can be cleared for data access (Eligibility API)."
    )
    @OptionGroup var options: APIOptions
    @Argument(help: "The VIN.") var vin: String
    @Option(name: .long, help: "The brand (e.g. sandbox, mercedes-benz, bmw).") var brand: String

    func validate() throws {
        _ = try parseVIN(vin)
        guard Brand.isValid(brand) else {
            throw ValidationError("--brand must be a brand name such as sandbox, mercedes-benz or bmw")
        }
    }

    func run() async throws {
        let vin = try parseVIN(vin)
        let answer = try await withClient(options) { _, client in try await client.eligibility(vin: vin, brand: brand) }
        if options.json {
            var object: JSONObject = [
                "vin": .string(answer.vin.rawValue), "eligible": .bool(answer.eligible),
                "data_delivery": .array(answer.dataDelivery.map(JSONValue.string)),
            ]
            object["connectivity_status"] = answer.connectivityStatus.map(JSONValue.string) ?? .null
            object["primary_user_assigned"] = answer.primaryUserAssigned.map(JSONValue.bool) ?? .null
            if !answer.capabilities.isEmpty {
                object["capabilities"] = .array(answer.capabilities.map(JSONValue.string))
            }
            if let required = answer.clearanceRequired { object["clearance_required"] = .bool(required) }
            printJSON(.object(object))
        } else {
            printTable(
                ["VIN", "ELIGIBLE", "DATA_DELIVERY", "CONNECTIVITY"],
                [
                    [
                        answer.vin.rawValue, answer.eligible ? "yes" : "no",
                        answer.dataDelivery.isEmpty ? "-" : answer.dataDelivery.joined(separator: ","),
                        answer.connectivityStatus ?? "-",
                    ]
                ])
        }
    }
}
