import FleetModel
import Foundation

/// Converts Auto API measurements (`{"value": …, "unit": "…"}`) to one canonical unit per quantity.
///
/// | quantity | canonical unit |
/// |---|---|
/// | length | `kilometers` |
/// | speed | `kilometers_per_hour` |
/// | acceleration | `meters_per_second_squared` |
/// | temperature | `celsius` |
/// | pressure | `kilopascals` |
/// | duration | `seconds` |
/// | energy | `kilowatt_hours` |
/// | electric charge | `ampere_hours` |
/// | power | `kilowatts` |
/// | volume | `liters` |
/// | electric potential difference | `volts` |
/// | electric current | `amperes` |
/// | angle | `degrees` |
/// | angular velocity | `revolutions_per_minute` |
/// | frequency | `hertz` |
/// | illuminance | `lux` |
/// | mass | `kilograms` |
/// | torque | `newton_meters` |
/// | fuel efficiency | `liters_per_100_kilometers` (reciprocal of miles per gallon) |
/// | energy efficiency | `kwh_per_100_kilometers` (reciprocal of miles per kWh) |
/// | percentage | `percent` (0–100; the Auto API sends 0.0–1.0) |
///
/// A unit the table does not know is kept as the API named it. The factors come from the Auto
/// API's `misc/unit_types.yml` and exact definitions (1 mile = 1.609344 km).
public enum UnitConversion {
    /// How a unit converts to its canonical unit.
    enum Rule {
        /// canonical = value × factor
        case linear(Double, String)
        /// canonical = value × factor + offset
        case affine(Double, Double, String)
        /// canonical = factor / value (efficiencies measured the other way round)
        case reciprocal(Double, String)
    }

    /// Why a measurement cannot be converted.
    public struct ConversionError: Error, Sendable, Hashable {
        public var reason: String
    }

    /// The canonical `(value, unit)` for `value` measured in the Auto API unit `unit`.
    ///
    /// - Throws: ``ConversionError`` for a reciprocal unit of value 0 (e.g. 0 miles per gallon).
    public static func convert(_ value: Double, unit: String) throws(ConversionError) -> (value: Double, unit: String) {
        guard let rule = rules[unit] else { return (value, unit) }
        switch rule {
        case .linear(let factor, let target):
            return factor == 1 ? (value, target) : (tidy(value * factor), target)
        case .affine(let factor, let offset, let target):
            return (tidy(value * factor + offset), target)
        case .reciprocal(let factor, let target):
            guard value != 0 else { throw ConversionError(reason: "0 \(unit) has no equivalent in \(target)") }
            return (tidy(factor / value), target)
        }
    }

    /// ``convert(_:unit:)`` for callers that accept the value unconverted when it cannot be.
    public static func canonical(_ value: Double, unit: String) -> (value: Double, unit: String) {
        (try? convert(value, unit: unit)) ?? (value, unit)
    }

    /// A 0.0–1.0 Auto API percentage as percent 0–100.
    public static func percent(fromFraction value: Double) -> Double {
        tidy(value * 100)
    }

    /// Rounds away the binary noise of a conversion (2.3 bar × 100 = 229.99999999999997 kPa)
    /// by keeping 12 significant digits, far beyond what any sensor reports.
    static func tidy(_ value: Double) -> Double {
        guard value != 0, value.isFinite else { return value }
        let magnitude = (log10(abs(value))).rounded(.down)
        let scale = pow(10, 11 - magnitude)
        guard scale.isFinite, scale > 0 else { return value }
        return (value * scale).rounded() / scale
    }

