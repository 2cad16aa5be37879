import FleetModel
import Foundation

/// Converts an Auto API measurement (`{"value": …, "unit": "…"}`) to the project's canonical unit.
///
/// Canonical units: lengths in `kilometers`, speeds in `kilometers_per_hour`, temperatures in
/// `celsius`, pressures in `kilopascals`, durations in `seconds`, energy in `kilowatt_hours`,
/// power in `kilowatts`, volumes in `liters`. Any other unit (volts, degrees, revolutions per
/// minute, …) is kept as the API named it.
public enum UnitConversion {
    /// The canonical `(value, unit)` for `value` measured in the Auto API unit `unit`.
    public static func canonical(_ value: Double, unit: String) -> (value: Double, unit: String) {
        if let (factor, target) = linear[unit] {
            return factor == 1 ? (value, target) : (tidy(value * factor), target)
        }
        switch unit {
        case "kelvin": return (tidy(value - 273.15), "celsius")
        case "fahrenheit": return (tidy((value - 32) * 5 / 9), "celsius")
        default: return (value, unit)
        }
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

    /// Factor to multiply by, and the canonical unit, for units that convert linearly.
    private static let linear: [String: (Double, String)] = [
        // length
        "meters": (0.001, "kilometers"),
        "millimeters": (0.000_001, "kilometers"),
        "centimeters": (0.000_01, "kilometers"),
        "decimeters": (0.000_1, "kilometers"),
        "kilometers": (1, "kilometers"),
        "megameters": (1000, "kilometers"),
        "inches": (0.000_025_4, "kilometers"),
        "feet": (0.000_304_8, "kilometers"),
        "yards": (0.000_914_4, "kilometers"),
        "miles": (1.609_344, "kilometers"),
        "scandinavian_miles": (10, "kilometers"),
        "nautical_miles": (1.852, "kilometers"),
        // speed
        "meters_per_second": (3.6, "kilometers_per_hour"),
        "kilometers_per_hour": (1, "kilometers_per_hour"),
        "miles_per_hour": (1.609_344, "kilometers_per_hour"),
        "knots": (1.852, "kilometers_per_hour"),
        // temperature (non-linear ones are handled separately)
        "celsius": (1, "celsius"),
        // pressure
        "pascals": (0.001, "kilopascals"),
        "kilopascals": (1, "kilopascals"),
        "bars": (100, "kilopascals"),
        "millibars": (0.1, "kilopascals"),
        "inches_of_mercury": (3.386_389, "kilopascals"),
        "millimeters_of_mercury": (0.133_322_4, "kilopascals"),
        "pounds_force_per_square_inch": (6.894_757, "kilopascals"),
        // duration
        "milliseconds": (0.001, "seconds"),
        "seconds": (1, "seconds"),
        "minutes": (60, "seconds"),
        "hours": (3600, "seconds"),
        "days": (86_400, "seconds"),
        "weeks": (604_800, "seconds"),
        // energy
        "watt_hours": (0.001, "kilowatt_hours"),
        "kilowatt_hours": (1, "kilowatt_hours"),
        "joules": (1 / 3_600_000, "kilowatt_hours"),
        "kilojoules": (1 / 3600, "kilowatt_hours"),
        // power
        "watts": (0.001, "kilowatts"),
        "milliwatts": (0.000_001, "kilowatts"),
        "kilowatts": (1, "kilowatts"),
        "megawatts": (1000, "kilowatts"),
        "horsepower": (0.745_699_9, "kilowatts"),
        // volume
        "liters": (1, "liters"),
        "milliliters": (0.001, "liters"),
        "centiliters": (0.01, "liters"),
        "deciliters": (0.1, "liters"),
        "cubic_millimeters": (0.000_001, "liters"),
        "cubic_centimeters": (0.001, "liters"),
        "cubic_decimeters": (1, "liters"),
        "cubic_meters": (1000, "liters"),
        "cubic_inches": (0.016_387_06, "liters"),
        "cubic_feet": (28.316_85, "liters"),
        "fluid_ounces": (0.029_573_53, "liters"),
        "gallons": (3.785_412, "liters"),
        "imperial_fluid_ounces": (0.028_413_06, "liters"),
        "imperial_gallons": (4.546_09, "liters"),
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
