/// What a vehicle was doing at its last response with data, as its samples tell it: the
/// scheduler polls by it (`polling.intervals.driving|charging|parked`).
public enum VehicleActivity: String, Sendable, Hashable, CaseIterable {
    /// Ignition on, or a speed above zero.
    case driving
    /// `charging.status` is a charging state.
    case charging
    /// Neither.
    case parked
}

/// Whether the daemon polls a vehicle: the `vehicles.status` column.
public enum PollingStatus: String, Sendable, Hashable, CaseIterable {
    /// Polled (approved by the fleet clearance, or listed in the config).
    case active
    /// Its clearance is not `approved`: not polled until it is again.
    case notCleared = "not_cleared"
    /// The OEM removed the consent (`Consent is removed by OEM`): never polled again.
    case consentRemoved = "consent_removed"
    /// A vehicle connected by its owner's consent lost access (its refresh token was refused):
    /// polled again once the owner consents anew.
    case consentRequired = "consent_required"
}
