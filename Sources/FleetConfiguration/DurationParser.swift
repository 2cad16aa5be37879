import FleetModel

/// Parses the durations written in the config file: `30s`, `5m`, `1h`, `1h30m`, `250ms`, `2d`.
public enum DurationParser {
    /// The duration `text` describes, or `nil` when it is not a sequence of `<integer><unit>`
    /// with units `ms`, `s`, `m`, `h`, `d`, or exceeds ``maximum`` (10 years).
    public static func parse(_ text: String) -> Duration? {
        if case .valid(let duration) = check(text) { return duration }
        return nil
    }

    /// The outcome of reading a duration.
    public enum Check: Sendable, Hashable {
        case valid(Duration)
        /// Well formed, but longer than ``DurationParser/maximum``.
        case tooLong
        case malformed
    }

    /// Reads `text`, telling a malformed value from one that is too long.
    public static func check(_ text: String) -> Check {
        var total = Duration.zero
        var number: Int64?
        var unit = ""
        var sawAny = false
        // Units from the largest down, each at most once (`1h30m`, not `30m1h` or `1h1h`).
        let order = ["d", "h", "m", "s", "ms"]
        var lastRank = -1
        // A number past 10^12 is too long in any unit, but the rest is still read: a malformed
        // text is malformed (`10000000000000x`), however large its number.
        var tooLong = false
        func flush() -> Bool {
            guard let n = number else { return unit.isEmpty }
            guard let rank = order.firstIndex(of: unit), rank > lastRank else { return false }
            lastRank = rank
            let part: Duration
            switch unit {
            case "ms": part = .milliseconds(n)
            case "s": part = .seconds(n)
            case "m": part = .seconds(n * 60)
            case "h": part = .seconds(n * 3600)
            case "d": part = .seconds(n * 86_400)
            default: return false
            }
            total += part
            number = nil
            unit = ""
            sawAny = true
            return true
        }
        for c in text {
            if let digit = c.wholeNumberValue, c.isASCII {
                if !unit.isEmpty { guard flush() else { return .malformed } }
                let (partial, overflow) = (number ?? 0).multipliedReportingOverflow(by: 10)
                if overflow || partial > 1_000_000_000_000 {
                    tooLong = true
                    number = 0
                } else {
                    number = partial + Int64(digit)
                }
            } else if c.isLetter, c.isASCII, number != nil {
                unit.append(c)
            } else {
                return .malformed
            }
        }
        guard flush(), sawAny else { return .malformed }
        return !tooLong && total <= maximum ? .valid(total) : .tooLong
    }

    /// The longest duration a config value may give.
    public static let maximum: Duration = .seconds(3650 * 86_400)

    /// `duration` written the way the config takes it (`90s` → `1m30s`).
    public static func format(_ duration: Duration) -> String {
        var ms = duration.milliseconds
        if ms == 0 { return "0s" }
        var out = ""
        for (size, suffix) in [(Int64(86_400_000), "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")]
        where ms >= size {
            out += "\(ms / size)\(suffix)"
            ms %= size
        }
        return out
    }
}
