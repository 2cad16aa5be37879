import FleetClient
import FleetModel
import Foundation
import Logging

/// The daemon's hold on the consent vehicles' grants: the token to poll each with, renewed ahead of
/// its expiry, one refresh at a time per vehicle.
///
/// - A refresh is single-flight per vehicle: callers that find the token due while a refresh of
///   it is in flight wait for that refresh, so N concurrent polls send one token request.
/// - The refreshed grant (with its rotated refresh token) is written to the ``GrantFile`` before
///   the new token is handed out: a process killed at any moment leaves the old grant or the new
///   one in the file, never neither.
/// - A transient failure (no answer, 5xx, 429) keeps the old grant: its access token is used while
///   it is valid, and the refresh is tried again after a backoff (1 s doubling to
///   ``maxBackoff``, or `Retry-After` when longer).
/// - `invalid_grant` (a refresh token spent, expired or revoked) marks the grant
///   `consent_required` in the file: no request is sent for it again until the owner consents anew.
/// - A `pending` grant is refreshed at most every ``pendingRecheck`` to learn its approval.
/// - A grant not refreshed for ``idleRefresh`` is refreshed by ``refreshIdle()``, whether or not its
///   vehicle is polled (asleep, privacy mode, a spent budget), so its refresh token never lapses.
public actor ConsentTokens {
    /// What a poll of a consent vehicle can do.
    public enum Access: Sendable, Hashable {
        /// Poll with this token.
        case ready(AccessToken)
        /// The platform has not approved the grant yet: do not poll.
        case pending
        /// Access is lost (`invalid_grant`); `event` is the `consent_required` event to store, the
        /// first time only.
        case consentRequired(event: Event?)
        /// No valid token now (the token endpoint failed); try again after `retryIn`.
        case unavailable(APIError, retryIn: Duration)
        /// The grant was removed from the state file (`consent revoke`): not polled any more, and
        /// no `consent_required` event (nobody lost anything they did not mean to).
        case revoked
    }

    private let file: GrantFile
    private let client: HighMobilityClient
    private let clock: any WallClock
    private let logger: Logger
    private var grants: [VIN: StoredGrant] = [:]
    /// Vehicles whose grant left the state file while this process held it.
    private var revoked: Set<VIN> = []
    /// Refreshed grants the state file could not take yet: used from memory, written at reload.
    private var unsaved: [VIN: StoredGrant] = [:]
    private var loadedStamp: (modified: Date?, size: Int)?
    private var inFlight: [VIN: Task<StoredGrant, any Error>] = [:]
    private var failures: [VIN: (count: Int, nextAttempt: Timestamp, error: APIError)] = [:]

    /// A token is renewed once less than this (or half of its life) remains.
    public static let renewalMargin: Duration = .seconds(300)
    /// How often a `pending` grant is refreshed to learn whether it was approved.
    public static let pendingRecheck: Duration = .seconds(600)
    /// A grant not refreshed for this long is refreshed by ``refreshIdle()``.
    public static let idleRefresh: Duration = .seconds(24 * 3600)
    /// The longest wait between two failed refreshes of one grant.
    public static let maxBackoff: Duration = .seconds(300)

    public init(file: GrantFile, client: HighMobilityClient, clock: any WallClock, logger: Logger) {
        self.file = file
        self.client = client
        self.clock = clock
        self.logger = logger
    }

    /// Reads the grant file again when it changed (a `consent exchange` or `revoke` meanwhile).
    ///
    /// - Returns: The vehicles to poll: those with an `approved` or `pending` grant.
    /// - Throws: ``GrantFileError`` when the file cannot be read; the grants read before are kept.
    @discardableResult
    public func reload() throws(GrantFileError) -> Set<VIN> {
        let attributes = try? FileManager.default.attributesOfItem(atPath: file.path)
        let stamp = (
            modified: attributes?[.modificationDate] as? Date, size: (attributes?[.size] as? NSNumber)?.intValue ?? -1
        )
        if unsaved.isEmpty, let loadedStamp, loadedStamp.modified == stamp.modified, loadedStamp.size == stamp.size {
            return pollable
        }
        var contents = try file.read()
        // A refreshed grant the file could not take: its rotated refresh token is the only one
        // that works; written now, unless the grant was revoked or replaced meanwhile.
        for (vin, grant) in unsaved {
            guard let inFile = contents.grant(of: vin), inFile.grantedAt == grant.grantedAt else {
                unsaved[vin] = nil
                continue
            }
            var kept = grant
            kept.lastError = nil
            if (try? file.update({ $0.put(kept) })) != nil {
                unsaved[vin] = nil
                contents.put(kept)
            } else {
                contents.put(grant)
            }
        }
        let before = Set(grants.keys)
        grants = Dictionary(contents.grants.map { ($0.vin, $0) }, uniquingKeysWith: { $1 })
        revoked.formUnion(before.subtracting(grants.keys))
        revoked.subtract(grants.keys)
        loadedStamp = stamp
        return pollable
    }

    /// The vehicles with an `approved` or `pending` grant.
    public var pollable: Set<VIN> { Set(grants.values.filter { $0.status != .consentRequired }.map(\.vin)) }

    /// True when `vin` is polled through its owner's consent (whatever the grant's state).
    public func isConsentVehicle(_ vin: VIN) -> Bool { grants[vin] != nil }

    /// What a poll of `vin` can do now; `nil` when `vin` has no grant (a fleet vehicle).
    public func access(for vin: VIN) async -> Access? {
        guard let grant = grants[vin] else { return revoked.contains(vin) ? .revoked : nil }
        let now = clock.now()
        switch grant.status {
        case .consentRequired:
            return .consentRequired(event: nil)
        case .pending:
            if now.duration(since: grant.lastRefreshAt ?? grant.grantedAt) < Self.pendingRecheck { return .pending }
        case .approved:
            if grant.token.isFresh(at: now, margin: Self.renewalMargin) {
                return .ready(grant.token)
            }
        }
        return await refreshed(vin, current: grant)
    }

    /// The API refused `token` of `vin` (401): the grant is refreshed at once (single-flight).
    public func rejected(_ token: AccessToken, vin: VIN) async -> Access? {
        guard let grant = grants[vin] else { return nil }
        guard grant.accessToken == token.value else { return await access(for: vin) }
        // Not fresh any more, whatever its expiry said.
        var stale = grant
        stale.accessExpiresAt = clock.now()
        grants[vin] = stale
        failures[vin] = nil
        return await refreshed(vin, current: stale)
    }

    /// Refreshes every grant not refreshed for ``idleRefresh`` (and not `consent_required`).
    ///
    /// - Returns: The `consent_required` events of grants found lost meanwhile.
    public func refreshIdle() async -> [Event] {
        let now = clock.now()
        var events: [Event] = []
        for grant in grants.values where grant.status != .consentRequired {
            guard now.duration(since: grant.lastRefreshAt ?? grant.grantedAt) >= Self.idleRefresh else { continue }
            if case .consentRequired(let event?) = await refreshed(grant.vin, current: grant) { events.append(event) }
        }
        return events
    }

    /// The grant after a refresh (or the wait for one in flight), as an ``Access``.
    private func refreshed(_ vin: VIN, current: StoredGrant) async -> Access {
        let now = clock.now()
        if let failure = failures[vin], now < failure.nextAttempt {
            if current.status == .approved, now < current.accessExpiresAt { return .ready(current.token) }
            return .unavailable(failure.error, retryIn: failure.nextAttempt.duration(since: now))
        }
        let task: Task<StoredGrant, any Error>
        if let running = inFlight[vin] {
            task = running
        } else {
            guard let refreshToken = current.refreshToken else {
                return await lost(vin, current: current, reason: "the grant has no refresh token")
            }
            let client = self.client
            let file = self.file
            let clock = self.clock
            task = Task {
                let grant = try await client.refreshConsent(refreshToken)
                var stored = StoredGrant(
                    vin: vin, grant: grant, grantedAt: current.grantedAt, lastRefreshAt: clock.now())
                stored.lastError = nil
                // Written before the new token is used: the rotated refresh token is the only one
                // that works from now on.
                var revokedMeanwhile = false
                do {
                    try file.update { contents in
                        guard let existing = contents.grant(of: vin) else {
                            // `consent revoke` took it out while the refresh was on its way.
                            revokedMeanwhile = true
                            return
                        }
                        // A new consent stored meanwhile (`consent exchange`) wins over this refresh.
                        if existing.grantedAt > current.grantedAt {
                            stored = existing
                            return
                        }
                        contents.put(stored)
                    }
                } catch {
                    // Not written: kept in memory (the spent refresh token would lose the grant),
                    // and written again at the next reload.
                    stored.lastError = "not written to the consent state file: \(error)"
                }
                if revokedMeanwhile {
                    try? await client.revokeConsent(stored.refreshToken ?? stored.accessToken)
                    throw RevokedMeanwhile()
                }
                return stored
            }
            inFlight[vin] = task
        }
        do {
            let grant = try await task.value
            inFlight[vin] = nil
            failures[vin] = nil
            grants[vin] = grant
            if let problem = grant.lastError, problem.hasPrefix("not written") {
                unsaved[vin] = grant
                logger.error("\(vin): the refreshed consent grant is \(problem); it stays in use from memory")
            } else {
                unsaved[vin] = nil
            }
            logger.debug(
                "\(vin): consent token refreshed, valid until \(grant.accessExpiresAt) (\(grant.status.rawValue))")
            switch grant.status {
            case .approved: return .ready(grant.token)
            case .pending: return .pending
            case .consentRequired: return .consentRequired(event: nil)
            }
        } catch is RevokedMeanwhile {
            inFlight[vin] = nil
            grants[vin] = nil
            revoked.insert(vin)
            return .revoked
        } catch let error as APIError {
            inFlight[vin] = nil
            if error.title == "invalid_grant" {
                return await lost(vin, current: current, reason: error.description)
            }
            return failed(vin, current: current, error: error)
        } catch {
            inFlight[vin] = nil
            let problem = APIError(
                kind: .transport, endpoint: "consent state file",
                detail: "the refreshed grant could not be kept: \(error)",
                vin: vin)
            logger.error("\(vin): \(problem.detail ?? "")")
            return failed(vin, current: current, error: problem)
        }
    }

    /// Books a transient refresh failure: the backoff, and the old token while it is valid.
    private func failed(_ vin: VIN, current: StoredGrant, error: APIError) -> Access {
        let now = clock.now()
        let count = (failures[vin]?.count ?? 0) + 1
        var wait = min(Duration.seconds(1) * (1 << min(count - 1, 10)), Self.maxBackoff)
        if let asked = error.retryAfter, asked > wait { wait = min(asked, .seconds(3600)) }
        failures[vin] = (count, now.adding(wait), error)
        logger.warning(
            "\(vin): the consent grant's refresh failed (\(error)); \(now < current.accessExpiresAt ? "its token stays in use until \(current.accessExpiresAt)" : "no valid token"), next try in \(readable(wait))"
        )
        var noted = current
        noted.lastError = error.description
        grants[vin] = noted
        try? file.update { contents in
            guard var stored = contents.grant(of: vin), stored.refreshToken == current.refreshToken else { return }
            stored.lastError = error.description
            contents.put(stored)
        }
        if current.status == .approved, now < current.accessExpiresAt { return .ready(current.token) }
        return .unavailable(error, retryIn: wait)
    }

    /// The grant is lost: `consent_required` in the file, and its event (once).
    private func lost(_ vin: VIN, current: StoredGrant, reason: String) async -> Access {
        let now = clock.now()
        // Revoked here (`consent revoke` took it out of the file first): not a lost consent.
        if let contents = try? file.read(), contents.grant(of: vin) == nil {
            grants[vin] = nil
            revoked.insert(vin)
            failures[vin] = nil
            logger.info("\(vin): its consent grant was revoked (fleet-telemetry consent revoke); no longer polled")
            return .revoked
        }
        var marked = current
        marked.status = .consentRequired
        marked.lastError = reason
        grants[vin] = marked
        failures[vin] = nil
        do {
            try file.update { contents in
                guard var stored = contents.grant(of: vin), stored.refreshToken == current.refreshToken else { return }
                stored.status = .consentRequired
                stored.lastError = reason
                contents.put(stored)
            }
        } catch {
            logger.error("\(vin): the consent state file could not record that consent is required: \(error)")
        }
        logger.warning(
            "\(vin): the owner's consent must be given again (fleet-telemetry consent url --vin \(vin)): \(reason)")
        return .consentRequired(
            event: Event(
                vin: vin, type: .consentRequired, instance: "", occurredAt: now, detectedAt: now,
                previousValue: current.status.rawValue, newValue: StoredGrant.Status.consentRequired.rawValue))
    }
}

/// A refresh answered after `consent revoke` took the grant out of the state file.
private struct RevokedMeanwhile: Error {}

/// `30s`, `5m`: a short readable duration for log lines.
private func readable(_ duration: Duration) -> String {
    let seconds = duration.components.seconds
    return seconds >= 60 && seconds % 60 == 0 ? "\(seconds / 60)m" : "\(seconds)s"
}
