@testable import FleetEvents
import FleetModel
import Foundation
import Testing

let vin = VIN("1HMFT000000000001")!
let t0 = Timestamp(iso8601: "2026-11-28T09:00:00Z")!
let t1 = t0.adding(milliseconds: 60_000)

func key(_ property: String, _ instance: String = "") -> SeriesKey {
    SeriesKey(vin: vin, property: property, instance: instance)
}
func sample(_ property: String, _ instance: String = "", _ value: String, at time: Timestamp) -> Sample {
    Sample(vin: vin, property: property, instance: instance, value: .text(value), observedAt: time)
}

@Suite struct EventRulesTests {
    let rules = EventRules()

    @Test func firstObservationSetsTheBaseline() {
        let events = rules.events(
            previous: [:],
            observed: [
                sample("doors.locks.lock_state", "front_left", "unlocked", at: t0),
                sample("charging.status", "", "charging", at: t0),
            ], detectedAt: t1)
        #expect(events.isEmpty)
    }

    @Test func doorUnlockAndLockPerDoor() {
        let previous = [
            key("doors.locks.lock_state", "front_left"): LatestValue(value: .text("locked"), unit: nil, observedAt: t0),
            key("doors.locks.lock_state", "rear_left"): LatestValue(
                value: .text("unlocked"), unit: nil, observedAt: t0),
            key("doors.locks.lock_state", "front_right"): LatestValue(
                value: .text("locked"), unit: nil, observedAt: t0),
        ]
        let events = rules.events(
            previous: previous,
            observed: [
                sample("doors.locks.lock_state", "front_left", "unlocked", at: t1),
                sample("doors.locks.lock_state", "rear_left", "locked", at: t1),
                sample("doors.locks.lock_state", "front_right", "locked", at: t1),
            ], detectedAt: t1)
        #expect(
            events == [
                Event(
                    vin: vin, type: .doorUnlocked, instance: "front_left", occurredAt: t1, detectedAt: t1,
                    previousValue: "locked", newValue: "unlocked"),
                Event(
                    vin: vin, type: .doorLocked, instance: "rear_left", occurredAt: t1, detectedAt: t1,
                    previousValue: "unlocked", newValue: "locked"),
            ])
    }

    @Test(arguments: [
        ("not_charging", "charging", EventType?.some(.chargingStarted)),
        ("charging_paused", "fast_charging", .chargingStarted),
        ("charging", "fast_charging", nil),
        ("charging", "charging_complete", .chargingCompleted),
        ("not_charging", "charging_complete", .chargingCompleted),
        ("charging_complete", "not_charging", nil),
    ])
    func chargingTransitions(from old: String, to new: String, expected: EventType?) {
        let previous = [key("charging.status"): LatestValue(value: .text(old), unit: nil, observedAt: t0)]
        let events = rules.events(
            previous: previous, observed: [sample("charging.status", "", new, at: t1)], detectedAt: t1)
        #expect(events.map(\.type) == (expected.map { [$0] } ?? []))
    }

    @Test func staleOrSameTimeObservationIsNotAChange() {
        let previous = [
            key("doors.locks.lock_state", "front_left"): LatestValue(value: .text("locked"), unit: nil, observedAt: t1)
        ]
        #expect(
            rules.events(
                previous: previous, observed: [sample("doors.locks.lock_state", "front_left", "unlocked", at: t0)],
                detectedAt: t1
            ).isEmpty)
        #expect(
            rules.events(
                previous: previous, observed: [sample("doors.locks.lock_state", "front_left", "unlocked", at: t1)],
                detectedAt: t1
            ).isEmpty)
    }

    @Test func missingSectionIsNotAChange() {
        let previous = [key("charging.status"): LatestValue(value: .text("charging"), unit: nil, observedAt: t0)]
        #expect(
            rules.events(
                previous: previous, observed: [sample("doors.locks_state", "", "locked", at: t1)], detectedAt: t1
            ).isEmpty)
    }

    @Test func eventJSONLineHasEveryField() {
        let event = Event(
            id: 7, vin: vin, type: .doorUnlocked, instance: "front_left", occurredAt: t0, detectedAt: t1,
            previousValue: "locked", newValue: "unlocked")
        #expect(
            event.jsonLine
                == #"{"id":7,"vin":"1HMFT000000000001","type":"door_unlocked","instance":"front_left","occurred_at":"2026-11-28T09:00:00.000Z","detected_at":"2026-11-28T09:01:00.000Z","previous_value":"locked","new_value":"unlocked"}"#
        )
    }
}

/// The `vehicle_moved` anchor text is written without `String(format:)`; it must read exactly
/// as `%.6f` would, so that anchors stored by earlier releases compare the same.
@Suite struct CoordinateTextTests {
    @Test func matchesPrintfWithSixDecimals() {
        var generator = SplitMix64(seed: 8)
        var values: [Double] = [
            0, -0.0, 52.52, 13.405, -0.1276, 180, -180, 89.9999995, -33.8688197, 0.0000004, -0.0000004, 1.0000005,
        ]
        for _ in 0..<20_000 {
            values.append((Double(generator.next() % 36_000_000_000) / 100_000_000) - 180)
        }
        // Halves of the sixth decimal and their neighbours: where the product by 10^6 comes out
        // as a half but the exact value lies just below or above it (7.75e-05 is just below).
        values.append(0.0000775)
        for step in stride(from: 0, to: 300_000, by: 7) {
            let half = (Double(step) + 0.5) / 1_000_000
            values += [half, half.nextUp, half.nextDown, -half]
        }
        let mismatches = values.filter { EventRules.coordinateText($0) != String(format: "%.6f", $0) }
        #expect(
            mismatches.isEmpty,
            "\(mismatches.prefix(5).map { "\($0): \(EventRules.coordinateText($0)) vs \(String(format: "%.6f", $0))" })"
        )
    }
}
