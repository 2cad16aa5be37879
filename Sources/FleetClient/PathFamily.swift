/// Which set of paths and bodies the API speaks.
///
/// The OpenAPI document our user handed over and the live platform differ in three paths and in
/// body shapes; the daemon speaks either (config key `api.paths`).
public enum PathFamily: String, Sendable, Hashable, CaseIterable {
    /// The live platform (High Mobility's own spec, SDK and docs): `POST /v1/access_tokens` (JSON),
    /// `POST /v1/eligibility` (JSON `{vin, brand}`), `/v1/fleets/vehicles[/{vin}]` with
    /// `{"vehicles": [{vin, brand, tags}]}`.
    case platform
    /// The OpenAPI document: `POST /v1/access_token` (form-encoded), `GET /v1/eligibility/{vin}`,
    /// `/v1/fleet/vehicles[/{vin}]` with `{vin, brand, license_plate}`.
    case document

    /// The token endpoint's path.
    public var tokenPath: String { self == .platform ? "/v1/access_tokens" : "/v1/access_token" }

    /// The fleet clearance collection's path.
    public var fleetPath: String { self == .platform ? "/v1/fleets/vehicles" : "/v1/fleet/vehicles" }

    /// The vehicle-data path of `vin` (the same in both).
    public static func vehicleDataPath(_ vin: String) -> String { "/v1/vehicle-data/autoapi-13/" + vin }
}
