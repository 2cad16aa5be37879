import FleetClient
import FleetModel

extension FuzzTarget {
    /// The API error-body reader on any body, of any status: the platform's three shapes
    /// (`{"errors": [...]}`, OAuth's `{"error", "error_description"}`, a bare array) and whatever a
    /// proxy sends instead.
    ///
    /// The input also gives a `Retry-After` header (see the closure).
    ///
    /// Checked: the title, detail, request id and `Retry-After` header are one line each (no
    /// control character reaches a log line) and bounded (200, 500, 100 and 100 characters);
    /// the description is one line; the wait asked for (`Retry-After`, else `retry after Ns` in the
    /// detail) is 0 to 7 days.
    public static let apiError = FuzzTarget(
        name: "api-error",
        summary: "API error bodies (three shapes and non-JSON): one bounded line per field, waits in range",
        grow: [
            Growth("a long detail") { n in
                Array("{\"errors\":[{\"title\":\"t\",\"detail\":\"".utf8)
                    + Array(repeating: UInt8(ascii: "d"), count: n)
                    + Array("\"}]}".utf8)
            },
            Growth("many errors") { n in
                Array(
                    ("["
                        + Array(repeating: "{\"title\":\"t\",\"detail\":\"d\"}", count: max(1, n / 28))
                        .joined(separator: ",") + "]").utf8)
            },
            Growth("a non-JSON page") { n in Array(repeating: UInt8(ascii: "<"), count: n) },
        ]
    ) { input throws(FuzzFailure) in
        // The first two bytes choose the status (100–599); up to a NUL byte, the rest is the
        // `Retry-After` header (none without a NUL); after it, the body.
        let status = input.count >= 2 ? 100 + (Int(input[0]) << 8 | Int(input[1])) % 500 : 429
        let rest = input.dropFirst(2)
        let header = rest.firstIndex(of: 0).map { String(decoding: rest[..<$0], as: UTF8.self) }
        let body = Array(rest.firstIndex(of: 0).map { rest[($0 + 1)...] } ?? rest)
        let error = APIError.fromResponse(
            status: status, body: body, endpoint: "GET /v1/vehicle-data/autoapi-13/{vin}",
            vin: NormalizerInvariants.vin,
            retryAfter: header.flatMap { RetryAfter.parse($0, now: HTTPDateDifferential.now) },
            retryAfterHeader: header)
        func fail(_ message: String) -> FuzzFailure { FuzzFailure("api-error", "\(quoted(body)): \(message)") }
        for (name, value, limit) in [
            ("title", error.title, 200), ("detail", error.detail, 500), ("request_id", error.requestID, 100),
            ("Retry-After", error.retryAfterHeader, 100),
        ] {
            guard let value else { continue }
            guard value.count <= limit else { throw fail("\(name) of \(value.count) characters") }
            guard isOneLine(value) else { throw fail("\(name) \(quoted(value.utf8)) is not one line") }
        }
        guard isOneLine(error.description) else { throw fail("description \(quoted(error.description.utf8))") }
        if let wait = error.requestedWait, wait < .zero || wait > RetryAfter.maximum {
            throw fail("requested wait \(wait)")
        }
    }

    static func isOneLine(_ text: String) -> Bool {
        !text.unicodeScalars.contains(where: \.breaksALine)
    }
}