    static let rules: [String: Rule] = [
        // length → kilometers
        "meters": .linear(0.001, "kilometers"),
        "millimeters": .linear(0.000_001, "kilometers"),
        "centimeters": .linear(0.000_01, "kilometers"),
        "decimeters": .linear(0.000_1, "kilometers"),
        "kilometers": .linear(1, "kilometers"),
        "megameters": .linear(1000, "kilometers"),
        "inches": .linear(0.000_025_4, "kilometers"),
        "feet": .linear(0.000_304_8, "kilometers"),
        "yards": .linear(0.000_914_4, "kilometers"),
        "miles": .linear(1.609_344, "kilometers"),
        "scandinavian_miles": .linear(10, "kilometers"),
        "nautical_miles": .linear(1.852, "kilometers"),
        // speed → kilometers_per_hour
        "meters_per_second": .linear(3.6, "kilometers_per_hour"),
        "kilometers_per_hour": .linear(1, "kilometers_per_hour"),
        "miles_per_hour": .linear(1.609_344, "kilometers_per_hour"),
        "knots": .linear(1.852, "kilometers_per_hour"),
        // acceleration → meters_per_second_squared
        "meters_per_second_squared": .linear(1, "meters_per_second_squared"),
        "gravity": .linear(9.81, "meters_per_second_squared"),
        // temperature → celsius
        "celsius": .linear(1, "celsius"),
        "kelvin": .affine(1, -273.15, "celsius"),
        "fahrenheit": .affine(5.0 / 9.0, -32.0 * 5.0 / 9.0, "celsius"),
        // pressure → kilopascals
        "newtons_per_meters_squared": .linear(0.001, "kilopascals"),
        "pascals": .linear(0.001, "kilopascals"),
        "kilopascals": .linear(1, "kilopascals"),
        "bars": .linear(100, "kilopascals"),
        "millibars": .linear(0.1, "kilopascals"),
        "inches_of_mercury": .linear(3.386_39, "kilopascals"),
        "millimeters_of_mercury": .linear(0.133_322, "kilopascals"),
        "pounds_force_per_square_inch": .linear(6.894_76, "kilopascals"),
        // duration → seconds
        "milliseconds": .linear(0.001, "seconds"),
        "seconds": .linear(1, "seconds"),
        "minutes": .linear(60, "seconds"),
        "hours": .linear(3600, "seconds"),
        "days": .linear(86_400, "seconds"),
        "weeks": .linear(604_800, "seconds"),
        "months": .linear(2_629_800, "seconds"),
        // energy → kilowatt_hours
        "joules": .linear(1.0 / 3_600_000, "kilowatt_hours"),
        "kilojoules": .linear(1.0 / 3600, "kilowatt_hours"),
        "watt_hours": .linear(0.001, "kilowatt_hours"),
        "kilowatt_hours": .linear(1, "kilowatt_hours"),
        // electric charge → ampere_hours
        "ampere_hours": .linear(1, "ampere_hours"),
        "milliampere_hours": .linear(0.001, "ampere_hours"),
        "coulombs": .linear(1.0 / 3600, "ampere_hours"),
        // power → kilowatts
        "watts": .linear(0.001, "kilowatts"),
        "milliwatts": .linear(0.000_001, "kilowatts"),
        "kilowatts": .linear(1, "kilowatts"),
        "megawatts": .linear(1000, "kilowatts"),
        "horsepower": .linear(0.7457, "kilowatts"),
        // volume → liters
        "liters": .linear(1, "liters"),
        "milliliters": .linear(0.001, "liters"),
        "centiliters": .linear(0.01, "liters"),
        "deciliters": .linear(0.1, "liters"),
        "cubic_millimeters": .linear(0.000_001, "liters"),
        "cubic_centimeters": .linear(0.001, "liters"),
        "cubic_decimeters": .linear(1, "liters"),
        "cubic_meters": .linear(1000, "liters"),
        "cubic_inches": .linear(0.016_387_064, "liters"),
        "cubic_feet": .linear(28.316_846_592, "liters"),
        "fluid_ounces": .linear(0.029_573_529_687_5, "liters"),
        "gallons": .linear(3.785_411_784, "liters"),
        "imperial_fluid_ounces": .linear(0.028_413_062_5, "liters"),
        "imperial_gallons": .linear(4.546_09, "liters"),
        // electric potential difference → volts
        "volts": .linear(1, "volts"),
        "millivolts": .linear(0.001, "volts"),
        "kilovolts": .linear(1000, "volts"),
        // electric current → amperes
        "amperes": .linear(1, "amperes"),
        "milliamperes": .linear(0.001, "amperes"),
        "kiloamperes": .linear(1000, "amperes"),
        // angle → degrees
        "degrees": .linear(1, "degrees"),
        "radians": .linear(180 / Double.pi, "degrees"),
        "revolutions": .linear(360, "degrees"),
        // angular velocity → revolutions_per_minute
        "revolutions_per_minute": .linear(1, "revolutions_per_minute"),
        "degrees_per_second": .linear(1.0 / 6.0, "revolutions_per_minute"),
        "radians_per_second": .linear(60 / (2 * Double.pi), "revolutions_per_minute"),
        // frequency → hertz
        "hertz": .linear(1, "hertz"),
        "millihertz": .linear(0.001, "hertz"),
        "kilohertz": .linear(1000, "hertz"),
        "megahertz": .linear(1_000_000, "hertz"),
        "gigahertz": .linear(1_000_000_000, "hertz"),
        "beats_per_minute": .linear(1.0 / 60, "hertz"),
        // illuminance → lux
        "lux": .linear(1, "lux"),
        // mass → kilograms
        "kilograms": .linear(1, "kilograms"),
        "grams": .linear(0.001, "kilograms"),
        "milligrams": .linear(0.000_001, "kilograms"),
        "metric_tons": .linear(1000, "kilograms"),
        "pounds": .linear(0.453_592_37, "kilograms"),
        "ounces": .linear(0.028_349_523_125, "kilograms"),
        // torque → newton_meters
        "newton_meters": .linear(1, "newton_meters"),
        "newton_millimeters": .linear(0.001, "newton_meters"),
        "pound_feet": .linear(1.355_817_948_331_4, "newton_meters"),
        // fuel efficiency → liters_per_100_kilometers
        "liters_per_100_kilometers": .linear(1, "liters_per_100_kilometers"),
        "miles_per_gallon": .reciprocal(235.214_583_3, "liters_per_100_kilometers"),
        "miles_per_imperial_gallon": .reciprocal(282.480_936_3, "liters_per_100_kilometers"),
        // energy efficiency → kwh_per_100_kilometers
        "kwh_per_100_kilometers": .linear(1, "kwh_per_100_kilometers"),
        "miles_per_kwh": .reciprocal(62.137_119_223_733_397, "kwh_per_100_kilometers"),
    ]

    /// Auto API properties whose bare number is a percentage sent as 0.0–1.0
    /// (`custom_type_percentage`); they are stored as 0–100 with unit `percent`.
    public static let percentageProperties: Set<String> = [
        "charging.battery_level",
        "charging.charge_limit",
        "charging.battery_level_at_departure",
        "charging.state_of_health",
        "diagnostics.fuel_level",
        "diagnostics.adblue_level",
        "diagnostics.engine_load",
        "diagnostics.engine_oil_life_remaining",
        "diagnostics.battery_level",
        "vehicle_location.gps_signal_strength",
        "climate.humidity",
        "engine.limiter_percentage",
        "usage.eco_score_total",
        "usage.eco_score_free_wheel",
        "usage.eco_score_constant",
        "usage.eco_score_bonus_range",
        "usage.battery_level_last_trip",
        "windows.open_percentages.open_percentage",
        "rooftop_control.dimming",
        "rooftop_control.position",
        "offroad.wheel_suspension",
        "weather_conditions.rain_intensity",
        "maintenance.oil_life",
    ]
}
