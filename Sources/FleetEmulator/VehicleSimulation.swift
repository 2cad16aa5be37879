import FleetModel

/// One simulated vehicle: a state machine over simulated time whose readings follow from its state.
///
/// The vehicle cycles through phases: **parked** (doors locked) → **departing** (doors unlocked,
/// an unplugged cable) → **driving** (odometer grows with speed × time, the battery drains with
/// distance at ``consumptionKWhPerKm``, the position moves along the trip's heading) →
/// **arriving** (stopped, doors still unlocked) → doors lock, then **charging** when the battery
/// is below ``chargeThresholdPercent`` (filling at ``chargingPowerKW`` up to the charge limit,
/// then `charging_complete`) or **parked** again. Trips alternate out and back, so a vehicle
/// stays near home. Phase lengths come from a seeded generator, so the same seed gives the same
/// history, whatever times it is asked about.
public struct VehicleSimulation: Sendable {
    public enum Phase: String, Sendable {
        case parked, departing, driving, arriving, charging
    }

    /// A reading of every simulated quantity at one instant of simulated time.
    public struct Snapshot: Sendable, Hashable {
        public var vin: VIN
        public var at: Timestamp
        public var phase: Phase
        /// Kilometers.
        public var odometerKm: Double
        /// Percent, 0–100.
        public var batteryPercent: Double
        /// Percent, 0–100.
        public var chargeLimitPercent: Double
        /// Kilometers.
        public var estimatedRangeKm: Double
        /// Kilometers per hour.
        public var speedKmh: Double
        /// Degrees, 0–360 clockwise from north.
        public var headingDegrees: Double
        public var latitude: Double
        public var longitude: Double
        /// `locked` or `unlocked`, the same for every door.
        public var lockState: String
        /// Auto API `charging.status`: `not_charging`, `charging` or `charging_complete`.
        public var chargingStatus: String
        /// Auto API `charging.plugged_in`: `disconnected` or `plugged_in`.
        public var pluggedIn: String
        /// Kilowatts.
        public var chargingPowerKW: Double
        /// Auto API `ignition.state`: `on` or `off`.
        public var ignition: String
        /// The driver's door (`front_left`): `open` for the first 10 minutes after arriving.
        public var driverDoor: String = "closed"
        /// `trunk.position`: `open` for the first 15 minutes of some arrivals (unloading).
        public var trunk: String = "closed"
        /// When the driver's door or the trunk last opened or closed.
        public var doorsChangedAt: Timestamp = Timestamp(millisecondsSince1970: 0)
        /// When the doors last locked or unlocked.
        public var lockChangedAt: Timestamp
        /// When `charging.status` or `plugged_in` last changed.
        public var chargingChangedAt: Timestamp
        /// When the continuous readings (odometer, battery, position, speed) last changed: now
        /// while driving or charging, else the start of the current phase.
        public var motionChangedAt: Timestamp
        /// When the vehicle's static settings (charge limit) were set.
        public var configuredAt: Timestamp
    }

    public static let batteryCapacityKWh = 60.0
    public static let consumptionKWhPerKm = 0.18
    public static let chargingPowerKW = 11.0
    public static let chargeThresholdPercent = 55.0

    public let vin: VIN
    private var rng: SplitMix64
    private var phase: Phase = .parked
    private var phaseStart: Timestamp
    private var phaseEnd: Timestamp
    private let configuredAt: Timestamp
    // State at `phaseStart`.
    private var odometerKm: Double
    private var batteryPercent: Double
    private let chargeLimitPercent = 80.0
    private var latitude: Double
    private var longitude: Double
    private var heading: Double = 0
    private var speedKmh: Double = 0
    private var lockState = "locked"
    private var chargingStatus = "not_charging"
    private var pluggedIn = "disconnected"
    private var lockChangedAt: Timestamp
    private var chargingChangedAt: Timestamp
    private var outbound = true
    private var doorsChangedAt: Timestamp
    private var unloading = false
    private var interruptCharge = false
    private var chargeError = false

