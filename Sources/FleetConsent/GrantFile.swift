import FleetClient
import FleetModel
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One vehicle's consent as fleet-telemetry keeps it: its tokens and what became of them.
public struct StoredGrant: Sendable, Hashable {
    /// What the daemon may do with the grant.
    public enum Status: String, Sendable, Hashable, CaseIterable {
        /// Polled with its own token.
        case approved
        /// The platform has not approved it yet (BMW and MINI until the owner approves): the
        /// daemon refreshes it and waits.
        case pending
        /// The refresh token was refused (`invalid_grant`): access is lost until the owner
        /// consents again (`fleet-telemetry consent url`).
        case consentRequired = "consent_required"
    }

    public var vin: VIN
    public var accessToken: Secret
    /// When the access token stops working (UTC).
    public var accessExpiresAt: Timestamp
    public var refreshToken: Secret?
    public var scope: String?
    public var status: Status
    public var authorizationID: String?
    /// When the owner's code was exchanged (UTC).
    public var grantedAt: Timestamp
    /// When the tokens were last renewed (UTC), `nil` before the first refresh.
    public var lastRefreshAt: Timestamp?
    /// The last failed refresh, one readable line without any token; `nil` after a success.
    public var lastError: String?

    /// The grant of `vin` as the token endpoint gave it (`status` `pending` or `approved`).
    ///
    /// - Parameters:
    ///   - grantedAt: When the owner's code was exchanged (UTC); kept across refreshes.
    ///   - lastRefreshAt: When `grant` came from a refresh (UTC), `nil` for the exchange itself.
    public init(
        vin: VIN, grant: ConsentGrant, grantedAt: Timestamp, lastRefreshAt: Timestamp? = nil
    ) {
        self.vin = vin
        self.accessToken = grant.accessToken.value
        self.accessExpiresAt = grant.accessToken.expiresAt
        self.refreshToken = grant.refreshToken
        self.scope = grant.scope
        self.status = grant.status == .pending ? .pending : .approved
        self.authorizationID = grant.authorizationID
        self.grantedAt = grantedAt
        self.lastRefreshAt = lastRefreshAt
    }

    /// The access token as the client sends it, issued at the last refresh (or the exchange).
    public var token: AccessToken {
        AccessToken(value: accessToken, expiresAt: accessExpiresAt, issuedAt: lastRefreshAt ?? grantedAt)
    }
}

/// An authorization request waiting for its code: what `consent exchange` needs to finish it.
public struct PendingAuthorization: Sendable, Hashable {
    /// The `state` sent in the authorization URL, which the redirect brings back.
    public var state: String
    /// The PKCE `code_verifier` of the request.
    public var codeVerifier: Secret
    public var redirectURI: String
    /// The vehicle the request was made for, when one was named.
    public var vin: VIN?
    public var createdAt: Timestamp

    public init(state: String, codeVerifier: Secret, redirectURI: String, vin: VIN?, createdAt: Timestamp) {
        self.state = state
        self.codeVerifier = codeVerifier
        self.redirectURI = redirectURI
        self.vin = vin
        self.createdAt = createdAt
    }
}

/// The consent state file: every vehicle's grant (access and refresh tokens) and the
/// authorization requests waiting for a code. Kept next to the database, never in it.
///
/// The file is JSON, mode 0600, replaced atomically (written to a temporary file in the same
/// folder, fsynced, renamed over the old one, the folder fsynced): a process killed at any moment
/// leaves either the old file or the new one whole. ``update(_:)`` holds an exclusive `flock`
/// on `PATH.lock` while it reads, changes and writes, so the daemon and a `consent` command never
/// lose each other's changes. Tokens are never printed: ``Secret`` redacts them.
public struct GrantFile: Sendable {
    public let path: String

    /// The largest state file read (thousands of grants fit in far less).
    public static let maximumSize = 16 << 20

    /// Authorization requests older than this are dropped (their codes have long expired).
    public static let pendingLifetime: Duration = .seconds(24 * 3600)

    public init(path: String) {
        self.path = path
    }

    /// The state file of the database at `databasePath`: `DATABASE-consent.json` beside it.
    public init(databasePath: String) {
        self.path = databasePath + "-consent.json"
    }

