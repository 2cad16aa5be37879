import FleetClient
import FleetConsent
import FleetIngestion
import FleetModel
import FleetScheduling
import ServiceLifecycle

/// One scheduled poll: the API client's request, then the ingestion path, then what the answer
/// means for the schedule.
///
/// It never throws: every failure (HTTP error, timeout, malformed body, failed write) becomes a
/// ``Result`` whose ``PollSchedule/Outcome`` the scheduler records.
public struct PollPipeline: Sendable {
    /// Sends the vehicle-data request.
    public let client: HighMobilityClient
    /// Normalizes and stores the answer, and delivers its events.
    public let ingestion: Ingestion
    /// The request and failure times (UTC).
    public let clock: any WallClock
    /// The grants of the vehicles their owners connected, polled with their own tokens.
    public let consent: ConsentTokens?

    public init(client: HighMobilityClient, ingestion: Ingestion, clock: any WallClock, consent: ConsentTokens? = nil) {
        self.client = client
        self.ingestion = ingestion
        self.clock = clock
        self.consent = consent
    }

    /// What one poll did.
    public struct Result: Sendable {
        /// The vehicle polled.
        public var vin: VIN
        /// What the answer means for the schedule.
        public var outcome: PollSchedule.Outcome
        /// The HTTP status, `nil` when no response came.
        public var httpStatus: Int? = nil
        /// New rows in `samples`.
        public var samplesWritten: Int
        /// Events stored (with ids) and delivered.
        public var events: [Event]
        /// The one-line error of a failed poll.
        public var error: String?
        /// False when the answer could not be written (disk full, database locked).
        public var stored = true
        /// A consent vehicle whose grant is lost (`invalid_grant`): with ``outcome`` `.stop`.
        public var consentRequired = false
    }

    /// Polls `vin` once and stores what came back.
    ///
    /// If the database write fails (disk full, locked), the error is logged and the poll counts as
    /// failed, so the VIN backs off; rows committed earlier are untouched.
    ///
    /// Two answers are not the vehicle's and write no `polls` row:
    /// - On graceful shutdown (or cancellation) a request still waiting for its answer is
    ///   cancelled: ``PollSchedule/Outcome/cancelled``. An answer already in hand is stored.
    /// - When no access token can be obtained the request is never sent:
    ///   ``PollSchedule/Outcome/tokenUnavailable(retryAfter:)``.
    public func poll(_ vin: VIN) async -> Result {
        let requestedAt = clock.now()
        let answer: Swift.Result<VehicleDataResponse, APIError>
        let client = self.client
        // A vehicle its owner connected is polled with its own token.
        var token: AccessToken?
        if let consent, let access = await consent.access(for: vin) {
            switch access {
            case .ready(let ready): token = ready
            case let other: return await withoutRequest(vin, other)
            }
        }
        do {
            if let bearer = token {
                do {
                    answer = .success(
                        try await cancelWhenGracefulShutdown { try await client.vehicleData(vin: vin, token: bearer) })
                } catch let error as APIError where error.isInvalidToken {
                    // Refused before its expiry (revoked, rotated elsewhere): refreshed once, asked again.
                    let retry = await consent?.rejected(bearer, vin: vin) ?? .pending
                    guard case .ready(let renewed) = retry else { return await withoutRequest(vin, retry) }
                    answer = .success(
                        try await cancelWhenGracefulShutdown { try await client.vehicleData(vin: vin, token: renewed) })
                }
            } else {
                answer = .success(try await cancelWhenGracefulShutdown { try await client.vehicleData(vin: vin) })
            }
        } catch let error as APIError {
            if error.kind == .transport && (Task.isCancelled || Task.isShuttingDownGracefully) {
                return Result(vin: vin, outcome: .cancelled, samplesWritten: 0, events: [], error: "cancelled")
            }
            if case .tokenUnavailable(let retryAfter) = error.vehicleDataFailure {
                return Result(
                    vin: vin, outcome: .tokenUnavailable(retryAfter: retryAfter), samplesWritten: 0, events: [],
                    error: error.description)
            }
            answer = .failure(error)
        } catch {
            // Only the cancellation of a stopping daemon throws anything but an `APIError`.
            return Result(vin: vin, outcome: .cancelled, samplesWritten: 0, events: [], error: "cancelled")
        }
        let answeredAt = clock.now()
        let ingested = await ingestion.ingest(vin: vin, requestedAt: requestedAt, answer: answer, failedAt: answeredAt)
        // One line per poll at debug: what a running daemon does, without a query.
        let status = ingested.httpStatus.map { "HTTP \($0)" } ?? "no answer"
        let milliseconds = answeredAt.millisecondsSince1970 - requestedAt.millisecondsSince1970
        let values = ingested.payload?.samples.count ?? 0
        let failure = ingested.error.map { "; \($0)" } ?? ""
        let events = ingested.events.count == 1 ? "1 event" : "\(ingested.events.count) events"
        ingestion.logger.debug(
            "polled \(vin): \(status) in \(milliseconds) ms, \(values) values, \(ingested.samplesWritten) new samples, \(events)\(failure)"
        )
        return Result(
            vin: vin, outcome: PollSchedule.Outcome(ingested), httpStatus: ingested.httpStatus,
            samplesWritten: ingested.samplesWritten, events: ingested.events, error: ingested.error,
            stored: ingested.stored)
    }
}