    /// - Parameters:
    ///   - vin: The vehicle's VIN.
    ///   - seed: Seeds every random choice of this vehicle.
    ///   - start: Simulated time at which the vehicle is first parked.
    ///   - initialBatteryPercent: Overrides the seeded initial battery level (percent 0–100).
    public init(vin: VIN, seed: UInt64, start: Timestamp, initialBatteryPercent: Double? = nil) {
        self.vin = vin
        var rng = SplitMix64(seed: seed)
        odometerKm = (rng.uniform(5_000...80_000) * 10).rounded() / 10
        batteryPercent = initialBatteryPercent ?? rng.uniform(30...90).rounded()
        latitude = 52.52 + rng.uniform(-0.05...0.05)
        longitude = 13.40 + rng.uniform(-0.08...0.08)
        let firstPark = rng.minutes(10...90)
        self.rng = rng
        phaseStart = start
        phaseEnd = start.adding(milliseconds: firstPark)
        configuredAt = start
        lockChangedAt = start
        chargingChangedAt = start
        doorsChangedAt = start
    }

    /// The vehicle's readings at simulated time `time`, advancing its state machine as needed.
    /// A time before the current phase reads as the start of that phase.
    public mutating func snapshot(at time: Timestamp) -> Snapshot {
        while time >= phaseEnd {
            finishPhase()
        }
        let at = max(time, phaseStart)
        let hours = Double(at.millisecondsSince1970 - phaseStart.millisecondsSince1970) / 3_600_000
        var snapshot = Snapshot(
            vin: vin, at: at, phase: phase, odometerKm: odometerKm, batteryPercent: batteryPercent,
            chargeLimitPercent: chargeLimitPercent, estimatedRangeKm: 0, speedKmh: speedKmh,
            headingDegrees: heading, latitude: latitude, longitude: longitude, lockState: lockState,
            chargingStatus: chargingStatus, pluggedIn: pluggedIn,
            chargingPowerKW: phase == .charging ? Self.chargingPowerKW : 0,
            ignition: phase == .driving ? "on" : "off", lockChangedAt: lockChangedAt,
            chargingChangedAt: chargingChangedAt, motionChangedAt: phaseStart, configuredAt: configuredAt)
        snapshot.doorsChangedAt = doorsChangedAt
        if phase == .arriving {
            let minutes = Double(at.millisecondsSince1970 - phaseStart.millisecondsSince1970) / 60_000
            snapshot.driverDoor = minutes < 10 ? "open" : "closed"
            snapshot.trunk = unloading && minutes < 15 ? "open" : "closed"
            snapshot.doorsChangedAt =
                minutes < 10
                ? phaseStart
                : phaseStart.adding(
                    milliseconds: unloading && minutes >= 15 ? 15 * 60_000 : minutes >= 10 ? 10 * 60_000 : 0)
            if unloading && minutes >= 10 && minutes < 15 {
                snapshot.doorsChangedAt = phaseStart.adding(milliseconds: 10 * 60_000)
            }
        }
        switch phase {
        case .driving:
            let distance = speedKmh * hours
            snapshot.odometerKm = odometerKm + distance
            snapshot.batteryPercent = max(
                0, batteryPercent - distance * Self.consumptionKWhPerKm / Self.batteryCapacityKWh * 100)
            (snapshot.latitude, snapshot.longitude) = Self.move(latitude, longitude, heading: heading, km: distance)
            snapshot.motionChangedAt = Timestamp(millisecondsSince1970: at.millisecondsSince1970 / 1000 * 1000)
        case .charging:
            snapshot.batteryPercent = min(
                chargeLimitPercent, batteryPercent + Self.chargingPowerKW * hours / Self.batteryCapacityKWh * 100)
            snapshot.motionChangedAt = Timestamp(millisecondsSince1970: at.millisecondsSince1970 / 1000 * 1000)
        default:
            break
        }
        snapshot.odometerKm = (snapshot.odometerKm * 10).rounded() / 10
        snapshot.batteryPercent = (snapshot.batteryPercent * 10).rounded() / 10
        snapshot.estimatedRangeKm = (snapshot.batteryPercent / 100 * Self.batteryCapacityKWh / Self.consumptionKWhPerKm)
            .rounded()
        return snapshot
    }

