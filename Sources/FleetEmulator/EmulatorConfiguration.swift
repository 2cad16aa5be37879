import FleetModel

/// How the emulator behaves: its fleet, credentials and time.
public struct EmulatorConfiguration: Sendable {
    /// Number of simulated vehicles; their VINs are ``vin(index:)`` for 1…count.
    public var vehicleCount: Int
    /// Seeds every vehicle's simulation; the same seed gives the same fleet history.
    public var seed: UInt64
    /// Simulated seconds per wall-clock second (1440: a day per minute).
    public var timeScale: Double
    /// The OAuth client id the emulator accepts.
    public var clientID: String
    /// The OAuth client secret the emulator accepts.
    public var clientSecret: String
    /// `expires_in` of issued access tokens, in wall-clock seconds (300 on the platform).
    public var tokenLifetime: Duration
    /// The body shape of vehicle data.
    public var shape: VehicleDataRenderer.Shape
    /// How long a registered vehicle stays `pending` before it is `approved` (wall-clock time).
    public var approvalDelay: Duration
    /// How long `revoking` and `canceling` last before `revoked` and `canceled` (wall-clock time).
    public var removalDelay: Duration
    /// An application-wide limit on vehicle-data requests, answered with 429 and `Retry-After`.
    public var rateLimit: RateLimit?
    /// A limit per vehicle, answered with 403 `Quota exceeded for this vehicle` and `Retry-After`
    /// (as some OEMs answer a spent quota).
    public var vehicleQuota: RateLimit?
    /// Vehicles reachable only through their owner's consent (the `authorization_code` flow), not
    /// fleet clearance; their VINs are ``consentVIN(index:)``.
    public var consentVehicleCount: Int
    /// `expires_in` of vehicle access tokens from the consent flow (3600 on the platform).
    public var consentTokenLifetime: Duration
    /// How long a refresh token is accepted (each works once: a refresh rotates it).
    public var refreshTokenLifetime: Duration
    /// How long a new consent grant stays `pending` before it is `approved` (0: approved at once).
    public var consentApprovalDelay: Duration

    /// At most `requests` vehicle-data requests per `per` (a fixed window, wall-clock).
    public struct RateLimit: Sendable, Hashable {
        public var requests: Int
        public var per: Duration
        public init(requests: Int, per: Duration) {
            self.requests = requests
            self.per = per
        }
    }

    public init(
        vehicleCount: Int = 5,
        seed: UInt64 = 1,
        timeScale: Double = 1440,
        clientID: String = EmulatorConfiguration.defaultClientID,
        clientSecret: String = EmulatorConfiguration.defaultClientSecret,
        tokenLifetime: Duration = .seconds(300),
        shape: VehicleDataRenderer.Shape = .autoAPI,
        approvalDelay: Duration = .seconds(5),
        removalDelay: Duration = .seconds(5),
        rateLimit: RateLimit? = nil,
        vehicleQuota: RateLimit? = nil,
        consentVehicleCount: Int = 2,
        consentTokenLifetime: Duration = .seconds(3600),
        refreshTokenLifetime: Duration = .seconds(30 * 86_400),
        consentApprovalDelay: Duration = .zero
    ) {
        self.consentVehicleCount = consentVehicleCount
        self.consentTokenLifetime = consentTokenLifetime
        self.refreshTokenLifetime = refreshTokenLifetime
        self.consentApprovalDelay = consentApprovalDelay
        self.rateLimit = rateLimit
        self.vehicleQuota = vehicleQuota
        self.approvalDelay = approvalDelay
        self.removalDelay = removalDelay
        self.vehicleCount = vehicleCount
        self.seed = seed
        self.timeScale = timeScale
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.tokenLifetime = tokenLifetime
        self.shape = shape
    }

    /// The client id a plain `fleet-telemetry emulator` accepts.
    public static let defaultClientID = "emulator-client"
    /// The client secret a plain `fleet-telemetry emulator` accepts (a test value, not a secret).
    public static let defaultClientSecret = "emulator-secret"

    /// The VIN of simulated vehicle `index` (1-based): `1HMEMU` and the index in 11 digits.
    public static func vin(index: Int) -> VIN {
        let digits = String(index)
        return VIN("1HMEMU" + String(repeating: "0", count: 11 - digits.count) + digits)!
    }

    /// The VIN of consent vehicle `index` (1-based): `1HMCNS` and the index in 11 digits.
    public static func consentVIN(index: Int) -> VIN {
        let digits = String(index)
        return VIN("1HMCNS" + String(repeating: "0", count: 11 - digits.count) + digits)!
    }

    /// The VINs of the consent vehicles, in order.
    public var consentVINs: [VIN] {
        consentVehicleCount > 0 ? (1...consentVehicleCount).map(Self.consentVIN(index:)) : []
    }

    /// The VINs of this fleet, in order.
    public var vins: [VIN] { (1...max(1, vehicleCount)).map(Self.vin(index:)) }
}
