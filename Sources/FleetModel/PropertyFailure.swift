/// A property that carried no usable value: the API reported it as failed
/// (`{"failure": {"reason", "description"}}`) or the normalizer could not read its value.
///
/// A failure is never a change: it writes no sample and emits no event. The store keeps it in
/// `property_failures` and flags the series in `latest` (`failure_reason`, `failed_at`).
public struct PropertyFailure: Sendable, Hashable {
    /// Why a property carried no value: the Auto API `failure.reason`, or one of the
    /// normalizer's own reasons (``invalidValue``, ``unreadable``).
    ///
    /// The API may send reasons this release does not know; they are kept as they came.
    public struct Reason: RawRepresentable, Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
        /// The reason as stored in `property_failures.reason` and `latest.failure_reason`.
        public var rawValue: String

        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// A reason written as its text, e.g. `"oem_error"`.
        public init(stringLiteral value: String) {
            self.rawValue = value
        }

        public var description: String { rawValue }

        /// `rate_limit`: the OEM limited requests for this property; ask again later.
        public static let rateLimit = Reason(rawValue: "rate_limit")
        /// `execution_timeout`: the OEM did not answer in time.
        public static let executionTimeout = Reason(rawValue: "execution_timeout")
        /// `format_error`: the OEM's value could not be converted by the platform.
        public static let formatError = Reason(rawValue: "format_error")
        /// `unauthorised`: the application may not read this property.
        public static let unauthorised = Reason(rawValue: "unauthorised")
        /// `unknown`: the platform gave no reason.
        public static let unknown = Reason(rawValue: "unknown")
        /// `pending`: the value has been requested from the vehicle and is not there yet.
        public static let pending = Reason(rawValue: "pending")
        /// `oem_error`: the OEM's backend failed.
        public static let oemError = Reason(rawValue: "oem_error")
        /// `privacy_mode_active`: the driver switched on privacy mode; no data is shared.
        public static let privacyModeActive = Reason(rawValue: "privacy_mode_active")
        /// `invalid_value`: the normalizer's own: a value, unit or timestamp it could not accept.
        public static let invalidValue = Reason(rawValue: "invalid_value")
        /// `unreadable`: the normalizer's own: a shape it cannot read (not an object, not snake_case).
        public static let unreadable = Reason(rawValue: "unreadable")
    }

    /// Property path, e.g. `vehicle_location.coordinates`.
    public var property: String
    /// The array entry's instance (`front_left`), when known; `""` otherwise.
    public var instance: String
    /// Why it carried no value.
    public var reason: Reason
    /// The API's free-text `failure.description`, or what was wrong with the value.
    public var description: String?
    /// The property's own timestamp, when the failure carried one (UTC); else the store uses the
    /// poll's receive time.
    public var observedAt: Timestamp?

    public init(
        property: String, instance: String = "", reason: Reason, description: String?,
        observedAt: Timestamp? = nil
    ) {
        self.property = property
        self.instance = instance
        self.reason = reason
        self.description = description
        self.observedAt = observedAt
    }
}
