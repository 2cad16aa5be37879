import FleetModel

/// One expected sample: property path, instance, value, unit, observation time.
struct E: Hashable, CustomStringConvertible {
    var property: String
    var instance: String
    var value: SampleValue
    var unit: String?
    var observedAt: String

    init(_ property: String, _ instance: String, _ value: SampleValue, _ unit: String?, _ observedAt: String) {
        self.property = property
        self.instance = instance
        self.value = value
        self.unit = unit
        self.observedAt = observedAt
    }

    init(_ sample: Sample) {
        self.init(sample.property, sample.instance, sample.value, sample.unit, sample.observedAt.iso8601)
    }

    var description: String { "\(property)[\(instance)] = \(value) \(unit ?? "-") @ \(observedAt)" }
}

/// The exact samples each fixture must produce, checked by hand against the fixture files:
/// percentages ×100 with unit `percent`, lengths in km, pressures in kPa, durations in seconds.
enum Expected {
    static let full: [E] = [
        E("charging.battery_level", "", .number(64), "percent", "2026-11-28T09:14:03.000Z"),
        E("charging.battery_temperature", "", .number(24.5), "celsius", "2026-11-28T09:14:03.000Z"),
        E("charging.charge_limit", "", .number(80), "percent", "2026-11-28T08:55:10.000Z"),
        E("charging.charge_port_state", "", .text("open"), nil, "2026-11-28T09:12:47.000Z"),
        E("charging.charging_rate", "", .number(11), "kilowatts", "2026-11-28T09:14:03.000Z"),
        E("charging.current_type", "", .text("alternating_current"), nil, "2026-11-28T09:14:03.000Z"),
        E("charging.estimated_range", "", .number(212.5), "kilometers", "2026-11-28T09:14:03.000Z"),
        E("charging.plugged_in", "", .text("plugged_in"), nil, "2026-11-28T09:14:03.000Z"),
        E("charging.status", "", .text("charging"), nil, "2026-11-28T09:14:03.000Z"),
        E("charging.time_to_complete_charge", "", .number(5700), "seconds", "2026-11-28T09:14:03.000Z"),
        E("climate.defrosting_state", "", .text("inactive"), nil, "2026-11-28T09:14:03.000Z"),
        E("climate.driver_temperature_setting", "", .number(21), "celsius", "2026-11-27T18:40:22.000Z"),
        E("climate.hvac_state", "", .text("inactive"), nil, "2026-11-28T09:14:03.000Z"),
        E("climate.inside_temperature", "", .number(19.5), "celsius", "2026-11-28T09:14:03.000Z"),
        E("climate.outside_temperature", "", .number(7), "celsius", "2026-11-28T09:14:03.000Z"),
        E("dashboard_lights.dashboard_lights.state", "engine_indicator", .text("off"), nil, "2026-11-28T08:55:10.000Z"),
        E("dashboard_lights.dashboard_lights.state", "tire_failure", .text("on"), nil, "2026-11-28T08:55:10.000Z"),
        E("diagnostics.battery_voltage", "", .number(12.6), "volts", "2026-11-28T09:14:03.000Z"),
        E(
            "diagnostics.check_control_messages.remaining_time", "1043", .number(0), "seconds",
            "2026-11-28T08:55:10.000Z"),
        E("diagnostics.check_control_messages.status", "1043", .text("active"), nil, "2026-11-28T08:55:10.000Z"),
        E(
            "diagnostics.check_control_messages.text", "1043", .text("Tyre pressure low"), nil,
            "2026-11-28T08:55:10.000Z"),
        E("diagnostics.engine_coolant_temperature", "", .number(29.5), "celsius", "2026-11-28T08:55:10.000Z"),
        E("diagnostics.engine_oil_temperature", "", .number(31), "celsius", "2026-11-28T08:55:10.000Z"),
        E("diagnostics.engine_rpm", "", .number(0), "revolutions_per_minute", "2026-11-28T09:14:03.000Z"),
        E("diagnostics.estimated_range", "", .number(388), "kilometers", "2026-11-28T08:55:10.000Z"),
        E("diagnostics.fuel_level", "", .number(42), "percent", "2026-11-28T08:55:10.000Z"),
        E("diagnostics.odometer", "", .number(48213.7), "kilometers", "2026-11-28T09:14:03.000Z"),
        E("diagnostics.speed", "", .number(0), "kilometers_per_hour", "2026-11-28T09:14:03.000Z"),
        E("diagnostics.tire_pressure_statuses.status", "front_left", .text("normal"), nil, "2026-11-28T08:55:10.000Z"),
        E("diagnostics.tire_pressure_statuses.status", "front_right", .text("normal"), nil, "2026-11-28T08:55:10.000Z"),
        E("diagnostics.tire_pressure_statuses.status", "rear_left", .text("low"), nil, "2026-11-28T08:55:10.000Z"),
        E("diagnostics.tire_pressure_statuses.status", "rear_right", .text("normal"), nil, "2026-11-28T08:55:10.000Z"),
        E("diagnostics.tire_pressures.pressure", "front_left", .number(250), "kilopascals", "2026-11-28T08:55:10.000Z"),
        E(
            "diagnostics.tire_pressures.pressure", "front_right", .number(250), "kilopascals",
            "2026-11-28T08:55:10.000Z"),
        E("diagnostics.tire_pressures.pressure", "rear_left", .number(230), "kilopascals", "2026-11-28T08:55:10.000Z"),
        E("diagnostics.tire_pressures.pressure", "rear_right", .number(270), "kilopascals", "2026-11-28T08:55:10.000Z"),
        E("diagnostics.washer_fluid_level", "", .text("filled"), nil, "2026-11-27T18:40:22.000Z"),
        E("doors.locks.lock_state", "front_left", .text("locked"), nil, "2026-11-28T09:14:03.000Z"),
        E("doors.locks.lock_state", "front_right", .text("locked"), nil, "2026-11-28T09:14:03.000Z"),
        E("doors.locks.lock_state", "rear_left", .text("unlocked"), nil, "2026-11-28T09:12:47.000Z"),
        E("doors.locks.lock_state", "rear_right", .text("locked"), nil, "2026-11-28T09:14:03.000Z"),
        E("doors.locks_state", "", .text("unlocked"), nil, "2026-11-28T09:14:03.000Z"),
        E("doors.positions.position", "front_left", .text("closed"), nil, "2026-11-28T09:14:03.000Z"),
        E("doors.positions.position", "front_right", .text("closed"), nil, "2026-11-28T09:14:03.000Z"),
        E("doors.positions.position", "rear_left", .text("open"), nil, "2026-11-28T09:12:47.000Z"),
        E("doors.positions.position", "rear_right", .text("closed"), nil, "2026-11-28T09:14:03.000Z"),
        E("ignition.state", "", .text("off"), nil, "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.altitude", "", .number(0.034), "kilometers", "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.coordinates.latitude", "", .number(52.520008), nil, "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.coordinates.longitude", "", .number(13.404954), nil, "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.gps_signal_strength", "", .number(87), "percent", "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.gps_source", "", .text("real"), nil, "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.heading", "", .number(181.5), "degrees", "2026-11-28T09:14:03.000Z"),
        E("vehicle_location.precision", "", .number(0.005), "kilometers", "2026-11-28T09:14:03.000Z"),
    ]

