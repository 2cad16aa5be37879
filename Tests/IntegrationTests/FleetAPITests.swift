import FleetClient
import FleetDaemon
import FleetEmulator
import FleetModel
import FleetStore
import Foundation
import Testing

let newVIN = VIN("1HMFT000000000042")!

@Suite(.serialized) struct FleetAPITests {
    /// Every endpoint of one path family against the emulator: token, eligibility, register,
    /// list, show, approval after the delay, vehicle data, remove, and the documented errors.
    @Test(arguments: PathFamily.allCases)
    func wholeFleetAPI(family: PathFamily) async throws {
        try await withHarness(emulator: .init(vehicleCount: 2, approvalDelay: .seconds(5)), family: family) { h in
            let eligibility = try await h.client.eligibility(vin: newVIN, brand: "sandbox")
            #expect(eligibility.eligible)
            #expect(eligibility.vin == newVIN)
            if family == .platform {
                #expect(eligibility.dataDelivery == ["pull", "push"])
                #expect(eligibility.connectivityStatus == "activated")
            } else {
                #expect(eligibility.clearanceRequired == true)
                #expect(!eligibility.capabilities.isEmpty)
            }

            let registered = try await h.client.register([
                FleetVehicle(
                    vin: newVIN, brand: "mercedes-benz", status: .pending, tags: ["depot": "north"],
                    licensePlate: "B-HM 42")
            ])
            #expect(registered.map(\.status) == [.pending])
            #expect(registered.first?.brand == "mercedes_benz", "brands are stored in one canonical form")

            let listed = try await h.client.fleetVehicles()
            #expect(Set(listed.map(\.vin)) == Set(h.emulator.configuration.vins + [newVIN]))
            #expect(listed.first { $0.vin == newVIN }?.status == .pending)

            // Not approved yet: vehicle data is refused.
            await #expect { _ = try await h.client.vehicleData(vin: newVIN) } throws: {
                ($0 as? APIError)?.status == 403
            }

            h.clock.advance(by: .seconds(5))
            #expect(try await h.client.fleetVehicle(vin: newVIN).status == .approved)
            let data = try await h.client.vehicleData(vin: newVIN)
            #expect(!data.body.isEmpty)

            let removed = try await h.client.remove(vin: newVIN)
            #expect(removed.status == (family == .platform ? .revoking : .revoked))
            await #expect { _ = try await h.client.remove(vin: newVIN) } throws: { ($0 as? APIError)?.status == 409 }
            h.clock.advance(by: .seconds(5))
            if family == .platform {
                #expect(try await h.client.fleetVehicle(vin: newVIN).status == .revoked)
            }
            await #expect { _ = try await h.client.fleetVehicle(vin: VIN("1HMFT000000000099")!) } throws: {
                ($0 as? APIError)?.status == 404
            }
            #expect(
                h.emulator.tokenRequestLog == [
                    family == .platform ? "POST /v1/access_tokens json" : "POST /v1/access_token form"
                ])
        }
    }

    @Test func registrationErrorsArePerVehicle() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let answers = try await h.client.register([
                FleetVehicle(vin: newVIN, brand: "no_such_brand", status: .pending)
            ])
            #expect(answers.first?.status == .error)
            #expect(answers.first?.description == "The brand is invalid")
        }
    }

    @Test func fiftyConcurrentRequestsCauseOneTokenRequest() async throws {
        try await withHarness(emulator: .init(vehicleCount: 5)) { h in
            let vins = h.emulator.configuration.vins
            let client = h.client
            let statuses = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<50 {
                    group.addTask { (try? await client.vehicleData(vin: vins[index % vins.count])) != nil }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(statuses.count == 50 && statuses.allSatisfy { $0 })
            #expect(h.emulator.tokenRequestCount == 1)
        }
    }

    @Test func oversizedBodyIsRefused() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1), maxResponseBytes: 4096) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 200, body: String(repeating: "x", count: 100_000)), vin: vin)
            await #expect { _ = try await h.client.vehicleData(vin: vin) } throws: { error in
                guard let error = error as? APIError else { return false }
                return error.kind == .responseTooLarge && error.description.contains("4096")
            }
        }
    }

    @Test func nonJSONErrorPageKeepsTheStatus() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            h.emulator.inject(.init(status: 502, body: "<html><body>Bad gateway</body></html>"), vin: vin)
            await #expect { _ = try await h.client.vehicleData(vin: vin) } throws: { error in
                guard let error = error as? APIError else { return false }
                return error.status == 502 && error.description.contains("non-JSON body: <html><body>Bad gateway")
            }
        }
    }

    @Test func consentRemovedStopsTheVIN() async throws {
        try await withHarness(emulator: .init(vehicleCount: 2)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            await h.step(by: .seconds(1))
            h.emulator.inject(
                .init(
                    status: 401,
                    body:
                        #"{"errors":[{"title":"Not Authorized","detail":"Consent is removed by OEM"}],"request_id":"r-1"}"#
                ), vin: vin, count: 1)
            await h.step(by: .seconds(1))
            let before = h.emulator.requestLog.filter { $0.vin == vin.rawValue }.count
            for _ in 0..<10 { await h.step(by: .seconds(1)) }
            #expect(
                h.emulator.requestLog.filter { $0.vin == vin.rawValue }.count == before,
                "no request after consent was removed")
            #expect(h.emulator.requestLog.filter { $0.vin == EmulatorConfiguration.vin(index: 2).rawValue }.count >= 12)
            let record = try #require(try await h.store.vehicles().first { $0.vin == vin })
            #expect(record.status == .consentRemoved)
            #expect(record.statusReason?.contains("Consent is removed by OEM") == true)
        }
    }

    /// The daemon lists the fleet: approved VINs are polled, pending ones wait, and every status
    /// change is recorded in `vehicles` and becomes a `clearance_changed` event.
    @Test func fleetSyncFollowsTheClearanceLifecycle() async throws {
        try await withHarness(
            emulator: .init(vehicleCount: 2, approvalDelay: .seconds(30), removalDelay: .seconds(600)), fleetSync: true
        ) { h in
            _ = try await h.client.register([FleetVehicle(vin: newVIN, brand: "sandbox", status: .pending)])
            // The loop syncs the fleet at its start, then every 60 s (the harness's sync interval).
            for _ in 0..<5 { await h.step(by: .seconds(1)) }
            #expect(!h.emulator.requestLog.contains { $0.vin == newVIN.rawValue }, "a pending VIN is not polled")
            #expect(h.emulator.requestLog.contains { $0.vin == EmulatorConfiguration.vin(index: 1).rawValue })

            func clearanceChanges() async -> [String] {
                await h.sink.events.filter { $0.type == .clearanceChanged }
                    .map { "\($0.vin) \($0.previousValue ?? "") \($0.newValue)" }
            }
            // Approved 30 s after registration; seen by the sync 60 s after the first (at start + 1 s).
            await h.step(by: .seconds(56))
            let seen = await h.sink.events.map(\.jsonLine)
            #expect(await clearanceChanges() == ["\(newVIN) pending approved"], "\(seen)")
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            #expect(
                h.emulator.requestLog.contains { $0.vin == newVIN.rawValue && $0.status == 200 },
                "an approved VIN is polled")

            _ = try await h.client.remove(vin: newVIN)
            await h.step(by: .seconds(60))
            #expect(await clearanceChanges().last == "\(newVIN) approved revoking")
            let countAfterRemoval = h.emulator.requestLog.filter { $0.vin == newVIN.rawValue }.count
            for _ in 0..<5 { await h.step(by: .seconds(1)) }
            #expect(
                h.emulator.requestLog.filter { $0.vin == newVIN.rawValue }.count == countAfterRemoval,
                "a revoking VIN stops")

            h.emulator.setClearance(.rejected, vin: EmulatorConfiguration.vin(index: 2))
            await h.step(by: .seconds(60))
            #expect(await clearanceChanges().last?.hasSuffix("approved rejected") == true)

            let records = try await h.store.vehicles()
            let record = try #require(records.first { $0.vin == newVIN })
            #expect(record.clearanceStatus == .revoking)
            #expect(record.status == .notCleared)
            let stored = try await h.store.events().filter { $0.type == .clearanceChanged }
            #expect(stored.count == 3)
            #expect(await h.sink.events.filter { $0.type == .clearanceChanged } == stored)
        }
    }

    /// The secret is sent, but never logged or stored, even when the API refuses it.
    @Test func secretNeverReachesLogsOrTheDatabase() async throws {
        let secret = "S3cr3t-Value-For-The-Test-0123456789"
        let logs = LogCapture()
        let emulator = EmulatorConfiguration(vehicleCount: 2, clientSecret: secret)
        try await withHarness(emulator: emulator, logs: logs) { h in
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            let samples = try await h.store.summary().samples
            #expect(samples > 0)
            let data = (try? Data(contentsOf: URL(fileURLWithPath: h.databasePath))) ?? Data()
            let wal = (try? Data(contentsOf: URL(fileURLWithPath: h.databasePath + "-wal"))) ?? Data()
            #expect(data.range(of: Data(secret.utf8)) == nil && wal.range(of: Data(secret.utf8)) == nil)
        }
        try await withHarness(emulator: emulator, clientSecret: secret + "-wrong", logs: logs) { h in
            await h.step(by: .seconds(1))
            let data = (try? Data(contentsOf: URL(fileURLWithPath: h.databasePath + "-wal"))) ?? Data()
            #expect(data.range(of: Data(secret.utf8)) == nil)
        }
        #expect(logs.text.contains("client_secret is invalid"), "the refusal is logged")
        #expect(!logs.text.contains(secret))
    }

    /// With the fleet sync (the default), refused credentials stop the daemon too.
    @Test func fleetSyncWithRefusedCredentialsStopsTheDaemon() async throws {
        _ = try await withHarness(emulator: .init(vehicleCount: 1), clientSecret: "wrong", fleetSync: true) { h in
            await #expect {
                try await h.runToEnd()
            } throws: { error in
                guard let error = error as? DaemonError else { return false }
                return error.description.contains("api.client_secret") && error.description.contains("HTTP 401")
            }
        }
    }
}
