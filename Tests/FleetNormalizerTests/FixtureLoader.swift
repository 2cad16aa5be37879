import FleetModel
import Foundation

/// Reads a fixture from `Tests/Fixtures/high-mobility/` (a copy of the shared fixtures).
func fixture(_ name: String) throws -> [UInt8] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    let url = root.appendingPathComponent("Fixtures/high-mobility/\(name)")
    return Array(try Data(contentsOf: url))
}

let receivedAt = Timestamp(iso8601: "2026-11-28T10:00:00.000Z")!

func ts(_ text: String) -> Timestamp { Timestamp(iso8601: text)! }