    static let minimal: [E] = [
        E("diagnostics.odometer", "", .number(10532), "kilometers", "2026-11-28T07:01:55.000Z"),
        E("vehicle_location.coordinates.latitude", "", .number(48.137154), nil, "2026-11-28T07:01:55.000Z"),
        E("vehicle_location.coordinates.longitude", "", .number(11.576124), nil, "2026-11-28T07:01:55.000Z"),
    ]

    static let withFailures: [E] = [
        E("charging.battery_level", "", .number(31), "percent", "2026-11-28T06:30:00.000Z"),
        E("diagnostics.odometer", "", .number(77410.2), "kilometers", "2026-11-28T06:30:00.000Z"),
    ]

    static let simplified: [E] = [
        E("charging.battery_level", "", .number(64), "percent", "2026-11-28T10:00:00.000Z"),
        E("charging.charge_limit", "", .number(80), "percent", "2026-11-28T10:00:00.000Z"),
        E("charging.estimated_range", "", .number(212.5), "kilometers", "2026-11-28T10:00:00.000Z"),
        E("charging.plugged_in", "", .text("plugged_in"), nil, "2026-11-28T10:00:00.000Z"),
        E("charging.status", "", .text("charging"), nil, "2026-11-28T10:00:00.000Z"),
        E("diagnostics.engine_oil_temperature", "", .number(31), "celsius", "2026-11-28T10:00:00.000Z"),
        E("diagnostics.engine_rpm", "", .number(0), "revolutions_per_minute", "2026-11-28T10:00:00.000Z"),
        E("diagnostics.fuel_level", "", .number(42), "percent", "2026-11-28T10:00:00.000Z"),
        E("diagnostics.odometer", "", .number(48213.7), "kilometers", "2026-11-28T10:00:00.000Z"),
        E("diagnostics.speed", "", .number(0), "kilometers_per_hour", "2026-11-28T10:00:00.000Z"),
        E("doors.locks.lock_state", "front_left", .text("locked"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.locks.lock_state", "front_right", .text("locked"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.locks.lock_state", "rear_left", .text("unlocked"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.locks.lock_state", "rear_right", .text("locked"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.positions.position", "front_left", .text("closed"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.positions.position", "front_right", .text("closed"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.positions.position", "rear_left", .text("open"), nil, "2026-11-28T10:00:00.000Z"),
        E("doors.positions.position", "rear_right", .text("closed"), nil, "2026-11-28T10:00:00.000Z"),
        E("vehicle_location.coordinates.latitude", "", .number(52.520008), nil, "2026-11-28T10:00:00.000Z"),
        E("vehicle_location.coordinates.longitude", "", .number(13.404954), nil, "2026-11-28T10:00:00.000Z"),
    ]
}
