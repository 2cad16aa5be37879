/// The value of one sample: a number or a text.
///
/// Numbers are already in the project's canonical unit (see ``Sample/unit``); texts are Auto API
/// enum values (`locked`, `charging`, …) or free text, exactly as the API sent them.
public enum SampleValue: Hashable, Sendable, CustomStringConvertible {
    case number(Double)
    case text(String)

    /// The number, or `nil` for a text.
    public var number: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// The text, or `nil` for a number.
    public var text: String? {
        if case .text(let t) = self { return t }
        return nil
    }

    /// The number printed without a trailing `.0` for whole values, or the text itself.
    public var description: String {
        switch self {
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
            return String(n)
        case .text(let t):
            return t
        }
    }
}

/// The key of one time series: which VIN, which property, which instance.
///
/// Its hash leaves the VIN out: the maps keyed by series hold the series of one vehicle (the
/// stored latest values a poll is compared with), where hashing the same 17 characters again for
/// every key cost more than the rest of the lookup. Keys of different VINs still compare unequal;
/// a map holding many vehicles' series works, with more collisions.
public struct SeriesKey: Hashable, Sendable {
    public var vin: VIN
    /// Property path, e.g. `charging.battery_level` or `doors.locks.lock_state`.
    public var property: String
    /// The instance within an array property (`front_left`, a dashboard light's name, …), or `""`.
    public var instance: String

    public init(vin: VIN, property: String, instance: String) {
        self.vin = vin
        self.property = property
        self.instance = instance
    }

    /// Hashes property and instance, not the VIN (see the type's documentation).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(property)
        hasher.combine(instance)
    }
}

/// One observation of one property of one vehicle.
///
/// Produced by the normalizer from an Auto API property (`{"data": …, "timestamp": …}`), stored as
/// one row of the `samples` table.
public struct Sample: Hashable, Sendable {
    /// The vehicle.
    public var vin: VIN
    /// Property path: `<capability>.<property>[.<field>]`, e.g. `charging.battery_level`,
    /// `vehicle_location.coordinates.latitude`, `doors.locks.lock_state`.
    public var property: String
    /// What tells the entries of an array property apart: the entry's `location`, else `name`,
    /// else `id`, else its index in the array. `""` for a single-valued property.
    public var instance: String
    /// The value, converted to the canonical unit.
    public var value: SampleValue
    /// The canonical unit of a number (`kilometers`, `percent`, `celsius`, `kilometers_per_hour`,
    /// `kilopascals`, …, or the Auto API unit name as sent when no conversion applies); `nil` for
    /// texts and unit-less numbers.
    public var unit: String?
    /// When the vehicle observed the value: the property's own `timestamp`, UTC.
    public var observedAt: Timestamp
    /// Whether ``observedAt`` is the vehicle's own time. When it is not, the store writes the
    /// sample only if its value differs from the stored latest one, so that polling an unchanged
    /// car adds no rows.
    public var timeSource: ObservationTimeSource
    /// The unit the API sent (`miles`, `bars`, …) before conversion, when it differs from ``unit``
    /// or the value was a 0.0–1.0 fraction; `nil` otherwise.
    public var sourceUnit: String?

    public init(
        vin: VIN, property: String, instance: String = "", value: SampleValue, unit: String? = nil,
        observedAt: Timestamp, timeSource: ObservationTimeSource = .property, sourceUnit: String? = nil
    ) {
        self.timeSource = timeSource
        self.sourceUnit = sourceUnit
        self.vin = vin
        self.property = property
        self.instance = instance
        self.value = value
        self.unit = unit
        self.observedAt = observedAt
    }

    /// The series this sample belongs to.
    public var key: SeriesKey { SeriesKey(vin: vin, property: property, instance: instance) }
}

/// The newest stored value of one series (a row of the `latest` table).
public struct LatestValue: Hashable, Sendable {
    public var value: SampleValue
    public var unit: String?
    /// When the vehicle observed it, UTC.
    public var observedAt: Timestamp

    public init(value: SampleValue, unit: String?, observedAt: Timestamp) {
        self.value = value
        self.unit = unit
        self.observedAt = observedAt
    }
}
