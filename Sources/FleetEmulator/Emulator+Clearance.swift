import FleetModel

/// One vehicle's clearance in the emulator.
struct Clearance: Sendable {
    var brand: String
    var status: ClearanceStatus
    var tags: [String: String] = [:]
    var licensePlate: String?
    var changelog: [(ClearanceStatus, Timestamp)]
    var createdAt: Timestamp
    /// When the current transitional status (`pending`, `revoking`, `canceling`) ends.
    var transitionAt: Timestamp?
}

/// Brands the emulator's eligibility check and fleet clearance accept (fleet form).
let emulatedBrands: Set<String> = [
    "sandbox", "mercedes-benz", "ford", "bmw", "mini", "citroen", "peugeot", "opel", "vauxhall", "ds",
    "jeep", "fiat", "alfaromeo", "renault", "toyota", "lexus", "volvo-cars", "tesla", "polestar", "kia", "hyundai",
]

/// The emulator's Fleet Clearance and Eligibility endpoints, for both path families.
///
/// Lifecycle: a registered vehicle is `pending` for ``EmulatorConfiguration/approvalDelay``, then
/// `approved` (and gets a simulation, so its data can be polled). Removing an approved vehicle
/// makes it `revoking`, then `revoked`; removing a pending one makes it `canceling`, then
/// `canceled`, each after ``EmulatorConfiguration/removalDelay``. ``setClearance(_:vin:)`` forces a
/// status (e.g. `rejected`) for tests.
extension Emulator {
    /// Moves transitional clearances whose time has come to their next status.
    func advanceClearances(_ state: inout State, now: Timestamp) {
        for (vin, var clearance) in state.clearances {
            guard let at = clearance.transitionAt, at <= now else { continue }
            let next: ClearanceStatus
            switch clearance.status {
            case .pending: next = .approved
            case .revoking: next = .revoked
            case .canceling: next = .canceled
            default: continue
            }
            clearance.status = next
            clearance.changelog.append((next, at))
            clearance.transitionAt = nil
            if next == .approved, state.vehicles[vin] == nil {
                var seed: UInt64 = configuration.seed
                for byte in vin.rawValue.utf8 { seed = seed &* 31 &+ UInt64(byte) }
                state.vehicles[vin] = VehicleSimulation(vin: vin, seed: seed, start: simulatedNow())
            }
            state.clearances[vin] = clearance
        }
    }

    /// Registers `vin` for clearance as a user would: `pending`, approved after
    /// ``EmulatorConfiguration/approvalDelay``.
    public func enroll(_ vin: VIN, brand: String = "sandbox") {
        _ = register(vin: vin, brand: brand, tags: [:], licensePlate: nil, now: now)
    }

    /// Forces `vin`'s clearance to `status` now (registering it with brand `sandbox` if unknown).
    public func setClearance(_ status: ClearanceStatus, vin: VIN) {
        let now = self.now
        withState { state in
            var clearance =
                state.clearances[vin] ?? Clearance(brand: "sandbox", status: status, changelog: [], createdAt: now)
            clearance.status = status
            clearance.changelog.append((status, now))
            clearance.transitionAt = nil
            state.clearances[vin] = clearance
        }
    }

    /// The clearance status of `vin`, after due transitions.
    public func clearanceStatus(vin: VIN) -> ClearanceStatus? {
        let now = self.now
        return withState { state in
            advanceClearances(&state, now: now)
            return state.clearances[vin]?.status
        }
    }

    // MARK: - Fleet clearance

