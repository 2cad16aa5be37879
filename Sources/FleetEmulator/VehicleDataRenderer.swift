import FleetModel

/// Renders a ``VehicleSimulation/Snapshot`` as a vehicle-data response body.
public enum VehicleDataRenderer {
    /// Which body shape to serve.
    public enum Shape: String, Sendable, CaseIterable {
        /// The live platform's Auto API envelope (`{data, timestamp}` per property).
        case autoAPI = "auto_api"
        /// The OpenAPI document's simplified shape (flat values, one top-level `timestamp`).
        case simplified
    }

    static let doors = ["front_left", "front_right", "rear_right", "rear_left"]

    /// The body as a JSON value.
    public static func render(_ s: VehicleSimulation.Snapshot, shape: Shape, requestID: String) -> JSONValue {
        switch shape {
        case .autoAPI: return autoAPI(s, requestID: requestID)
        case .simplified: return simplified(s)
        }
    }

    static func property(_ data: JSONValue, _ time: Timestamp) -> JSONValue {
        .object(["data": data, "timestamp": .string(time.iso8601)])
    }

    static func measure(_ value: Double, _ unit: String) -> JSONValue {
        .object(["value": .number(value), "unit": .string(unit)])
    }

    static func autoAPI(_ s: VehicleSimulation.Snapshot, requestID: String) -> JSONValue {
        let motion = s.motionChangedAt
        let locks = doors.map {
            property(.object(["location": .string($0), "lock_state": .string(s.lockState)]), s.lockChangedAt)
        }
        let positions = doors.map { door in
            property(
                .object([
                    "location": .string(door), "position": .string(door == "front_left" ? s.driverDoor : "closed"),
                ]), door == "front_left" ? s.doorsChangedAt : s.lockChangedAt)
        }
        return .object([
            "request_id": .string(requestID),
            "vin": .string(s.vin.rawValue),
            "brand": .string("sandbox"),
            "doors": .object([
                "locks": .array(locks),
                "locks_state": property(.string(s.lockState), s.lockChangedAt),
                "positions": .array(positions),
            ]),
            "charging": .object([
                "battery_level": property(.number(s.batteryPercent / 100), motion),
                "estimated_range": property(measure(s.estimatedRangeKm, "kilometers"), motion),
                "charge_limit": property(.number(s.chargeLimitPercent / 100), s.configuredAt),
                "status": property(.string(s.chargingStatus), s.chargingChangedAt),
                "plugged_in": property(.string(s.pluggedIn), s.chargingChangedAt),
                "charging_rate": property(
                    measure(s.chargingPowerKW, "kilowatts"), s.phase == .charging ? motion : s.chargingChangedAt),
            ]),
            "diagnostics": .object([
                "odometer": property(measure(s.odometerKm, "kilometers"), motion),
                "speed": property(measure(s.speedKmh, "kilometers_per_hour"), motion),
            ]),
            "vehicle_location": .object([
                "coordinates": property(
                    .object(["latitude": .number(s.latitude), "longitude": .number(s.longitude)]), motion),
                "heading": property(measure(s.headingDegrees, "degrees"), motion),
            ]),
            "ignition": .object([
                "state": property(.string(s.ignition), motion)
            ]),
            "trunk": .object([
                "position": property(.string(s.trunk), s.doorsChangedAt),
                "lock": property(.string(s.lockState), s.lockChangedAt),
            ]),
        ])
    }

    static func simplified(_ s: VehicleSimulation.Snapshot) -> JSONValue {
        let chargingState: String
        switch (s.chargingStatus, s.pluggedIn) {
        case ("charging", _): chargingState = "charging"
        case ("charging_complete", _): chargingState = "completed"
        case (_, "plugged_in"): chargingState = "plugged_in"
        default: chargingState = "disconnected"
        }
        return .object([
            "vin": .string(s.vin.rawValue),
            "timestamp": .string(s.at.iso8601),
            "doors": .object([
                "locks": .array(
                    doors.map {
                        .object(["location": .string($0), "lock": .string(s.lockState), "position": .string("closed")])
                    })
            ]),
            "charging": .object([
                "battery_level": .number(s.batteryPercent.rounded()),
                "estimated_range": .number(s.estimatedRangeKm),
                "charging_state": .string(chargingState),
                "charge_limit": .number(s.chargeLimitPercent),
            ]),
            "diagnostics": .object([
                "mileage": .number(s.odometerKm.rounded()),
                "speed": .number(s.speedKmh),
            ]),
            "vehicle_location": .object([
                "latitude": .number(s.latitude),
                "longitude": .number(s.longitude),
            ]),
        ])
    }
}
