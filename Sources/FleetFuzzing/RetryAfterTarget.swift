import FleetClient
import FleetModel
import Foundation

extension FuzzTarget {
    /// `Retry-After` values and HTTP-dates, the date part against Foundation's `DateFormatter`.
    ///
    /// Checked: a delay is never negative nor longer than ``RetryAfter/maximum``; delay-seconds
    /// give exactly their digits; an HTTP-date we accept is the instant Foundation reads from it,
    /// and formats back to itself when it is IMF-fixdate with its true weekday; every IMF-fixdate
    /// Foundation reads and writes back unchanged we accept too; and for an instant taken from
    /// the input, ``HTTPDate/format(_:)`` writes what Foundation writes and reads back to it.
    public static let retryAfter = FuzzTarget(
        name: "retry-after",
        summary: "Retry-After and HTTP-dates: bounds, round trip, differential against DateFormatter",
        grow: [
            Growth("spaces around a number") { n in
                Array(repeating: 0x20, count: n / 2) + Array("120".utf8) + Array(repeating: 0x09, count: n / 2)
            },
            Growth("many digits") { n in Array(repeating: UInt8(ascii: "9"), count: n) },
            Growth("a date of long words") { n in
                Array(("Sun, 06 " + String(repeating: "N", count: n) + " 1994 08:49:37 GMT").utf8)
            },
        ]
    ) { input throws(FuzzFailure) in
        let now = HTTPDateDifferential.now
        let text = String(decoding: input, as: UTF8.self)
        if let delay = RetryAfter.parse(text, now: now) {
            guard delay >= .zero, delay <= RetryAfter.maximum else {
                throw FuzzFailure("retry-after", "\(quoted(input)) gives \(delay)")
            }
            // Trimmed here byte by byte (Foundation's trimmingCharacters is slower than linear).
            let bytes = Array(text.utf8)
            let first = bytes.firstIndex { $0 != 0x20 && $0 != 0x09 } ?? bytes.count
            let last = bytes.lastIndex { $0 != 0x20 && $0 != 0x09 }.map { $0 + 1 } ?? first
            let trimmed = String(decoding: bytes[first..<Swift.max(first, last)], as: UTF8.self)
            if trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), Int64(trimmed) != delay.components.seconds {
                throw FuzzFailure("retry-after", "\(quoted(input)) gives \(delay)")
            }
        }
        try HTTPDateDifferential.check(text)
        // An instant from the input's first 8 bytes, within Foundation's Gregorian years.
        var bits: UInt64 = 0
        for byte in input.prefix(8) { bits = bits << 8 | UInt64(byte) }
        try HTTPDateDifferential.checkFormat(
            seconds: HTTPDateDifferential.range.lowerBound
                + Int64(bits % UInt64(HTTPDateDifferential.range.count)))
    }
}

/// The differential check of HTTP-dates against Foundation's `DateFormatter` (ICU).
///
/// Compared only for years from 1600 to 9999 (ICU's calendar is Julian before 1582) and seconds
/// other than a leap second `60` (ICU refuses it; we read it as `59`). ICU also reads lower-case
/// names, extra spaces, one-digit days and a wrong weekday, which the RFC's grammar does not
/// allow: those are compared only in the direction "what we accept, ICU reads the same". Only
/// ASCII text of at most 64 bytes is given to ICU (an HTTP-date is ASCII and at most 40 bytes;
/// ICU traps on some other text, and is slower than linear on long text).
public enum HTTPDateDifferential {
    /// The time the fuzzed values are read at: 2026-12-01T00:00:00Z.
    public static let now = Timestamp(millisecondsSince1970: 1_796_083_200_000)
    /// Seconds since 1970 of 1600-01-01 up to 9999-12-31T23:59:59Z.
    static let range: ClosedRange<Int64> = -11_676_096_000...253_402_300_799

    private static let imf = formatter("EEE, dd MMM yyyy HH:mm:ss 'GMT'")
    private static let rfc850: DateFormatter = {
        let f = formatter("EEEE, dd-MMM-yy HH:mm:ss 'GMT'")
        // Our rule for two-digit years: not more than 50 years after `now` (2026 → 1977…2076).
        f.twoDigitStartDate = Date(timeIntervalSince1970: 220_924_800)  // 1977-01-01T00:00:00Z
        return f
    }()
    private static let asctime = formatter("EEE MMM d HH:mm:ss yyyy")

    private static func formatter(_ format: String) -> DateFormatter {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = format
        f.isLenient = false
        return f
    }

    static func check(_ text: String) throws(FuzzFailure) {
        func fail(_ message: String) -> FuzzFailure { FuzzFailure("retry-after", "\(quoted(text.utf8)): \(message)") }
        let ours = HTTPDate.parse(text, now: now)
        // HTTP-dates are ASCII and at most 40 bytes long. (Foundation's DateFormatter traps on some
        // non-ASCII text, and takes more than linear time on long text.)
        guard text.utf8.count <= 64, text.utf8.allSatisfy({ $0 < 0x80 }) else {
            if let ours { throw fail("read as \(ours)") }
            return
        }
        if let ours {
            let seconds = ours.millisecondsSince1970 / 1000
            guard ours.millisecondsSince1970 % 1000 == 0 else { throw fail("has milliseconds: \(ours)") }
            let leapSecond = text.contains(":60 ") || text.hasSuffix(":60")
            guard range.contains(seconds), !leapSecond else { return }
            let theirs: Date?
            if text.hasSuffix(" GMT"), text.contains("-") {
                theirs = rfc850.date(from: text)
            } else if text.hasSuffix(" GMT") {
                theirs = imf.date(from: text)
            } else {
                theirs = asctime.date(from: text.replacingOccurrences(of: "  ", with: " "))
            }
            guard let theirs else { throw fail("we read \(ours), DateFormatter reads nothing") }
            guard Int64(theirs.timeIntervalSince1970) == seconds else {
                throw fail("we read \(ours), DateFormatter reads \(theirs)")
            }
            if !text.contains("-"), text.hasSuffix(" GMT"), imf.string(from: theirs) == text,
                HTTPDate.format(ours) != text
            {
                throw fail("formats back as \(HTTPDate.format(ours))")
            }
        }
        // An IMF-fixdate Foundation reads and writes back unchanged is canonical: we must read it.
        if let theirs = imf.date(from: text), imf.string(from: theirs) == text,
            range.contains(Int64(theirs.timeIntervalSince1970))
        {
            guard let ours, ours.millisecondsSince1970 / 1000 == Int64(theirs.timeIntervalSince1970) else {
                throw fail("DateFormatter reads \(theirs), we read \(ours.map { "\($0)" } ?? "nothing")")
            }
        }
    }

    static func checkFormat(seconds: Int64) throws(FuzzFailure) {
        let instant = Timestamp(millisecondsSince1970: seconds * 1000)
        let ours = HTTPDate.format(instant)
        let theirs = imf.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        guard ours == theirs else { throw FuzzFailure("retry-after", "\(instant) formats as \(ours), not \(theirs)") }
        guard HTTPDate.parse(ours, now: now) == instant else {
            throw FuzzFailure("retry-after", "\(ours) does not read back as \(instant)")
        }
    }
}