    /// `GET /v1/fleets/vehicles` (platform: bare array with changelog) and `GET /v1/fleet/vehicles` (document).
    public func listFleet(authorization: String?, family: Family) -> Reply {
        let now = self.now
        if let denied = unauthorized(authorization, now: now) { return denied }
        let items = withState { state -> [JSONValue] in
            advanceClearances(&state, now: now)
            return state.clearances.sorted { $0.key < $1.key }.map {
                render($0.value, vin: $0.key, family: family, withChangelog: true)
            }
        }
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(.array(items)))
    }

    /// `GET /v1/fleets/vehicles/{vin}` and `GET /v1/fleet/vehicles/{vin}`.
    public func showFleetVehicle(vinText: String, authorization: String?, family: Family) -> Reply {
        let now = self.now
        if let denied = unauthorized(authorization, now: now) { return denied }
        let item = withState { state -> JSONValue? in
            advanceClearances(&state, now: now)
            guard let vin = VIN(vinText), let clearance = state.clearances[vin] else { return nil }
            return render(clearance, vin: vin, family: family, withChangelog: true)
        }
        guard let item else {
            return Self.apiError(404, "Not found", "Clearance for the given VIN not found", requestID: nextRequestID())
        }
        return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(item))
    }

    /// `POST /v1/fleets/vehicles` with `{"vehicles": [{vin, brand, tags}]}`: one answer per vehicle.
    public func registerPlatform(body: JSONValue?, authorization: String?) -> Reply {
        let now = self.now
        if let denied = unauthorized(authorization, now: now) { return denied }
        guard let vehicles = body?["vehicles"]?.arrayValue, !vehicles.isEmpty, vehicles.count <= 1000 else {
            return Self.apiError(
                422, "Unprocessable Entity", "vehicles must be a non-empty array of {vin, brand, tags}",
                requestID: nextRequestID())
        }
        let answers = vehicles.map { item -> JSONValue in
            let vinText = item["vin"]?.stringValue ?? ""
            let brand = item["brand"]?.stringValue ?? ""
            let tags = item["tags"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
            guard vinText.count == 17, let vin = VIN(vinText) else {
                return .object([
                    "vin": .string(String(vinText.prefix(40))), "status": .string("error"),
                    "description": .string("vin should be 17 character(s)"),
                ])
            }
            guard emulatedBrands.contains(brand) else {
                return .object([
                    "vin": .string(vin.rawValue), "status": .string("error"),
                    "description": .string("The brand is invalid"),
                ])
            }
            let status = register(vin: vin, brand: brand, tags: tags, licensePlate: nil, now: now)
            return .object([
                "vin": .string(vin.rawValue), "status": .string(status.rawValue),
                "tags": .object(JSONObject(strings: tags)),
            ])
        }
        return Reply(
            status: 200, headers: [("Content-Type", "application/json")],
            body: Self.encode(.object(["vehicles": .array(answers)])))
    }

    /// `POST /v1/fleet/vehicles` with `{vin, brand, license_plate}`: 201 with the fleet vehicle.
    public func registerDocument(body: JSONValue?, authorization: String?) -> Reply {
        let now = self.now
        if let denied = unauthorized(authorization, now: now) { return denied }
        guard let vinText = body?["vin"]?.stringValue, let vin = VIN(vinText), let brand = body?["brand"]?.stringValue,
            !brand.isEmpty
        else {
            return Self.apiError(
                400, "Bad Request", "vin (17 characters) and brand are required", requestID: nextRequestID())
        }
        guard emulatedBrands.contains(brand) else {
            return Self.apiError(400, "Bad Request", "The brand is invalid", requestID: nextRequestID())
        }
        _ = register(vin: vin, brand: brand, tags: [:], licensePlate: body?["license_plate"]?.stringValue, now: now)
        let item = withState { state in
            render(state.clearances[vin]!, vin: vin, family: .document, withChangelog: false)
        }
        return Reply(status: 201, headers: [("Content-Type", "application/json")], body: Self.encode(item))
    }

    private func register(
        vin: VIN, brand: String, tags: [String: String], licensePlate: String?, now: Timestamp
    ) -> ClearanceStatus {
        let delay = configuration.approvalDelay
        return withState { state in
            advanceClearances(&state, now: now)
            if let existing = state.clearances[vin], !existing.status.isTerminal {
                return existing.status
            }
            state.clearances[vin] = Clearance(
                brand: brand, status: .pending, tags: tags, licensePlate: licensePlate, changelog: [(.pending, now)],
                createdAt: now, transitionAt: now.adding(delay))
            return .pending
        }
    }

    /// `DELETE /v1/fleets/vehicles/{vin}` (200 with the new status) and `DELETE /v1/fleet/vehicles/{vin}` (204).
    public func removeFleetVehicle(vinText: String, authorization: String?, family: Family) -> Reply {
        let now = self.now
        if let denied = unauthorized(authorization, now: now) { return denied }
        let delay = configuration.removalDelay
        enum Outcome { case notFound, conflict(String), removed(JSONValue) }
        let outcome = withState { state -> Outcome in
            advanceClearances(&state, now: now)
            guard let vin = VIN(vinText), var clearance = state.clearances[vin] else { return .notFound }
            switch clearance.status {
            case .approved: clearance.status = .revoking
            case .pending: clearance.status = .canceling
            case .revoking, .canceling: return .conflict("Clearance is in transition mode")
            default: return .conflict("Clearance is already removed")
            }
            clearance.changelog.append((clearance.status, now))
            clearance.transitionAt = now.adding(delay)
            state.clearances[vin] = clearance
            return .removed(
                .object([
                    "vin": .string(vin.rawValue), "status": .string(clearance.status.rawValue),
                    "tags": .object(JSONObject(strings: clearance.tags)),
                ]))
        }
        switch outcome {
        case .notFound:
            return Self.apiError(404, "Not found", "Clearance for the given VIN not found", requestID: nextRequestID())
        case .conflict(let detail): return Self.apiError(409, "Conflict", detail, requestID: nextRequestID())
        case .removed(let body):
            if family == .document { return Reply(status: 204, headers: [], body: "") }
            return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
        }
    }

    private func render(_ clearance: Clearance, vin: VIN, family: Family, withChangelog: Bool) -> JSONValue {
        switch family {
        case .platform:
            var object: JSONObject = [
                "vin": .string(vin.rawValue), "brand": .string(clearance.brand),
                "status": .string(clearance.status.rawValue),
                "tags": .object(JSONObject(strings: clearance.tags)),
            ]
            if withChangelog {
                object["changelog"] = .array(
                    clearance.changelog.map {
                        .object(["status": .string($0.0.rawValue), "timestamp": .string($0.1.iso8601)])
                    })
            }
            return .object(object)
        case .document:
            let status: String
            switch clearance.status {
            case .pending, .canceling: status = "pending"
            case .approved, .revoking: status = "approved"
            case .revoked, .canceled: status = "revoked"
            case .rejected, .error: status = "error"
            }
            var object: JSONObject = [
                "vin": .string(vin.rawValue), "brand": .string(clearance.brand), "clearance_status": .string(status),
                "created_at": .string(clearance.createdAt.iso8601),
            ]
            if let plate = clearance.licensePlate { object["license_plate"] = .string(plate) }
            return .object(object)
        }
    }

    // MARK: - Eligibility

    /// `POST /v1/eligibility` with `{vin, brand}` (platform) or `GET /v1/eligibility/{vin}` (document).
    public func eligibility(vinText: String?, brand: String?, authorization: String?, family: Family) -> Reply {
        let now = self.now
        if let denied = unauthorized(authorization, now: now) { return denied }
        guard let vinText, let vin = VIN(vinText) else {
            return family == .platform
                ? Self.apiError(
                    422, "Unprocessable Entity", "vin should be 17 character(s)", requestID: nextRequestID())
                : Self.apiError(404, "Not found", "Vehicle not found", requestID: nextRequestID())
        }
        switch family {
        case .platform:
            guard let brand, !brand.isEmpty else {
                return Self.apiError(422, "Unprocessable Entity", "brand can't be blank", requestID: nextRequestID())
            }
            let eligible = emulatedBrands.contains(brand)
            let body = JSONValue.object([
                "vin": .string(vin.rawValue), "eligible": .bool(eligible),
                "data_delivery": .array(eligible ? [.string("pull"), .string("push")] : []),
                "connectivity_status": .string(eligible ? "activated" : "unknown"),
                "primary_user_assigned": .bool(false),
            ])
            return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
        case .document:
            let body = JSONValue.object([
                "vin": .string(vin.rawValue), "brand": .string("sandbox"), "eligible": .bool(true),
                "capabilities": .array(["doors", "charging", "diagnostics", "vehicle_location"].map(JSONValue.string)),
                "clearance_required": .bool(true),
            ])
            return Reply(status: 200, headers: [("Content-Type", "application/json")], body: Self.encode(body))
        }
    }

    /// Which path family a route belongs to.
    public enum Family: Sendable { case platform, document }
}
