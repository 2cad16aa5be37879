/// A vehicle's fleet clearance status (Fleet Clearance API `status`).
///
/// The platform's statuses are `pending, approved, rejected, revoking, revoked, canceling,
/// canceled` and `error` (the last only in answers to a registration). The OpenAPI document's
/// `clearance_status` uses a subset (`pending, approved, revoked, error`).
public enum ClearanceStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case pending, approved, rejected, revoking, revoked, canceling, canceled, error

    /// Approved vehicles are polled.
    public var isPollable: Bool { self == .approved }

    /// Statuses that will not change by themselves: the vehicle is no longer in the fleet.
    public var isTerminal: Bool {
        switch self {
        case .rejected, .revoked, .canceled, .error: return true
        default: return false
        }
    }
}

/// Brand names, which the platform writes with hyphens in fleet calls (`mercedes-benz`) and with
/// underscores in vehicle data (`mercedes_benz`).
public enum Brand {
    /// The canonical, stored form: lower case with underscores (`mercedes_benz`, `volvo_cars`).
    public static func canonical(_ name: String) -> String {
        String(name.lowercased().map { $0 == "-" || $0 == " " ? "_" : $0 })
    }

    /// The form the Fleet Clearance and Eligibility APIs take: lower case with hyphens.
    public static func fleetForm(_ name: String) -> String {
        String(canonical(name).map { $0 == "_" ? "-" : $0 })
    }

    /// True for a plausible brand name: 1–40 characters of `a-z`, `0-9`, `_` or `-`.
    public static func isValid(_ name: String) -> Bool {
        let canonical = canonical(name)
        return !canonical.isEmpty && canonical.count <= 40
            && canonical.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
            }
    }
}

/// A vehicle of the fleet, as the Fleet Clearance API describes it.
public struct FleetVehicle: Sendable, Hashable {
    public var vin: VIN
    /// Canonical brand (``Brand/canonical(_:)``), when known.
    public var brand: String?
    public var status: ClearanceStatus
    /// The platform's free-text tags (`{"depot": "north"}`).
    public var tags: [String: String]
    /// The OpenAPI document's `license_plate`.
    public var licensePlate: String?
    /// Why a registration failed (`status == .error`), e.g. "vin should be 17 character(s)".
    public var description: String?

    public init(
        vin: VIN, brand: String?, status: ClearanceStatus, tags: [String: String] = [:], licensePlate: String? = nil,
        description: String? = nil
    ) {
        self.vin = vin
        self.brand = brand.map(Brand.canonical)
        self.status = status
        self.tags = tags
        self.licensePlate = licensePlate
        self.description = description
    }
}

/// The answer of an eligibility check.
public struct Eligibility: Sendable, Hashable {
    public var vin: VIN
    public var eligible: Bool
    /// Platform: `pull` and/or `push`.
    public var dataDelivery: [String]
    /// Platform: `activated`, `deactivated` or `unknown`.
    public var connectivityStatus: String?
    /// Platform: whether a primary user is assigned.
    public var primaryUserAssigned: Bool?
    /// Document: the brand.
    public var brand: String?
    /// Document: capabilities the vehicle supports.
    public var capabilities: [String]
    /// Document: whether clearance is required.
    public var clearanceRequired: Bool?

    public init(
        vin: VIN, eligible: Bool, dataDelivery: [String] = [], connectivityStatus: String? = nil,
        primaryUserAssigned: Bool? = nil, brand: String? = nil, capabilities: [String] = [],
        clearanceRequired: Bool? = nil
    ) {
        self.vin = vin
        self.eligible = eligible
        self.dataDelivery = dataDelivery
        self.connectivityStatus = connectivityStatus
        self.primaryUserAssigned = primaryUserAssigned
        self.brand = brand
        self.capabilities = capabilities
        self.clearanceRequired = clearanceRequired
    }
}
