import FleetClient
import FleetConsent
import FleetDaemon
import FleetEmulator
import FleetModel
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let consentVIN = EmulatorConfiguration.consentVIN(index: 1)

/// The query of a URL, by name.
private func query(_ url: String) -> [String: String] {
    var fields: [String: String] = [:]
    for item in URLComponents(string: url)?.queryItems ?? [] { fields[item.name] = item.value ?? "" }
    return fields
}

/// The owner allows access on the emulator's consent page: the code of the redirect.
private func approve(_ h: Harness, url: String, vin: VIN = consentVIN) throws -> (code: String, state: String?) {
    var fields = query(url)
    fields["vin"] = vin.rawValue
    let reply = h.emulator.approveAuthorization(query: fields)
    let location = try #require(reply.headers.first { $0.0 == "Location" }?.1, "a redirect: \(reply.body)")
    let back = query(location)
    return (try #require(back["code"]), back["state"])
}

/// A grant of the consent vehicle, through the client as `consent url` and `consent exchange` make it.
private func connect(_ h: Harness) async throws -> ConsentGrant {
    let pkce = PKCE()
    let url = h.client.authorizationURL(
        "http://127.0.0.1:\(h.port)/oauth/new", redirectURI: "http://127.0.0.1:9/callback", scope: "vehicle:data",
        state: "s-1", pkce: pkce, vin: nil)
    let (code, state) = try approve(h, url: url)
    #expect(state == "s-1")
    return try await h.client.exchangeAuthorizationCode(
        code, redirectURI: "http://127.0.0.1:9/callback", codeVerifier: pkce.verifier)
}

private func isInvalidGrant(_ error: any Error) -> Bool { (error as? APIError)?.title == "invalid_grant" }

@Suite(.serialized) struct ConsentFlowTests {
    /// The code flow with PKCE, in both path families: a vehicle token that reaches its vehicle
    /// (and only it), the vehicle named by `GET /v1/vehicleinfo`, and a code that works once.
    @Test(arguments: PathFamily.allCases)
    func aCodeBecomesAVehicleTokenOnce(family: PathFamily) async throws {
        try await withHarness(family: family) { h in
            let pkce = PKCE()
            let url = h.client.authorizationURL(
                "http://127.0.0.1:\(h.port)/oauth/new", redirectURI: "http://127.0.0.1:9/cb", scope: "vehicle:data",
                state: "st", pkce: pkce, vin: nil)
            #expect(query(url)["code_challenge_method"] == "S256")
            #expect(query(url)["code_challenge"] == pkce.challenge)
            let (code, _) = try approve(h, url: url)
            let grant = try await h.client.exchangeAuthorizationCode(
                code, redirectURI: "http://127.0.0.1:9/cb", codeVerifier: pkce.verifier)
            #expect(grant.status == .approved)
            #expect(grant.refreshToken != nil)
            #expect(grant.accessToken.expiresAt.duration(since: h.clock.now()) == .seconds(3600))
            #expect(try await h.client.vehicleInfo(token: grant.accessToken) == consentVIN)
            #expect(try await h.client.vehicleData(vin: consentVIN, token: grant.accessToken).status == 200)
            // Not a fleet vehicle: the application's own token does not reach it.
            await #expect(throws: APIError.self) { try await h.client.vehicleData(vin: consentVIN) }
            // Nor does the vehicle token reach another vehicle.
            await #expect(throws: APIError.self) {
                try await h.client.vehicleData(vin: EmulatorConfiguration.vin(index: 1), token: grant.accessToken)
            }
            await #expect {
                try await h.client.exchangeAuthorizationCode(
                    code, redirectURI: "http://127.0.0.1:9/cb", codeVerifier: pkce.verifier)
            } throws: { isInvalidGrant($0) }
            #expect(
                h.emulator.tokenRequestLog.last
                    == (family == .platform ? "POST /v1/access_tokens json" : "POST /v1/access_token form"))
        }
    }

    /// PKCE is checked: a code with another verifier is refused, and the code is spent.
    @Test func aWrongVerifierIsRefused() async throws {
        try await withHarness { h in
            let pkce = PKCE()
            let url = h.client.authorizationURL(
                "http://127.0.0.1:\(h.port)/oauth/new", redirectURI: "http://127.0.0.1:9/cb", scope: "vehicle:data",
                state: "st", pkce: pkce, vin: nil)
            let (code, _) = try approve(h, url: url)
            await #expect {
                try await h.client.exchangeAuthorizationCode(
                    code, redirectURI: "http://127.0.0.1:9/cb", codeVerifier: PKCE().verifier)
            } throws: { isInvalidGrant($0) }
            await #expect {
                try await h.client.exchangeAuthorizationCode(
                    code, redirectURI: "http://127.0.0.1:9/cb", codeVerifier: pkce.verifier)
            } throws: { isInvalidGrant($0) }
        }
    }

    /// A refresh rotates the refresh token: the new one works, the old one is spent.
    @Test(arguments: PathFamily.allCases)
    func aRefreshRotatesTheRefreshToken(family: PathFamily) async throws {
        try await withHarness(family: family) { h in
            let first = try await connect(h)
            let old = try #require(first.refreshToken)
            let second = try await h.client.refreshConsent(old)
            #expect(second.refreshToken != old)
            #expect(second.accessToken != first.accessToken)
            #expect(try await h.client.vehicleData(vin: consentVIN, token: second.accessToken).status == 200)
            await #expect { try await h.client.refreshConsent(old) } throws: { isInvalidGrant($0) }
            let third = try await h.client.refreshConsent(try #require(second.refreshToken))
            #expect(third.status == .approved)
            #expect(h.emulator.consentGrantLog == ["authorization_code", "refresh_token", "refresh_token"])
        }
    }

    /// Revocation (the CLI's `consent revoke`) and the owner withdrawing consent both end the
    /// grant: its tokens stop working and a refresh is `invalid_grant`.
    @Test func revocationAndWithdrawalEndTheGrant() async throws {
        try await withHarness { h in
            let revoked = try await connect(h)
            try await h.client.revokeConsent(try #require(revoked.refreshToken))
            await #expect { try await h.client.refreshConsent(revoked.refreshToken!) } throws: { isInvalidGrant($0) }
            await #expect(throws: APIError.self) {
                try await h.client.vehicleData(vin: consentVIN, token: revoked.accessToken)
            }
            let withdrawn = try await connect(h)
            #expect(h.emulator.withdrawConsent(vin: consentVIN) == 1)
            await #expect { try await h.client.refreshConsent(withdrawn.refreshToken!) } throws: { isInvalidGrant($0) }
        }
    }

    /// A grant `pending` approval reaches no data until it is approved.
    @Test func aPendingGrantWaitsForApproval() async throws {
        try await withHarness(emulator: .init(consentApprovalDelay: .seconds(120))) { h in
            let grant = try await connect(h)
            #expect(grant.status == .pending)
            await #expect(throws: APIError.self) {
                try await h.client.vehicleData(vin: consentVIN, token: grant.accessToken)
            }
            h.clock.advance(by: .seconds(121))
            let approved = try await h.client.refreshConsent(try #require(grant.refreshToken))
            #expect(approved.status == .approved)
            #expect(try await h.client.vehicleData(vin: consentVIN, token: approved.accessToken).status == 200)
        }
    }

    /// The flow as a user runs it: `consent url`, the owner's approval, `consent exchange`,
    /// `consent list`, `consent revoke`; the state file is 0600 and no token is ever printed.
    @Test(arguments: PathFamily.allCases)
    func theWholeFlowThroughTheCLI(family: PathFamily) async throws {
        try await withHarness(family: family) { h in
            let directory = NSTemporaryDirectory() + "ft-consent-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let config = directory + "/config.yaml"
            try """
            api:
              base_url: http://127.0.0.1:\(h.port)
              client_id: \(EmulatorConfiguration.defaultClientID)
              client_secret:
                env: HM_SECRET
              paths: \(family.rawValue)
            database:
              path: \(directory)/telemetry.sqlite
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let cli = CLI(config: config)
            let url = try await cli.runAside(["consent", "url"])
            #expect(url.status == 0, "\(url.stderr)")
            let link = url.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(link.hasPrefix("http://127.0.0.1:\(h.port)/oauth/new?"))
            let (code, state) = try approve(h, url: link)
            let exchanged = try await cli.runAside([
                "consent", "exchange", "--code", code, "--state", try #require(state),
            ])
            #expect(exchanged.status == 0, "\(exchanged.stderr) \(exchanged.stdout)")
            #expect(exchanged.stdout.contains("\(consentVIN): approved"))
            let again = try await cli.runAside(["consent", "exchange", "--code", code, "--state", state!])
            #expect(again.status == 1, "a state is used once")
            let list = try await cli.runAside(["consent", "list", "--json"])
            #expect(list.stdout.contains("\"vin\":\"\(consentVIN)\",\"status\":\"approved\""))
            let file = directory + "/telemetry.sqlite-consent.json"
            var status = stat()
            #expect(stat(file, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
            let stored = try #require(try GrantFile(path: file).read().grant(of: consentVIN))
            let printed = [url, exchanged, again, list].map { $0.stdout + $0.stderr }.joined()
            #expect(!printed.contains(stored.accessToken.value) && !printed.contains(stored.refreshToken!.value))
            let revoke = try await cli.runAside(["consent", "revoke", consentVIN.rawValue])
            #expect(revoke.status == 0, "\(revoke.stderr)")
            #expect(try GrantFile(path: file).read().grants.isEmpty)
            await #expect { try await h.client.refreshConsent(stored.refreshToken!) } throws: { isInvalidGrant($0) }
        }
    }
}

/// A consent vehicle's grant in the daemon's consent state file, as `consent exchange` leaves it.
private func storeGrant(_ h: Harness) async throws -> (GrantFile, StoredGrant) {
    let grant = try await connect(h)
    let file = GrantFile(path: h.databasePath + "-consent.json")
    let stored = StoredGrant(vin: consentVIN, grant: grant, grantedAt: h.clock.now())
    try file.update { $0.put(stored) }
    return (file, stored)
}

private func tokens(_ h: Harness, _ file: GrantFile) async throws -> ConsentTokens {
    let tokens = ConsentTokens(file: file, client: h.client, clock: h.clock, logger: Logger(label: "test"))
    try await tokens.reload()
    return tokens
}

@Suite(.serialized) struct ConsentPollingTests {
    /// The daemon polls a vehicle its owner connected with the vehicle's own token: its data is
    /// stored like a fleet vehicle's.
    /// No token reaches the logs (at trace), the database or its WAL.
    @Test func aConsentVehicleIsPolledWithItsOwnToken() async throws {
        let logs = LogCapture()
        try await withHarness(emulator: .init(vehicleCount: 1), logs: logs) { h in
            let (file, _) = try await storeGrant(h)
            var polled: [PollPipeline.Result] = []
            for _ in 0..<5 { polled += await h.step(by: .seconds(1)) }
            // Past the token's expiry: polled with a refreshed one.
            h.clock.advance(by: .seconds(3600))
            for _ in 0..<5 { polled += await h.step(by: .seconds(1)) }
            let consentPolls = polled.filter { $0.vin == consentVIN }
            #expect(
                consentPolls.filter { $0.httpStatus == 200 }.count >= 2,
                "\(polled.map { "\($0.vin) \($0.error ?? "ok")" })")
            #expect(try await h.store.latestValues(vin: consentVIN).isEmpty == false)
            #expect(h.emulator.requestLog.contains { $0.vin == consentVIN.rawValue && $0.status == 200 })
            #expect(h.emulator.consentGrantLog == ["authorization_code", "refresh_token"])
            let grant = try #require(try file.read().grant(of: consentVIN))
            let secrets = [grant.accessToken.value, try #require(grant.refreshToken?.value)]
            var written = Data()
            for suffix in ["", "-wal"] {
                written += (FileManager.default.contents(atPath: h.databasePath + suffix) ?? Data())
            }
            for secret in secrets {
                #expect(written.range(of: Data(secret.utf8)) == nil, "a token in the database or its WAL")
                #expect(!logs.text.contains(secret), "a token in the logs")
            }
        }
    }

    /// Two polls that find the token due at once send exactly one refresh; the rotated refresh
    /// token is in the file before the new token is used, and survives a restart (a new holder).
    @Test func concurrentCallersShareOneRefreshWhichSurvivesARestart() async throws {
        try await withHarness { h in
            let (file, stored) = try await storeGrant(h)
            let holder = try await tokens(h, file)
            h.clock.advance(by: .seconds(3600 - 200))  // inside the 300 s renewal margin
            async let first = holder.access(for: consentVIN)
            async let second = holder.access(for: consentVIN)
            let (a, b) = await (first, second)
            guard case .ready(let tokenA)? = a, case .ready(let tokenB)? = b else {
                Issue.record("no token: \(String(describing: a)) \(String(describing: b))")
                return
            }
            #expect(tokenA == tokenB)
            #expect(tokenA.value != stored.accessToken)
            #expect(h.emulator.consentGrantLog == ["authorization_code", "refresh_token"])
            let written = try #require(try file.read().grant(of: consentVIN))
            #expect(written.refreshToken != stored.refreshToken)
            #expect(written.accessToken == tokenA.value)
            // A restart reads the rotated grant, and its refresh token works.
            let restarted = try await tokens(h, file)
            h.clock.advance(by: .seconds(3600))
            guard case .ready? = await restarted.access(for: consentVIN) else {
                Issue.record("the rotated refresh token did not survive the restart")
                return
            }
            #expect(h.emulator.consentGrantLog.count == 3)
        }
    }

    /// A refresh that fails for a while (the token endpoint answers 503) keeps the old grant:
    /// its token is used while valid, and the refresh is not retried before its backoff.
    @Test func aTransientRefreshFailureKeepsTheOldGrant() async throws {
        try await withHarness { h in
            let (file, stored) = try await storeGrant(h)
            let holder = try await tokens(h, file)
            h.clock.advance(by: .seconds(3600 - 200))
            h.emulator.injectTokenFault(.init(status: 503), count: 1)
            guard case .ready(let token)? = await holder.access(for: consentVIN) else {
                Issue.record("the old token, still valid, should be used")
                return
            }
            #expect(token.value == stored.accessToken)
            let requests = h.emulator.tokenRequestCount
            _ = await holder.access(for: consentVIN)
            #expect(h.emulator.tokenRequestCount == requests, "no new refresh before the backoff")
            let kept = try #require(try file.read().grant(of: consentVIN))
            #expect(kept.refreshToken == stored.refreshToken && kept.status == .approved)
            #expect(kept.lastError?.contains("503") == true)
            h.clock.advance(by: .seconds(2))
            guard case .ready(let renewed)? = await holder.access(for: consentVIN) else {
                Issue.record("the retried refresh should succeed")
                return
            }
            #expect(renewed.value != stored.accessToken)
            #expect(try file.read().grant(of: consentVIN)?.lastError == nil)
        }
    }

    /// A refused refresh (`invalid_grant`: the owner withdrew consent) marks the vehicle
    /// `consent_required` with one event, and no request loop follows; the daemon stops polling it.
    /// Both ways in: the token expired (a refresh is refused), or still valid (the poll's 401, then
    /// the refused refresh).
    @Test(arguments: [true, false])
    func invalidGrantMeansConsentRequiredOnce(tokenExpired: Bool) async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let (file, _) = try await storeGrant(h)
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            h.emulator.withdrawConsent(vin: consentVIN)
            if tokenExpired { h.clock.advance(by: .seconds(3600)) }
            var results: [PollPipeline.Result] = []
            for _ in 0..<10 { results += await h.step(by: .seconds(1)) }
            let requestsAfter = h.emulator.tokenRequestCount
            for _ in 0..<10 { results += await h.step(by: .seconds(5)) }
            #expect(h.emulator.tokenRequestCount - requestsAfter <= 1, "no loop of refreshes")
            let stopped = results.filter { $0.vin == consentVIN && $0.consentRequired }
            #expect(stopped.count == 1)
            let events = try await h.store.events(vin: consentVIN).filter { $0.type == .consentRequired }
            #expect(events.count == 1)
            #expect(try file.read().grant(of: consentVIN)?.status == .consentRequired)
            #expect(try await h.store.vehicles().first { $0.vin == consentVIN }?.status == .consentRequired)
        }
    }

    /// A grant idle for a day (the vehicle not polled) is refreshed all the same.
    @Test func anIdleGrantIsRefreshed() async throws {
        try await withHarness { h in
            let (file, stored) = try await storeGrant(h)
            let holder = try await tokens(h, file)
            h.clock.advance(by: .seconds(12 * 3600))
            #expect(await holder.refreshIdle().isEmpty)
            #expect(h.emulator.consentGrantLog == ["authorization_code"], "not idle for a day yet")
            h.clock.advance(by: .seconds(12 * 3600))
            #expect(await holder.refreshIdle().isEmpty)
            #expect(h.emulator.consentGrantLog == ["authorization_code", "refresh_token"])
            #expect(try file.read().grant(of: consentVIN)?.refreshToken != stored.refreshToken)
        }
    }
}

@Suite(.serialized) struct ConsentRevocationTests {
    /// The owner withdraws, the daemon marks the vehicle lost, the owner consents again before the
    /// next read of the state file: the vehicle is polled again.
    @Test func aVehicleLostThenConnectedAgainIsPolledAgain() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            _ = try await storeGrant(h)
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            h.emulator.withdrawConsent(vin: consentVIN)
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            #expect(try await h.store.vehicles().first { $0.vin == consentVIN }?.status == .consentRequired)
            _ = try await storeGrant(h)
            var results: [PollPipeline.Result] = []
            for _ in 0..<40 { results += await h.step(by: .seconds(1)) }
            #expect(results.contains { $0.vin == consentVIN && $0.httpStatus == 200 }, "polled again")
        }
    }

    /// `consent revoke` while the daemon runs (the grant out of the file, then revoked at the API):
    /// the vehicle stops being polled, with no `consent_required` event (nothing was lost by surprise).
    @Test func aRevokeWhileTheDaemonRunsIsNotALostConsent() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1)) { h in
            let (file, stored) = try await storeGrant(h)
            for _ in 0..<3 { await h.step(by: .seconds(1)) }
            try file.update { $0.grants.removeAll { $0.vin == consentVIN } }
            try await h.client.revokeConsent(try #require(stored.refreshToken))
            var results: [PollPipeline.Result] = []
            for _ in 0..<40 { results += await h.step(by: .seconds(1)) }
            #expect(try await h.store.events(vin: consentVIN).filter { $0.type == .consentRequired }.isEmpty)
            let vehicle = try #require(try await h.store.vehicles().first { $0.vin == consentVIN })
            #expect(vehicle.status == .consentRequired)
            #expect(vehicle.statusReason?.contains("revoked") == true)
            let late = results.suffix(20).filter { $0.vin == consentVIN }
            #expect(late.isEmpty, "no longer polled: \(late.map { $0.error ?? "ok" })")
        }
    }
}
