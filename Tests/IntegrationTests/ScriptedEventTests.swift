import FleetDaemon
import FleetEmulator
import FleetModel
import Testing

/// A vehicle driven through an exact sequence of states over real HTTP, with a failure and a
/// partial response in the middle: exactly the expected events, none false.
@Suite(.serialized) struct ScriptedEventTests {
    @Test func exactSequenceOfStates() async throws {
        try await withHarness(emulator: .init(vehicleCount: 1, timeScale: 1), interval: .seconds(1)) { h in
            let vin = EmulatorConfiguration.vin(index: 1)
            await h.step(by: .seconds(1))  // baseline: parked, locked, not charging
            func door(_ position: String) -> JSONValue {
                .array([.object(["location": .string("front_left"), "position": .string(position)])])
            }
            h.emulator.script(
                vin,
                steps: [
                    ["doors": ["positions": door("open")]],
                    [
                        "doors": ["positions": door("open")],
                        "charging": ["status": .string("charging"), "plugged_in": .string("plugged_in")],
                    ],
                ])
            await h.step(by: .seconds(1))
            await h.step(by: .seconds(1))
            // A property failure and a partial response: neither is a change.
            h.emulator.inject(
                .init(
                    status: 200,
                    body:
                        #"{"vin":"\#(vin)","charging":{"status":{"failure":{"reason":"oem_error","description":"x"}}}}"#
                ), vin: vin)
            await h.step(by: .seconds(1))
            h.emulator.inject(
                .init(
                    status: 200,
                    body:
                        #"{"vin":"\#(vin)","diagnostics":{"speed":{"data":{"value":0,"unit":"kilometers_per_hour"},"timestamp":"2026-11-28T06:00:04Z"}}}"#
                ), vin: vin)
            await h.step(by: .seconds(1))
            h.emulator.script(
                vin,
                steps: [
                    [
                        "doors": ["positions": door("open")],
                        "charging": ["status": .string("charging_complete"), "plugged_in": .string("plugged_in")],
                    ],
                    [
                        "doors": ["positions": door("closed")],
                        "charging": ["status": .string("charging_complete"), "plugged_in": .string("disconnected")],
                    ],
                ])
            await h.step(by: .seconds(1))
            await h.step(by: .seconds(1))
            let events = await h.sink.events.map {
                $0.instance.isEmpty ? $0.type.rawValue : "\($0.type.rawValue)[\($0.instance)]"
            }
            #expect(
                events == [
                    "door_opened[front_left]",
                    "plugged_in", "charging_started",
                    "charging_completed",
                    "unplugged", "door_closed[front_left]",
                ], "\(events)")
            let sessions = try await h.store.chargingSessions(vin: vin)
            #expect(sessions.count == 1 && sessions.first?.endReason == "completed")
        }
    }
}
