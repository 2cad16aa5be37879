import FleetModel

/// Parsing of the `Retry-After` response header (RFC 9110 §10.2.3).
public enum RetryAfter {
    /// The delay a `Retry-After` value asks for, measured from `now`.
    ///
    /// Accepts delay-seconds (`120`: ASCII digits only) and an HTTP-date in any of its three
    /// formats (``HTTPDate``; `Sun, 29 Nov 2026 15:04:05 GMT`), with spaces or tabs around. A date
    /// in the past gives zero. A malformed value, or one asking for more than ``maximum``, gives
    /// `nil`, so that the caller falls back to its own backoff.
    public static func parse(_ value: String, now: Timestamp) -> Duration? {
        let trimmed = value.trimmingSpaces
        if !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            // More digits than Int64 holds is more than `maximum` too.
            guard let seconds = Int64(trimmed), seconds <= maximum.components.seconds else { return nil }
            return .seconds(seconds)
        }
        guard let date = HTTPDate.parse(trimmed, now: now) else { return nil }
        let delay = date.duration(since: now)
        guard delay <= maximum else { return nil }
        return delay > .zero ? delay : .zero
    }

    /// The longest wait taken seriously: 7 days. Longer values are treated as malformed.
    public static let maximum: Duration = .seconds(7 * 86_400)
}

extension String {
    /// Without the spaces and tabs around it. Read byte by byte: `Substring.dropLast()` counts from
    /// the start each time, which made a header of many trailing tabs take quadratic time (found by
    /// the slope probe, docs/fuzzing.md).
    var trimmingSpaces: String {
        let bytes = utf8
        guard let first = bytes.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }),
            let last = bytes.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })
        else { return "" }
        // Both ends are next to ASCII (or the text's ends), so the bytes between are whole UTF-8.
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
