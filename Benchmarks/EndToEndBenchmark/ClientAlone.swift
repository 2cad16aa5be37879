import AsyncHTTPClient
import FleetClient
import FleetEmulator
import FleetModel
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Clock ticks per second, the unit of /proc/PID/stat times.
let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))

/// utime + stime of a process, in seconds.
func cpuSeconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After "pid (comm)": state is field 0, utime field 11, stime field 12.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / ticks
}

/// What one reference run of the HTTP layer alone measured.
struct ClientFigures {
    var requestsPerSecond: Double
    /// CPU of this process per request, µs.
    var clientMicroseconds: Double
    /// CPU of the emulator per request, µs (the same reference as in the daemon's runs).
    var emulatorMicroseconds: Double
    var failed: Int
}

/// Which HTTP layer a reference run drives.
enum ClientLayer {
    /// async-http-client itself: a GET with the bearer token, the body collected; nothing else.
    case asyncHTTPClient
    /// The daemon's `HighMobilityClient.vehicleData(vin:)`: tokens, timeouts, error mapping,
    /// over the same async-http-client.
    case fleetClient
    /// async-http-client on one event-loop thread, the requesting tasks running on that thread
    /// (task executor preference): no hop between the event loop and Swift's thread pool.
    case asyncHTTPClientOnEventLoop
}

/// CPU time of this process (user + system), in seconds.
private func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// The floor under the daemon's CPU per poll: vehicle-data requests against the emulator at
/// `base` from this process, with no parsing and no store, `concurrency` in flight, paced at
/// `rate` requests per second (or as fast as they go when `nil`). After `warmUp` seconds, counts
/// the requests completed and the CPU of this process and of the emulator over `seconds`.
func clientAlone(
    layer: ClientLayer, base: String, vehicles: Int, concurrency: Int, rate: Double?, warmUp: Double, seconds: Double,
    emulatorPID: Int32
) async throws -> ClientFigures {
    let vins = (1...vehicles).map { EmulatorConfiguration.vin(index: $0) }
    let configuration = ClientConfiguration(
        baseURL: base, clientID: EmulatorConfiguration.defaultClientID,
        clientSecret: Secret(EmulatorConfiguration.defaultClientSecret))
    let fleetClient = HighMobilityClient(configuration: configuration)
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let executor = EventLoopExecutor(eventLoop: group.next())
    let http =
        layer == .asyncHTTPClientOnEventLoop
        ? HTTPClient(eventLoopGroupProvider: .shared(group), configuration: HTTPClient.Configuration())
        : HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration())
    // A token for the raw requests, fetched once.
    var tokenRequest = HTTPClientRequest(url: base + "/v1/access_tokens")
    tokenRequest.method = .POST
    tokenRequest.headers.add(name: "Content-Type", value: "application/json")
    tokenRequest.body = .bytes(
        ByteBuffer(
            string: """
                {"grant_type":"client_credentials","client_id":"\(EmulatorConfiguration.defaultClientID)","client_secret":"\(EmulatorConfiguration.defaultClientSecret)"}
                """))
    let tokenResponse = try await http.execute(tokenRequest, timeout: .seconds(10))
    let tokenBody = try await tokenResponse.body.collect(upTo: 1 << 20)
    guard let token = (try? JSONParser.parse(Array(tokenBody.readableBytesView)))?["access_token"]?.stringValue else {
        throw CocoaError(.fileReadCorruptFile)
    }

    let clock = ContinuousClock()
    let start = clock.now
    let windowStart = start.advanced(by: .milliseconds(Int64(warmUp * 1000)))
    let windowEnd = windowStart.advanced(by: .milliseconds(Int64(seconds * 1000)))
    let counts = try await withThrowingTaskGroup(of: (completed: Int, failed: Int, cpu: (Double, Double)?).self) {
        group in
        // Samples the CPU of both processes at the window's edges.
        group.addTask {
            try await clock.sleep(until: windowStart)
            let before = (ownCPUSeconds(), cpuSeconds(pid: emulatorPID))
            try await clock.sleep(until: windowEnd)
            return (0, 0, (ownCPUSeconds() - before.0, cpuSeconds(pid: emulatorPID) - before.1))
        }
        for worker in 0..<concurrency {
            group.addTask {
                var completed = 0, failed = 0, sent = 0
                while true {
                    if let rate {
                        let slot = start.advanced(
                            by: .microseconds(Int64(Double(sent * concurrency + worker) / rate * 1e6)))
                        if slot > clock.now { try await clock.sleep(until: slot) }
                    }
                    if clock.now >= windowEnd { break }
                    let vin = vins[(sent * concurrency + worker) % vins.count]
                    sent += 1
                    var ok = false
                    switch layer {
                    case .asyncHTTPClient:
                        var request = HTTPClientRequest(url: base + "/v1/vehicle-data/autoapi-13/" + vin.rawValue)
                        request.headers.add(name: "Authorization", value: "Bearer " + token)
                        if let response = try? await http.execute(request, timeout: .seconds(30)),
                            let body = try? await response.body.collect(upTo: 4 << 20)
                        {
                            ok = response.status == .ok && body.readableBytes > 0
                        }
                    case .asyncHTTPClientOnEventLoop:
                        ok = await withTaskExecutorPreference(executor) {
                            var request = HTTPClientRequest(url: base + "/v1/vehicle-data/autoapi-13/" + vin.rawValue)
                            request.headers.add(name: "Authorization", value: "Bearer " + token)
                            guard let response = try? await http.execute(request, timeout: .seconds(30)),
                                let body = try? await response.body.collect(upTo: 4 << 20)
                            else { return false }
                            return response.status == .ok && body.readableBytes > 0
                        }
                    case .fleetClient:
                        if let response = try? await fleetClient.vehicleData(vin: vin) { ok = response.status == 200 }
                    }
                    let now = clock.now
                    if now >= windowStart && now < windowEnd {
                        if ok { completed += 1 } else { failed += 1 }
                    }
                }
                return (completed, failed, nil)
            }
        }
        var completed = 0, failed = 0
        var cpu = (0.0, 0.0)
        for try await result in group {
            completed += result.completed
            failed += result.failed
            if let measured = result.cpu { cpu = measured }
        }
        return (completed, failed, cpu)
    }
    try await fleetClient.shutdown()
    try await http.shutdown()
    try await group.shutdownGracefully()
    let requests = Double(max(counts.0, 1))
    return ClientFigures(
        requestsPerSecond: Double(counts.0) / seconds, clientMicroseconds: counts.2.0 / requests * 1e6,
        emulatorMicroseconds: counts.2.1 / requests * 1e6, failed: counts.1)
}
