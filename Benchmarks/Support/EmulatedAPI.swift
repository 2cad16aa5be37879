import FleetClient
import FleetConfiguration
import FleetEmulator
import FleetModel
import Logging

/// Serves `emulator` over loopback HTTP on a free port and runs `body` with an API client for
/// it (the emulator's own client credentials, `clock` for token expiry): the setup the
/// benchmarks that drive the daemon share. The client is shut down and the server stopped when
/// `body` returns or throws.
///
/// - Throws: What `body` throws; `CancellationError` when the server never reported its port.
public func withEmulatedAPI<T: Sendable>(
    _ emulator: Emulator, clock: any WallClock, logger: Logger,
    _ body: (HighMobilityClient) async throws -> T
) async throws -> T {
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = EmulatorServer.application(emulator: emulator, port: 0, logger: logger) { port in
        portContinuation.yield(port)
        portContinuation.finish()
    }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        defer { group.cancelAll() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        let client = HighMobilityClient(
            configuration: .init(
                baseURL: "http://127.0.0.1:\(port)", clientID: emulator.configuration.clientID,
                clientSecret: Secret(emulator.configuration.clientSecret)),
            clock: clock, logger: logger)
        let result: Result<T, any Error>
        do { result = .success(try await body(client)) } catch { result = .failure(error) }
        try await client.shutdown()
        return try result.get()
    }
}

/// The daemon's configuration for `emulator`'s fleet: its client id (the client itself comes
/// from ``withEmulatedAPI(_:clock:logger:_:)``), every one of its VINs, the database at
/// `databasePath`; the rest at their defaults for the benchmark to set.
public func daemonConfiguration(for emulator: EmulatorConfiguration, databasePath: String) -> DaemonConfiguration {
    var configuration = DaemonConfiguration(
        api: .init(baseURL: "http://127.0.0.1", clientID: emulator.clientID, clientSecret: .literal(Secret(""))),
        databasePath: databasePath)
    configuration.vehicles = emulator.vins
    return configuration
}

/// A logger that prints only critical messages: a benchmark's output is its figures.
public func quietLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
}
