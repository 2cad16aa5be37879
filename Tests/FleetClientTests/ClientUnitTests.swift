@testable import FleetClient
import FleetModel
import Synchronization
import Testing

let start = Timestamp(iso8601: "2026-11-28T09:00:00Z")!

extension Timestamp {
    func plus(seconds: Double) -> Timestamp { adding(milliseconds: Int64(seconds * 1000)) }
}

@Suite struct TokenProviderTests {
    final class Counter: Sendable {
        let calls = Mutex(0)
        let failing = Mutex(false)
    }

    /// A token living 10 s is renewed at half its life, not on every call.
    @Test func shortLivedTokensAreRenewedAtHalfTheirLife() async throws {
        let clock = ManualWallClock(start: start)
        let counter = Counter()
        let provider = TokenProvider(renewalMargin: .seconds(60), clock: clock) {
            counter.calls.withLock { $0 += 1 }
            return AccessToken(value: Secret("t"), expiresAt: clock.now().adding(.seconds(10)), issuedAt: clock.now())
        }
        for _ in 0..<4 {
            _ = try await provider.token()
            clock.advance(by: .seconds(1))
        }
        #expect(counter.calls.withLock { $0 } == 1)
        clock.advance(by: .seconds(2))
        _ = try await provider.token()
        #expect(counter.calls.withLock { $0 } == 2)
    }

