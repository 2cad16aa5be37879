import FleetClient
import FleetConsent
import FleetModel
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let vin = VIN("1HMCNS00000000001")!
private let t0 = Timestamp(iso8601: "2026-12-01T10:00:00Z")!

private func temporaryFolder() throws -> String {
    let folder = NSTemporaryDirectory() + "grant-file-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    return folder
}

private func grant(_ vin: VIN, access: String, refresh: String?) -> StoredGrant {
    StoredGrant(
        vin: vin,
        grant: ConsentGrant(
            accessToken: AccessToken(value: Secret(access), expiresAt: t0.adding(.seconds(3600))),
            refreshToken: refresh.map(Secret.init), scope: "vehicle:data", status: .approved, authorizationID: "auth-1"),
        grantedAt: t0)
}

@Suite struct GrantFileTests {
    /// What is written is read back whole, the file is 0600, and no temporary file is left.
    @Test func roundTripWithMode0600() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = GrantFile(path: folder + "/grants.json")
        var stored = grant(vin, access: "access-1", refresh: "refresh-1")
        stored.lastError = "token endpoint: 503"
        let pending = PendingAuthorization(
            state: "s1", codeVerifier: Secret("verifier"), redirectURI: "http://127.0.0.1:1/cb", vin: nil, createdAt: t0
        )
        try file.update { contents in
            contents.put(stored)
            contents.pending.append(pending)
        }
        let read = try file.read()
        #expect(read.grants == [stored])
        #expect(read.pending == [pending])
        var status = stat()
        #expect(stat(file.path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    /// A grant replaced (a rotated refresh token) leaves only the new one.
    @Test func putReplacesTheGrantOfItsVehicle() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = GrantFile(path: folder + "/grants.json")
        try file.update { $0.put(grant(vin, access: "a1", refresh: "r1")) }
        try file.update { $0.put(grant(vin, access: "a2", refresh: "r2")) }
        let grants = try file.read().grants
        #expect(grants.count == 1)
        #expect(grants.first?.refreshToken?.value == "r2")
        let text = try String(contentsOfFile: file.path, encoding: .utf8)
        #expect(!text.contains("r1"), "the spent refresh token is gone from the file")
    }

    /// Writers in parallel (the daemon and a `consent` command) never lose each other's grant.
    @Test func concurrentUpdatesKeepEveryGrant() async throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/grants.json"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 1...16 {
                group.addTask {
                    let vin = VIN(String(format: "1HMCNS%011d", index))!
                    try GrantFile(path: path).update { $0.put(grant(vin, access: "a\(index)", refresh: "r\(index)")) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try GrantFile(path: path).read().grants.count == 16)
    }

    /// A damaged file is named with what is wrong, and an update leaves it as it was.
    @Test func aDamagedFileIsRefusedAndKept() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/grants.json"
        try Data("{\"version\": 1, \"grants\": [{\"vin\": \"nope\"}]}".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try GrantFile(path: path).read()
        } throws: { error in
            String(describing: error).contains(path) && String(describing: error).contains("grants[0].vin")
        }
        #expect(throws: GrantFileError.self) { try GrantFile(path: path).update { $0.grants = [] } }
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("nope"))
    }

    /// A missing file reads as empty; a token never prints (it is a ``Secret``).
    @Test func missingFileIsEmptyAndTokensDoNotPrint() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(try GrantFile(path: folder + "/none.json").read() == GrantFile.Contents())
        let stored = grant(vin, access: "access-secret-1", refresh: "refresh-secret-1")
        let printed = "\(stored) \(String(reflecting: stored))"
        #expect(!printed.contains("access-secret-1") && !printed.contains("refresh-secret-1"))
    }

    /// The PKCE challenge is RFC 7636's (appendix B's example).
    @Test func pkceChallengeIsS256() {
        let pkce = PKCE(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        #expect(pkce.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(PKCE().verifier.value.count == 43)
        #expect((0..<200).allSatisfy { _ in PKCE.randomState().allSatisfy(\.isHexDigit) })
    }
}

@Suite struct GrantFileFailureTests {
    /// A write that cannot finish (here: its temporary file cannot be created) leaves the file
    /// before it whole: the old grant is never lost without the new one written.
    @Test func aFailedWriteLeavesTheOldGrantWhole() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = GrantFile(path: folder + "/grants.json")
        try file.update { $0.put(grant(vin, access: "a1", refresh: "r1")) }
        // A directory where the temporary file would go: it cannot be created.
        try FileManager.default.createDirectory(
            atPath: file.path + ".tmp-\(getpid())", withIntermediateDirectories: false)
        #expect(throws: GrantFileError.self) { try file.update { $0.put(grant(vin, access: "a2", refresh: "r2")) } }
        #expect(try file.read().grants.first?.refreshToken?.value == "r1")
    }
}

@Suite struct GrantFileStrictnessTests {
    /// Wrong types are refused, not dropped (a later write would have erased them), and so is a
    /// file far larger than a state file gets.
    @Test(arguments: [
        ("{\"version\": 1, \"grants\": {\"a\": 1}}", "\"grants\" that is not a list"),
        ("{\"version\": 1, \"pending_authorizations\": \"x\"}", "\"pending_authorizations\" that is not a list"),
        (
            "{\"version\": 1, \"grants\": [{\"vin\": \"1HMCNS00000000001\", \"access_token\": \"a\", "
                + "\"access_expires_at\": \"2026-12-01T10:00:00Z\", \"status\": \"approved\", \"refresh_token\": 5}]}",
            "grants[0].refresh_token is not a text"
        ),
    ])
    func wrongTypesAreRefused(text: String, problem: String) throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/grants.json"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try GrantFile(path: path).read()
        } throws: { String(describing: $0).contains(problem) }
    }

    @Test func anOversizedFileIsRefused() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/grants.json"
        try Data(repeating: 0x20, count: GrantFile.maximumSize + 1).write(to: URL(fileURLWithPath: path))
        #expect { try GrantFile(path: path).read() } throws: { String(describing: $0).contains("16 MiB") }
    }
}