extension PollPipeline {
    /// A consent vehicle that is not polled now: its grant is pending, lost, or has no valid token.
    /// No request is sent and no `polls` row written; a lost grant stores its `consent_required`
    /// event (once) and the vehicle's status.
    func withoutRequest(_ vin: VIN, _ access: ConsentTokens.Access) async -> Result {
        switch access {
        case .ready:
            return Result(vin: vin, outcome: .failed, samplesWritten: 0, events: [], error: "token refused twice")
        case .pending:
            return Result(
                vin: vin, outcome: .slow(.pending), samplesWritten: 0, events: [],
                error: "the owner's consent is pending approval")
        case .unavailable(let error, _):
            return Result(vin: vin, outcome: .failed, samplesWritten: 0, events: [], error: error.description)
        case .revoked:
            let reason =
                "its consent grant was revoked (fleet-telemetry consent revoke); connect it again with consent url"
            try? await ingestion.store.setStatus(.consentRequired, reason: reason, vin: vin, at: clock.now())
            var result = Result(vin: vin, outcome: .stop, samplesWritten: 0, events: [], error: reason)
            result.consentRequired = true
            return result
        case .consentRequired(let event):
            var stored: [Event] = []
            do {
                let now = clock.now()
                try await ingestion.store.setStatus(
                    .consentRequired, reason: "the refresh token was refused; the owner must consent again", vin: vin,
                    at: now)
                if let event {
                    stored = try await ingestion.store.record(events: [event])
                    await ingestion.sink.deliver(stored)
                }
            } catch {
                ingestion.logger.error("\(vin): consent_required could not be stored: \(error)")
            }
            var result = Result(
                vin: vin, outcome: .stop, samplesWritten: 0, events: stored,
                error: "the owner's consent is required again (fleet-telemetry consent url --vin \(vin))")
            result.consentRequired = true
            return result
        }
    }
}

extension PollSchedule.Outcome {
    /// How an ingested answer affects the schedule.
    init(_ poll: IngestedPoll) {
        guard poll.stored else {
            self = .failed
            return
        }
        switch poll.failure {
        case .credentialsRejected: self = .credentialsRejected
        case .consentRemoved: self = .stop
        case .rateLimited(let retryAfter, let applicationWide):
            self = .rateLimited(retryAfter: retryAfter, applicationWide: applicationWide)
        case .tokenUnavailable(let retryAfter): self = .tokenUnavailable(retryAfter: retryAfter)
        case .asleep: self = .slow(.asleep)
        case .dataPending: self = .slow(.pending)
        case .privacyMode: self = .slow(.privacy)
        case .notCleared: self = .slow(.notCleared)
        case .transientFault: self = .failed
        case nil:
            if poll.payload == nil {
                self = .failed
            } else if poll.propertyRateLimited {
                self = .slow(.rateLimited)
            } else {
                self = .success(poll.activity)
            }
        }
    }
}
