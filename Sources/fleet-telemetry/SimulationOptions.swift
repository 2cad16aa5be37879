import ArgumentParser
import FleetEmulator

/// The options that shape the emulator's simulated fleet, shared by `demo` and `emulator`.
struct SimulationOptions: ParsableArguments {
    @Option(name: .long, help: "Number of simulated vehicles.")
    var vehicles: Int = 5

    @Option(name: .long, help: "Seed of the simulation; the same seed gives the same fleet history.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Simulated seconds per wall-clock second (1440: a vehicle's day per minute).")
    var timeScale: Double = 1440

    func validate() throws {
        guard (1...100_000).contains(vehicles) else { throw ValidationError("--vehicles must be between 1 and 100000") }
        guard timeScale > 0, timeScale <= 1_000_000 else {
            throw ValidationError("--time-scale must be between 0 and 1000000")
        }
    }

    /// The emulator configuration these options describe.
    func emulatorConfiguration(
        clientID: String = EmulatorConfiguration.defaultClientID, shape: VehicleDataRenderer.Shape = .autoAPI
    ) -> EmulatorConfiguration {
        EmulatorConfiguration(
            vehicleCount: vehicles, seed: seed, timeScale: timeScale, clientID: clientID, shape: shape)
    }
}