    /// What the file holds.
    public struct Contents: Sendable, Hashable {
        public var grants: [StoredGrant] = []
        public var pending: [PendingAuthorization] = []

        public init(grants: [StoredGrant] = [], pending: [PendingAuthorization] = []) {
            self.grants = grants
            self.pending = pending
        }

        /// The grant of `vin`, if any.
        public func grant(of vin: VIN) -> StoredGrant? { grants.first { $0.vin == vin } }

        /// Sets the grant of its vehicle, replacing the one before.
        public mutating func put(_ grant: StoredGrant) {
            grants.removeAll { $0.vin == grant.vin }
            grants.append(grant)
            grants.sort { $0.vin.rawValue < $1.vin.rawValue }
        }
    }

    /// The file's contents; empty when the file does not exist.
    ///
    /// - Throws: ``GrantFileError`` when it cannot be read or is not a consent state file.
    public func read() throws(GrantFileError) -> Contents {
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFREG else {
                throw GrantFileError(
                    path: path, problem: "is not a regular file (a folder or a device is in its place)")
            }
            guard status.st_size <= Self.maximumSize else {
                throw GrantFileError(
                    path: path, problem: "is \(status.st_size) bytes, more than a consent state file holds (16 MiB)")
            }
        } else if lstat(path, &status) == 0 {
            throw GrantFileError(path: path, problem: "is a symbolic link to nothing")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) {
                throw GrantFileError(path: path, problem: "cannot be read (check its owner and mode)")
            }
            return Contents()
        }
        return try Self.decode(Array(data), path: path)
    }

    /// Reads the file, applies `change`, and writes the result atomically, under the file's lock.
    /// `change` may throw to leave the file as it was. Returns what `change` returned.
    @discardableResult
    public func update<T>(_ change: (inout Contents) throws -> T) throws -> T {
        let lock = try Self.lock(path + ".lock")
        defer {
            flock(lock, LOCK_UN)
            close(lock)
        }
        var contents = try read()
        let before = contents
        let result = try change(&contents)
        if contents != before { try write(contents) }
        return result
    }

    /// Writes `contents` atomically (temporary file, fsync, rename, fsync of the folder), mode 0600.
    func write(_ contents: Contents) throws(GrantFileError) {
        let bytes = Array(Self.encode(contents).utf8)
        let folder = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp-\(getpid())"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw GrantFileError(path: path, problem: "cannot be written: " + String(cString: strerror(errno)))
        }
        Self.ownLikeFolder(descriptor, folder: folder)
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = String(cString: strerror(errno)) }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw GrantFileError(path: path, problem: "cannot be written: " + failure + " (the file before is kept)")
        }
        let directory = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// Root writing (`sudo fleet-telemetry consent exchange`) gives the file the owner of its
    /// folder (the service user's state directory), so the daemon can read and replace it.
    static func ownLikeFolder(_ descriptor: Int32, folder: String) {
        guard geteuid() == 0 else { return }
        var status = stat()
        guard stat(folder.isEmpty ? "." : folder, &status) == 0, status.st_uid != 0 else { return }
        _ = fchown(descriptor, status.st_uid, status.st_gid)
    }

    private static func lock(_ path: String) throws(GrantFileError) -> Int32 {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw GrantFileError(path: path, problem: "cannot be created: " + String(cString: strerror(errno)))
        }
        ownLikeFolder(descriptor, folder: (path as NSString).deletingLastPathComponent)
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let problem = String(cString: strerror(errno))
                close(descriptor)
                throw GrantFileError(path: path, problem: "cannot be locked: " + problem)
            }
        }
        return descriptor
    }

    // MARK: - The file's JSON

    static func encode(_ contents: Contents) -> String {
        func time(_ timestamp: Timestamp?) -> JSONValue { timestamp.map { .string($0.iso8601) } ?? .null }
        func text(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
        let grants = contents.grants.map { grant -> JSONValue in
            .object(
                JSONObject(members: [
                    (key: "vin", value: .string(grant.vin.rawValue)),
                    (key: "status", value: .string(grant.status.rawValue)),
                    (key: "access_token", value: .string(grant.accessToken.value)),
                    (key: "access_expires_at", value: time(grant.accessExpiresAt)),
                    (key: "refresh_token", value: text(grant.refreshToken?.value)),
                    (key: "scope", value: text(grant.scope)),
                    (key: "authorization_id", value: text(grant.authorizationID)),
                    (key: "granted_at", value: time(grant.grantedAt)),
                    (key: "last_refresh_at", value: time(grant.lastRefreshAt)),
                    (key: "last_error", value: text(grant.lastError)),
                ]))
        }
        let pending = contents.pending.map { request -> JSONValue in
            .object(
                JSONObject(members: [
                    (key: "state", value: .string(request.state)),
                    (key: "code_verifier", value: .string(request.codeVerifier.value)),
                    (key: "redirect_uri", value: .string(request.redirectURI)),
                    (key: "vin", value: text(request.vin?.rawValue)),
                    (key: "created_at", value: time(request.createdAt)),
                ]))
        }
        return JSONValue.object(
            JSONObject(members: [
                (key: "version", value: .number(1)),
                (key: "grants", value: .array(grants)),
                (key: "pending_authorizations", value: .array(pending)),
            ])
        ).serialized + "\n"
    }

    static func decode(_ bytes: [UInt8], path: String) throws(GrantFileError) -> Contents {
        func fail(_ problem: String) -> GrantFileError { GrantFileError(path: path, problem: problem) }
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes)
        } catch {
            throw fail("is not JSON (\(error)); it was not written by fleet-telemetry, or was edited by hand")
        }
        guard root["version"]?.numberValue == 1 else { throw fail("has no \"version\": 1") }
        var contents = Contents()
        for key in ["grants", "pending_authorizations"] where root[key] != nil && root[key]?.arrayValue == nil {
            throw fail("has a \"\(key)\" that is not a list")
        }
        for (index, item) in (root["grants"]?.arrayValue ?? []).enumerated() {
            let at = "grants[\(index)]"
            guard let vin = item["vin"]?.stringValue.flatMap(VIN.init) else { throw fail("\(at).vin is not a VIN") }
            guard let token = item["access_token"]?.stringValue, !token.isEmpty else {
                throw fail("\(at).access_token is missing")
            }
            guard let expires = item["access_expires_at"]?.stringValue.flatMap(Timestamp.init(iso8601:)) else {
                throw fail("\(at).access_expires_at is not a time")
            }
            guard let status = item["status"]?.stringValue.flatMap(StoredGrant.Status.init(rawValue:)) else {
                throw fail("\(at).status is not one of approved, pending, consent_required")
            }
            for key in ["refresh_token", "scope", "authorization_id", "last_error", "last_refresh_at", "granted_at"] {
                if let value = item[key], value != .null, value.stringValue == nil {
                    throw fail("\(at).\(key) is not a text")
                }
            }
            let granted = item["granted_at"]?.stringValue.flatMap(Timestamp.init(iso8601:)) ?? expires
            var grant = StoredGrant(
                vin: vin,
                grant: ConsentGrant(
                    accessToken: AccessToken(value: Secret(token), expiresAt: expires),
                    refreshToken: item["refresh_token"]?.stringValue.map(Secret.init),
                    scope: item["scope"]?.stringValue, status: .approved,
                    authorizationID: item["authorization_id"]?.stringValue),
                grantedAt: granted,
                lastRefreshAt: item["last_refresh_at"]?.stringValue.flatMap(Timestamp.init(iso8601:)))
            grant.status = status
            grant.lastError = item["last_error"]?.stringValue
            contents.grants.append(grant)
        }
        for (index, item) in (root["pending_authorizations"]?.arrayValue ?? []).enumerated() {
            let at = "pending_authorizations[\(index)]"
            guard let state = item["state"]?.stringValue, let verifier = item["code_verifier"]?.stringValue,
                let redirect = item["redirect_uri"]?.stringValue,
                let created = item["created_at"]?.stringValue.flatMap(Timestamp.init(iso8601:))
            else { throw fail("\(at) lacks state, code_verifier, redirect_uri or created_at") }
            contents.pending.append(
                PendingAuthorization(
                    state: state, codeVerifier: Secret(verifier), redirectURI: redirect,
                    vin: item["vin"]?.stringValue.flatMap(VIN.init), createdAt: created))
        }
        return contents
    }
}

/// The consent state file could not be read or written.
public struct GrantFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String { "consent state file \(path) \(problem)" }
}