    @Test func concurrentCallersShareOneRequest() async throws {
        let clock = ManualWallClock(start: start)
        let counter = Counter()
        let provider = TokenProvider(renewalMargin: .seconds(60), clock: clock) {
            counter.calls.withLock { $0 += 1 }
            try await Task.sleep(for: .milliseconds(20))
            return AccessToken(value: Secret("t"), expiresAt: clock.now().adding(.seconds(300)))
        }
        try await withThrowingTaskGroup(of: AccessToken.self) { group in
            for _ in 0..<50 { group.addTask { try await provider.token() } }
            for try await token in group { #expect(token.value.value == "t") }
        }
        #expect(counter.calls.withLock { $0 } == 1)
    }

    /// With no valid token, a fleet of callers shares one backoff: one token request per step
    /// (1 s, then about 2 s, 4 s, … with jitter), the others get the last failure at once with
    /// the wait left; the first success ends it.
    @Test func callersWithoutATokenShareOneBackoff() async throws {
        let clock = ManualWallClock(start: start)
        let counter = Counter()
        counter.failing.withLock { $0 = true }
        let provider = TokenProvider(renewalMargin: .seconds(60), clock: clock, seed: 3) {
            counter.calls.withLock { $0 += 1 }
            if counter.failing.withLock({ $0 }) {
                throw APIError(kind: .transport, endpoint: "POST /v1/access_tokens", detail: "connection refused")
            }
            return AccessToken(value: Secret("t"), expiresAt: clock.now().adding(.seconds(300)))
        }
        var waits: [Duration] = []
        for _ in 0..<100 {
            do {
                _ = try await provider.token()
                Issue.record("no token can be had")
            } catch let error as APIError {
                waits.append(error.nextAttemptIn ?? .zero)
            }
        }
        #expect(counter.calls.withLock { $0 } == 1, "100 callers, one token request")
        #expect(waits.allSatisfy { $0 > .zero && $0 <= .seconds(1) }, "\(waits.prefix(3))")
        // Step through 20 simulated seconds, 1000 callers every 100 ms.
        for _ in 0..<200 {
            clock.advance(by: .milliseconds(100))
            for _ in 0..<5 { _ = try? await provider.token() }
        }
        let requests = counter.calls.withLock { $0 }
        #expect(requests >= 4 && requests <= 8, "one request per backoff step, not per caller: \(requests)")
        #expect(await provider.consecutiveFailures == requests)
        counter.failing.withLock { $0 = false }
        clock.advance(by: .seconds(60))
        #expect(try await provider.token().value.value == "t")
        #expect(await provider.consecutiveFailures == 0)
    }

    /// A renewal that fails while the old token is valid keeps the old token and is retried with
    /// backoff; once the token has expired the failure is reported.
    @Test func failedRenewalBacksOffWhileTheOldTokenIsValid() async throws {
        struct Refused: Error {}
        let clock = ManualWallClock(start: start)
        let counter = Counter()
        let provider = TokenProvider(renewalMargin: .seconds(60), clock: clock) {
            counter.calls.withLock { $0 += 1 }
            if counter.failing.withLock({ $0 }) { throw Refused() }
            return AccessToken(
                value: Secret("t\(counter.calls.withLock { $0 })"), expiresAt: clock.now().adding(.seconds(300)))
        }
        #expect(try await provider.token().value.value == "t1")
        counter.failing.withLock { $0 = true }
        clock.advance(by: .seconds(250))  // inside the renewal margin
        #expect(try await provider.token().value.value == "t1")
        #expect(counter.calls.withLock { $0 } == 2)
        clock.advance(by: .milliseconds(500))
        #expect(try await provider.token().value.value == "t1")
        #expect(counter.calls.withLock { $0 } == 2, "no retry before the 1 s backoff")
        clock.advance(by: .milliseconds(600))
        #expect(try await provider.token().value.value == "t1")
        #expect(counter.calls.withLock { $0 } == 3, "retried after the backoff")
        clock.advance(by: .milliseconds(1500))
        _ = try await provider.token()
        #expect(counter.calls.withLock { $0 } == 3, "the backoff doubled to 2 s")
        counter.failing.withLock { $0 = false }
        clock.advance(by: .seconds(1))
        #expect(try await provider.token().value.value == "t4")
        counter.failing.withLock { $0 = true }
        clock.advance(by: .seconds(301))
        await #expect(throws: Refused.self) { try await provider.token() }
    }
}

@Suite struct APIErrorTests {
    @Test(
        arguments: [
            (
                #"{"errors":[{"title":"Not Authorized","detail":"Invalid token","source":"Authorization"}],"request_id":"abc"}"#,
                "Not Authorized", "Invalid token", "abc"
            ),
            (
                #"{"error":"invalid_request","error_description":"client_secret is invalid"}"#, "invalid_request",
                "client_secret is invalid", nil
            ),
            (
                #"[{"title":"Forbidden","detail":"This service account is not associated with a fleet.","source":"Authorization"}]"#,
                "Forbidden", "This service account is not associated with a fleet.", nil
            ),
            ("<html><h1>502 Bad Gateway</h1></html>", nil, "non-JSON body: <html><h1>502 Bad Gateway</h1></html>", nil),
            (#"{"errors":[{"title":"Too Ma"#, nil, #"non-JSON body: {"errors":[{"title":"Too Ma"#, nil),
            ("", nil, "empty body", nil),
        ] as [(String, String?, String, String?)])
    func everyErrorShapeParses(body: String, title: String?, detail: String, requestID: String?) {
        let error = APIError.fromResponse(
            status: 401, body: Array(body.utf8), endpoint: "GET /x", vin: nil, retryAfter: nil)
        #expect(error.status == 401)
        #expect(error.title == title)
        #expect(error.detail == detail)
        #expect(error.requestID == requestID)
        #expect(error.description.hasPrefix("GET /x: HTTP 401"))
    }

    @Test func hugeRetryAfterNeverCrashesTheDescription() {
        let error = APIError(kind: .http, endpoint: "GET /x", status: 429, retryAfter: .seconds(Int64.max))
        #expect(error.description.contains("Retry-After"))
    }

    @Test func redactionRemovesEchoedSecrets() {
        let echoed = APIError.fromResponse(
            status: 400,
            body: Array(
                #"{"error":"invalid_request","error_description":"client_secret S3cr3tFAKE is malformed"}"#.utf8),
            endpoint: "POST /v1/access_tokens", vin: nil, retryAfter: nil)
        let redacted = echoed.redacting(["S3cr3tFAKE"])
        #expect(redacted.description.contains("client_secret <redacted> is malformed"))
        #expect(!redacted.description.contains("S3cr3tFAKE"))
    }

    @Test func classification() {
        let consent = APIError(
            kind: .http, endpoint: "GET /v1/vehicle-data/autoapi-13/X", status: 401, title: "Not Authorized",
            detail: "Consent is removed by OEM")
        #expect(consent.isConsentRemoved && !consent.isInvalidToken && !consent.isCredentialsRejected)
        let token = APIError(kind: .http, endpoint: "GET /x", status: 401, detail: "Invalid token")
        #expect(token.isInvalidToken)
        let credentials = APIError(
            kind: .http, endpoint: "POST /v1/access_tokens", status: 401, title: "invalid_client")
        #expect(credentials.isCredentialsRejected)
        #expect(APIError(kind: .http, endpoint: "POST /v1/access_token", status: 400).isCredentialsRejected)
    }

    @Test(
        arguments: [
            ("120", Int64(120_000)), (" 5 ", 5000), ("Sat, 28 Nov 2026 09:02:00 GMT", 120_000),
            ("Sat, 28 Nov 2026 08:00:00 GMT", 0),
        ] as [(String, Int64)])
    func retryAfterParses(value: String, milliseconds: Int64) {
        #expect(RetryAfter.parse(value, now: start)?.milliseconds == milliseconds)
    }

    @Test(arguments: [
        "abc", "-5", "", "1.5", "Sat, 28 Nov 2026 09:02:00 PST", "Xyz, 99 Foo 2026 09:02:00 GMT", "9223372036854775807",
        "604801", "Sat, 28 Nov 2099 09:02:00 GMT", "１２",
    ])
    func retryAfterRejects(value: String) {
        #expect(RetryAfter.parse(value, now: start) == nil)
    }
}

/// What an error means for the vehicle: the one reading of statuses and details.
@Suite struct VehicleDataFailureTests {
    func error(
        _ status: Int, detail: String? = nil, endpoint: String = "GET /v1/vehicle-data/autoapi-13/VIN"
    )
        -> APIError
    {
        APIError(kind: .http, endpoint: endpoint, status: status, detail: detail)
    }

    @Test func eachAnswerHasItsMeaning() {
        #expect(error(408).vehicleDataFailure == .asleep)
        #expect(error(422).vehicleDataFailure == .dataPending)
        #expect(error(403, detail: "Privacy mode is active").vehicleDataFailure == .privacyMode)
        #expect(error(403, detail: "No active consent").vehicleDataFailure == .notCleared)
        #expect(error(401, detail: "Consent is removed by OEM").vehicleDataFailure == .consentRemoved)
        #expect(error(401, endpoint: "POST /v1/access_tokens").vehicleDataFailure == .credentialsRejected)
        #expect(error(503).vehicleDataFailure == .transientFault)
        #expect(APIError(kind: .transport, endpoint: "GET /x").vehicleDataFailure == .transientFault)
    }

    /// Some OEMs answer an exhausted quota with 403 or 401: a rate limit, not a lost clearance.
    @Test(arguments: [
        (403, "Quota exceeded"), (401, "Daily limit exceeded"), (403, "Too Many Requests"),
    ])
    func quotaSpentInAnotherStatusIsARateLimit(status: Int, detail: String) {
        #expect(error(status, detail: detail).vehicleDataFailure == .rateLimited(retryAfter: nil))
        var withWait = error(status, detail: detail)
        withWait.retryAfter = .seconds(30)
        #expect(withWait.vehicleDataFailure == .rateLimited(retryAfter: .seconds(30)))
    }

    /// A rate-limit error that names the application's or account's limit is application-wide;
    /// the platform's plain `Rate limit exceeded` is not (the scheduler decides from how many
    /// vehicles are refused).
    @Test(
        arguments: [
            (429, "Rate limit exceeded", nil), (429, "Rate limit exceeded for this application", true),
            (403, "Quota exceeded for your account", true), (429, "App limit reached", true),
            (403, "Quota exceeded for this vehicle", false), (429, "Too many requests for this VIN", false),
        ] as [(Int, String, Bool?)])
    func applicationWideLimitsAreRecognised(status: Int, detail: String, applicationWide: Bool?) {
        #expect(
            error(status, detail: detail).vehicleDataFailure
                == .rateLimited(retryAfter: nil, applicationWide: applicationWide))
    }

    /// A failed token request means the vehicle-data request was never sent: not the vehicle's
    /// failure. Refused credentials stay what they are.
    @Test func aTokenFailureIsNoVehicleFailure() {
        var down = APIError(kind: .transport, endpoint: "POST /v1/access_tokens", detail: "connection refused")
        down.nextAttemptIn = .seconds(4)
        #expect(down.vehicleDataFailure == .tokenUnavailable(retryAfter: .seconds(4)))
        let busy = APIError(kind: .http, endpoint: "POST /v1/access_token", status: 503)
        #expect(busy.vehicleDataFailure == .tokenUnavailable(retryAfter: nil))
        let refused = APIError(kind: .http, endpoint: "POST /v1/access_tokens", status: 401)
        #expect(refused.vehicleDataFailure == .credentialsRejected)
    }
}

/// A refused connection is an error at once, not after the connect timeout.
@Suite struct RefusedConnectionTests {
    @Test func aRefusedConnectionFailsBeforeTheConnectTimeout() async throws {
        // Port 1 on loopback: nothing listens there on a test machine.
        let client = HighMobilityClient(
            configuration: .init(
                baseURL: "http://127.0.0.1:1", clientID: "id", clientSecret: Secret("secret"),
                connectTimeout: .seconds(120)))
        let started = ContinuousClock.now
        await #expect(throws: APIError.self) { _ = try await client.fleetVehicles() }
        #expect(ContinuousClock.now - started < .seconds(60), "well inside the 120 s connect timeout")
        try await client.shutdown()
    }
}
