import FleetConfiguration

extension FuzzTarget {
    /// The config file's duration parser (`30s`, `1h30m`, `250ms`, `2d`), against a reference
    /// written from its grammar with 128-bit arithmetic.
    ///
    /// Checked: the same verdict (valid, malformed or too long) and the same duration as the reference; a duration is never
    /// negative nor longer than ``DurationParser/maximum``; ``DurationParser/format(_:)`` writes
    /// text that reads back to the same duration.
    public static let duration = FuzzTarget(
        name: "duration",
        summary: "Duration parser: differential against a 128-bit reference, bounds, format round trip",
        grow: [
            Growth("many digits") { n in Array(repeating: UInt8(ascii: "0"), count: n) + Array("s".utf8) },
            Growth("a long unit") { n in Array("1".utf8) + Array(repeating: UInt8(ascii: "m"), count: n) },
        ]
    ) { input throws(FuzzFailure) in
        let text = String(decoding: input, as: UTF8.self)
        let ours = DurationParser.check(text)
        let reference = DurationReference.check(text)
        func fail(_ message: String) -> FuzzFailure { FuzzFailure("duration", "\(quoted(input)): \(message)") }
        guard ours == reference else { throw fail("\(ours), the reference \(reference)") }
        if case .valid(let duration) = ours {
            guard duration >= .zero, duration <= DurationParser.maximum else { throw fail("\(duration) out of bounds") }
            let written = DurationParser.format(duration)
            guard DurationParser.parse(written) == duration else {
                throw fail("formats as \(written), which reads otherwise")
            }
        }
    }
}

/// The duration grammar, read independently: one or more `<digits><unit>` with units `d`, `h`,
/// `m`, `s`, `ms`, each at most once and from the largest down; at most 10 years.
enum DurationReference {
    static func check(_ text: String) -> DurationParser.Check {
        let bytes = Array(text.utf8)
        let units: [(String, Int128)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
        var index = 0
        var total: Int128 = 0
        var lastUnit = -1
        var parts = 0
        while index < bytes.count {
            var number: Int128 = 0
            let start = index
            while index < bytes.count, (48...57).contains(bytes[index]) {
                number = Swift.min(number * 10 + Int128(bytes[index] - 48), Int128(1) << 90)
                index += 1
            }
            guard index > start else { return .malformed }
            let unitStart = index
            while index < bytes.count, (97...122).contains(bytes[index]) || (65...90).contains(bytes[index]) {
                index += 1
            }
            let unit = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            guard let rank = units.firstIndex(where: { $0.0 == unit }), rank > lastUnit else { return .malformed }
            lastUnit = rank
            total += number * units[rank].1
            parts += 1
        }
        guard parts > 0 else { return .malformed }
        let maximum = Int128(DurationParser.maximum.components.seconds) * 1000
        return total <= maximum ? .valid(.milliseconds(Int64(total))) : .tooLong
    }
}
