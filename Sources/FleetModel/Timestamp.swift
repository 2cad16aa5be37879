/// An instant in UTC, as whole milliseconds since the Unix epoch (1970-01-01T00:00:00Z).
///
/// This is how every time is stored in the database (INTEGER columns) and compared in memory.
/// It parses and prints RFC 3339 / ISO 8601 (`2026-11-28T09:14:03.000Z`), the format of the
/// Auto API's property `timestamp`.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch, UTC.
    public var millisecondsSince1970: Int64

    public init(millisecondsSince1970: Int64) {
        self.millisecondsSince1970 = millisecondsSince1970
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSince1970 < rhs.millisecondsSince1970
    }

    /// This instant moved by `milliseconds` (negative moves back).
    public func adding(milliseconds: Int64) -> Timestamp {
        let (sum, overflow) = millisecondsSince1970.addingReportingOverflow(milliseconds)
        if overflow { return Timestamp(millisecondsSince1970: milliseconds < 0 ? Int64.min / 2 : Int64.max / 2) }
        return Timestamp(millisecondsSince1970: sum)
    }

    /// This instant moved by a `Duration` (sub-millisecond parts are truncated).
    public func adding(_ duration: Duration) -> Timestamp {
        adding(milliseconds: duration.milliseconds)
    }

    /// This instant moved back by a `Duration` (sub-millisecond parts are truncated).
    public func subtracting(_ duration: Duration) -> Timestamp {
        adding(milliseconds: -duration.milliseconds)
    }

    /// The duration from `other` to `self` (negative when `other` is later).
    public func duration(since other: Timestamp) -> Duration {
        .milliseconds(millisecondsSince1970 - other.millisecondsSince1970)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T09:14:03.000Z`.
    public var description: String { iso8601 }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T09:14:03.000Z`.
    public var iso8601: String {
        let ms = millisecondsSince1970
        let days = floorDiv(ms, Self.millisecondsPerDay)
        let msOfDay = ms - days * Self.millisecondsPerDay
        let (y, m, d) = civilFromDays(days)
        let hour = msOfDay / 3_600_000
        let minute = (msOfDay / 60_000) % 60
        let second = (msOfDay / 1000) % 60
        let milli = msOfDay % 1000
        return
            "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(milli, 3))Z"
    }

    /// Parses an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    ///
    /// A lower-case `t`/`z` or a space between date and time is accepted; a missing offset is read
    /// as UTC (the fleet clearance changelog omits it). Fractions beyond milliseconds are truncated.
    /// Returns `nil` for anything else, including out-of-range fields such as month 13.
    public init?(iso8601 string: String) {
        // Read in place from the string's UTF-8 storage: no copy per timestamp.
        var text = string
        guard let milliseconds = text.withUTF8({ Self.parseISO8601($0) }) else { return nil }
        self.millisecondsSince1970 = milliseconds
    }

    /// Milliseconds since the epoch of an ISO 8601 date-time (see ``init(iso8601:)``), or `nil`.
    private static func parseISO8601(_ utf8: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard utf8.count >= 19 else { return nil }
        func digits(_ start: Int, _ count: Int) -> Int64? {
            guard start + count <= utf8.count else { return nil }
            var value: Int64 = 0
            for i in start..<(start + count) {
                let c = utf8[i]
                guard c >= 48, c <= 57 else { return nil }
                value = value * 10 + Int64(c - 48)
            }
            return value
        }
        guard let year = digits(0, 4), utf8[4] == 45, let month = digits(5, 2), utf8[7] == 45,
            let day = digits(8, 2), utf8[10] == 84 || utf8[10] == 116 || utf8[10] == 32,  // T t space
            let hour = digits(11, 2), utf8[13] == 58, let minute = digits(14, 2), utf8[16] == 58,
            let second = digits(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month),
            hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var index = 19
        var millis: Int64 = 0
        if index < utf8.count, utf8[index] == 46 {
            index += 1
            var scale: Int64 = 100
            let start = index
            while index < utf8.count, utf8[index] >= 48, utf8[index] <= 57 {
                millis += Int64(utf8[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offsetMinutes: Int64 = 0
        if index < utf8.count {
            switch utf8[index] {
            case 90, 122:  // Z z
                index += 1
            case 43, 45:  // + -
                let sign: Int64 = utf8[index] == 45 ? -1 : 1
                guard let oh = digits(index + 1, 2), index + 3 < utf8.count, utf8[index + 3] == 58,
                    let om = digits(index + 4, 2), oh <= 23, om <= 59
                else { return nil }
                offsetMinutes = sign * (oh * 60 + om)
                index += 6
            default:
                return nil
            }
        }
        guard index == utf8.count else { return nil }
        let days = daysFromCivil(year, month, day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + min(second, 59) - offsetMinutes * 60
        return seconds * 1000 + millis
    }
}

extension Timestamp {
    /// Milliseconds in a UTC day (86,400,000): UTC has no daylight saving, and leap seconds are
    /// not counted in Unix time.
    public static let millisecondsPerDay: Int64 = 86_400_000

    /// The UTC day of this instant, as days since 1970-01-01 (negative before).
    public var utcDay: Int64 { floorDiv(millisecondsSince1970, Self.millisecondsPerDay) }

    /// Midnight UTC starting the day of this instant.
    public var startOfUTCDay: Timestamp { Timestamp(millisecondsSince1970: utcDay * Self.millisecondsPerDay) }
}

extension Duration {
    /// `count` days of 24 hours.
    public static func days(_ count: Int) -> Duration {
        .seconds(Int64(count) * 86_400)
    }

    /// Whole milliseconds in this duration, truncated toward zero; saturates at about ±292
    /// million years instead of overflowing.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? Int64.min / 2 : Int64.max / 2 }
        return ms + attoseconds / 1_000_000_000_000_000
    }

    /// This duration in seconds as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

private func pad(_ value: Int64, _ width: Int) -> String {
    let s = String(value)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

private func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

private func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

private func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
    switch m {
    case 2: return isLeap(y) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
private func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = floorDiv(y, 400)
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

private func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
    let z = days + 719_468
    let era = floorDiv(z, 146_097)
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
}
