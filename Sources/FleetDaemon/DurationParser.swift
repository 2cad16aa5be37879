import FleetModel

/// Parses the durations written in the config file: `30s`, `5m`, `1h`, `1h30m`, `250ms`, `2d`.
public enum DurationParser {
    /// The duration `text` describes, or `nil` when it is not a sequence of `<integer><unit>`
    /// with units `ms`, `s`, `m`, `h`, `d`.
    public static func parse(_ text: String) -> Duration? {
        var total = Duration.zero
        var number: Int64?
        var unit = ""
        var sawAny = false
        func flush() -> Bool {
            guard let n = number else { return unit.isEmpty }
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
                if !unit.isEmpty { guard flush() else { return nil } }
                let (partial, overflow) = (number ?? 0).multipliedReportingOverflow(by: 10)
                guard !overflow, partial <= 10_000_000_000 else { return nil }
                number = partial + Int64(digit)
            } else if c.isLetter, c.isASCII, number != nil {
                unit.append(c)
            } else {
                return nil
            }
        }
        guard flush(), sawAny else { return nil }
        return total
    }

    /// `duration` written the way the config takes it (`90s` → `1m30s`).
    public static func format(_ duration: Duration) -> String {
        var ms = duration.milliseconds
        if ms == 0 { return "0s" }
        var out = ""
        for (size, suffix) in [(Int64(86_400_000), "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s"), (1, "ms")] where ms >= size {
            out += "\(ms / size)\(suffix)"
            ms %= size
        }
        return out
    }
}
