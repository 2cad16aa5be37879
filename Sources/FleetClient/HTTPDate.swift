import FleetModel

/// HTTP-dates (RFC 9110 §5.6.7), as `Retry-After` may carry them.
///
/// Reads all three formats, as the RFC requires of a recipient, each exactly as the grammar
/// writes it (case-sensitive, single spaces, two-digit fields):
/// - IMF-fixdate, what servers send: `Sun, 06 Nov 1994 08:49:37 GMT`;
/// - the obsolete RFC 850 format: `Sunday, 06-Nov-94 08:49:37 GMT`, its two-digit year taken as
///   the latest year with those digits that is not more than 50 years after `now`;
/// - the obsolete asctime format: `Sun Nov  6 08:49:37 1994`.
///
/// The day name must be a valid one for its format; it is not checked against the date (the date
/// decides). A second of `60` (a leap second) reads as `59`. Times are UTC.
public enum HTTPDate {
    private static let shortDays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    private static let longDays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The instant `text` names, or `nil` when it is not an HTTP-date (or names an impossible
    /// date such as 31 Feb).
    ///
    /// - Parameter now: Decides the century of an RFC 850 date's two-digit year.
    public static func parse(_ text: String, now: Timestamp) -> Timestamp? {
        let bytes = Array(text.utf8)
        guard bytes.count <= 40 else { return nil }
        if let comma = bytes.firstIndex(of: UInt8(ascii: ",")) {
            let name = String(decoding: bytes[..<comma], as: UTF8.self)
            let rest = Array(bytes[(comma + 1)...])
            if shortDays.contains(name) { return imfFixdate(rest) }
            if longDays.contains(name) { return rfc850(rest, now: now) }
            return nil
        }
        return asctime(bytes)
    }

    /// `text` in IMF-fixdate, the format to send: `Sun, 06 Nov 1994 08:49:37 GMT`.
    public static func format(_ timestamp: Timestamp) -> String {
        let seconds = Timestamp(millisecondsSince1970: timestamp.millisecondsSince1970 - floorMod(timestamp))
        let iso = Array(seconds.iso8601.utf8)  // YYYY-MM-DDTHH:MM:SS.mmmZ
        let days = floorDiv(seconds.millisecondsSince1970, Timestamp.millisecondsPerDay)
        // 1970-01-01 was a Thursday (index 3 from Monday).
        let weekday = Int(((days % 7) + 7 + 3) % 7)
        let month = Int(String(decoding: iso[5..<7], as: UTF8.self)) ?? 1
        return shortDays[weekday] + ", " + String(decoding: iso[8..<10], as: UTF8.self) + " " + months[month - 1]
            + " " + String(decoding: iso[0..<4], as: UTF8.self) + " " + String(decoding: iso[11..<19], as: UTF8.self)
            + " GMT"
    }

    // ` 06 Nov 1994 08:49:37 GMT`
    private static func imfFixdate(_ b: [UInt8]) -> Timestamp? {
        guard b.count == 25, b[0] == 0x20, b[3] == 0x20, b[7] == 0x20, b[12] == 0x20, b[21] == 0x20,
            String(decoding: b[22...], as: UTF8.self) == "GMT",
            let day = number(b[1..<3]), let month = month(b[4..<7]), let year = number(b[8..<12])
        else { return nil }
        return instant(year: year, month: month, day: day, time: b[13..<21])
    }

    // ` 06-Nov-94 08:49:37 GMT`
    private static func rfc850(_ b: [UInt8], now: Timestamp) -> Timestamp? {
        guard b.count == 23, b[0] == 0x20, b[3] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == 0x20,
            b[19] == 0x20, String(decoding: b[20...], as: UTF8.self) == "GMT",
            let day = number(b[1..<3]), let month = month(b[4..<7]), let twoDigits = number(b[8..<10])
        else { return nil }
        // RFC 9110: a year more than 50 years in the future is the latest past year with those digits.
        let currentYear = Int(String(decoding: Array(now.iso8601.utf8)[0..<4], as: UTF8.self)) ?? 2000
        var year = currentYear - currentYear % 100 + twoDigits
        if year > currentYear + 50 { year -= 100 }
        return instant(year: year, month: month, day: day, time: b[11..<19])
    }

    // `Sun Nov  6 08:49:37 1994`
    private static func asctime(_ b: [UInt8]) -> Timestamp? {
        guard b.count == 24, b[3] == 0x20, b[7] == 0x20, b[10] == 0x20, b[19] == 0x20,
            shortDays.contains(String(decoding: b[0..<3], as: UTF8.self)), let month = month(b[4..<7])
        else { return nil }
        let day: Int?
        if b[8] == 0x20 {
            day = number(b[9..<10])
        } else {
            day = number(b[8..<10])
        }
        guard let day, let year = number(b[20..<24]) else { return nil }
        return instant(year: year, month: month, day: day, time: b[11..<19])
    }

    /// `HH:MM:SS` on that day, or `nil` when a field is out of range.
    private static func instant(year: Int, month: Int, day: Int, time: ArraySlice<UInt8>) -> Timestamp? {
        let t = Array(time)
        guard t.count == 8, t[2] == UInt8(ascii: ":"), t[5] == UInt8(ascii: ":"),
            let hour = number(t[0..<2]), let minute = number(t[3..<5]), let second = number(t[6..<8]),
            hour <= 23, minute <= 59, second <= 60, day >= 1, year >= 0
        else { return nil }
        // Timestamp's RFC 3339 reader checks the day against the month (and leap years).
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
        }
        return Timestamp(
            iso8601:
                "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))Z"
        )
    }

    /// The value of ASCII digits (all of them digits), or `nil`.
    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        guard !digits.isEmpty else { return nil }
        var value = 0
        for byte in digits {
            guard byte >= 48, byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }

    private static func month(_ name: ArraySlice<UInt8>) -> Int? {
        months.firstIndex(of: String(decoding: name, as: UTF8.self)).map { $0 + 1 }
    }

    private static func floorMod(_ timestamp: Timestamp) -> Int64 {
        let ms = timestamp.millisecondsSince1970 % 1000
        return ms < 0 ? ms + 1000 : ms
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }
}
