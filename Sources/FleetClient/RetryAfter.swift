import FleetModel

/// Parsing of the `Retry-After` response header (RFC 9110 §10.2.3).
public enum RetryAfter {
    /// The delay a `Retry-After` value asks for, measured from `now`.
    ///
    /// Accepts delta-seconds (`120`) and an HTTP-date (`Sun, 29 Nov 2026 15:04:05 GMT`). A date in
    /// the past gives zero. A malformed, negative or absurd value (more than ``maximum``) gives
    /// `nil`, so that the caller falls back to its own backoff.
    public static func parse(_ value: String, now: Timestamp) -> Duration? {
        let trimmed = value.trimmingSpaces
        if trimmed.allSatisfy(\.isASCII), let seconds = Int64(trimmed) {
            return seconds >= 0 && seconds <= maximum.components.seconds ? .seconds(seconds) : nil
        }
        guard let date = parseHTTPDate(trimmed) else { return nil }
        let delay = date.duration(since: now)
        guard delay <= maximum else { return nil }
        return delay > .zero ? delay : .zero
    }

    /// The longest wait taken seriously: 7 days. Longer values are treated as malformed.
    public static let maximum: Duration = .seconds(7 * 86_400)

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func parseHTTPDate(_ text: String) -> Timestamp? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
            let day = Int(parts[1]), let monthIndex = months.firstIndex(of: String(parts[2])),
            let year = Int(parts[3]), parts[4].count == 8
        else { return nil }
        let iso =
            String.padded(year, width: 4) + "-" + String.padded(monthIndex + 1, width: 2) + "-"
            + String.padded(day, width: 2) + "T" + parts[4] + "Z"
        return Timestamp(iso8601: iso)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }

    static func padded(_ value: Int, width: Int) -> String {
        let digits = "\(value)"
        return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
    }
}