    /// Applies the end of the current phase and picks the next one.
    private mutating func finishPhase() {
        let end = phaseEnd
        let hours = Double(end.millisecondsSince1970 - phaseStart.millisecondsSince1970) / 3_600_000
        switch phase {
        case .parked:
            phase = .departing
            lockState = "unlocked"
            lockChangedAt = end
            if pluggedIn != "disconnected" {
                pluggedIn = "disconnected"
                chargingStatus = "not_charging"
                chargingChangedAt = end
            }
            phaseEnd = end.adding(milliseconds: rng.minutes(3...10))
        case .departing:
            phase = .driving
            speedKmh = rng.uniform(35...85).rounded()
            heading = outbound ? rng.uniform(0...359).rounded() : (heading + 180).truncatingRemainder(dividingBy: 360)
            outbound.toggle()
            let range = batteryPercent / 100 * Self.batteryCapacityKWh / Self.consumptionKWhPerKm
            let maxMinutes = max(5, min(75, (range - 20) / speedKmh * 60))
            phaseEnd = end.adding(milliseconds: rng.minutes(min(15, maxMinutes)...maxMinutes))
        case .driving:
            let distance = speedKmh * hours
            odometerKm += distance
            batteryPercent = max(
                0, batteryPercent - distance * Self.consumptionKWhPerKm / Self.batteryCapacityKWh * 100)
            (latitude, longitude) = Self.move(latitude, longitude, heading: heading, km: distance)
            speedKmh = 0
            phase = .arriving
            unloading = rng.uniform(0...1) < 0.5
            phaseEnd = end.adding(milliseconds: rng.minutes(20...40))
        case .arriving:
            lockState = "locked"
            lockChangedAt = end
            doorsChangedAt = phaseStart.adding(milliseconds: unloading ? 15 * 60_000 : 10 * 60_000)
            if batteryPercent < Self.chargeThresholdPercent {
                phase = .charging
                chargingStatus = "charging"
                pluggedIn = "plugged_in"
                chargingChangedAt = end
                let hoursToFull =
                    (chargeLimitPercent - batteryPercent) / 100 * Self.batteryCapacityKWh / Self.chargingPowerKW
                // Now and then the driver leaves before the charge is done.
                let draw = rng.uniform(0...1)
                interruptCharge = draw < 0.3
                chargeError = draw >= 0.3 && draw < 0.4
                let share = interruptCharge || chargeError ? rng.uniform(0.4...0.8) : 1
                phaseEnd = end.adding(milliseconds: Int64(hoursToFull * share * 3_600_000) + 1)
            } else {
                phase = .parked
                phaseEnd = end.adding(milliseconds: rng.minutes(60...240))
            }
        case .charging:
            if chargeError {
                batteryPercent = min(
                    chargeLimitPercent, batteryPercent + Self.chargingPowerKW * hours / Self.batteryCapacityKWh * 100)
                chargingStatus = "charging_error"
            } else if interruptCharge {
                batteryPercent = min(
                    chargeLimitPercent, batteryPercent + Self.chargingPowerKW * hours / Self.batteryCapacityKWh * 100)
                chargingStatus = "not_charging"
            } else {
                batteryPercent = chargeLimitPercent
                chargingStatus = "charging_complete"
            }
            chargingChangedAt = end
            phase = .parked
            phaseEnd = end.adding(milliseconds: rng.minutes(60...240))
        }
        phaseStart = end
    }

    /// Moves a point `km` along `heading` (flat-earth approximation, fine for city trips).
    static func move(_ lat: Double, _ lon: Double, heading: Double, km: Double) -> (Double, Double) {
        let radians = heading * .pi / 180
        let dLat = km * cos(radians) / 111.32
        let dLon = km * sin(radians) / (111.32 * cos(lat * .pi / 180))
        return (((lat + dLat) * 1e6).rounded() / 1e6, ((lon + dLon) * 1e6).rounded() / 1e6)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
