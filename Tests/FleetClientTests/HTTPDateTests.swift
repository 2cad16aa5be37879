import FleetClient
import FleetModel
import Testing

/// HTTP-dates in all three RFC 9110 formats, and what the fuzzer found about `Retry-After`.
@Suite struct HTTPDateTests {
    /// 2026-12-01T00:00:00Z.
    let now = Timestamp(millisecondsSince1970: 1_796_083_200_000)
    /// Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
    let example = Timestamp(millisecondsSince1970: 784_111_777_000)

    @Test(arguments: ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"])
    func allThreeFormatsReadTheSameInstant(_ text: String) {
        #expect(HTTPDate.parse(text, now: now) == example)
    }

    @Test func imfFixdateIsWrittenWithItsWeekday() {
        #expect(HTTPDate.format(example) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(Timestamp(millisecondsSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 GMT")
        // Milliseconds are dropped, also before 1970.
        #expect(HTTPDate.format(Timestamp(millisecondsSince1970: -1)) == "Wed, 31 Dec 1969 23:59:59 GMT")
        #expect(HTTPDate.format(Timestamp(millisecondsSince1970: 1_796_083_200_999)) == "Tue, 01 Dec 2026 00:00:00 GMT")
    }

    /// RFC 9110: a two-digit year more than 50 years ahead is the latest past year with its digits.
    @Test func rfc850YearsAreAtMostFiftyYearsAhead() {
        #expect(
            HTTPDate.parse("Tuesday, 01-Dec-76 00:00:00 GMT", now: now).map(\.iso8601) == "2076-12-01T00:00:00.000Z")
        #expect(HTTPDate.parse("Monday, 01-Dec-77 00:00:00 GMT", now: now).map(\.iso8601) == "1977-12-01T00:00:00.000Z")
        #expect(
            HTTPDate.parse("Tuesday, 01-Dec-26 00:00:00 GMT", now: now).map(\.iso8601) == "2026-12-01T00:00:00.000Z")
    }

    @Test(arguments: [
        "sun, 06 Nov 1994 08:49:37 GMT",  // names are case-sensitive
        "Sun, 6 Nov 1994 08:49:37 GMT",  // two-digit day
        "Sun,  06 Nov 1994 08:49:37 GMT",  // one space
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",  // no such day
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",  // RFC 850 takes the long day name
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",  // asctime pads the day with a space
        "Sun Nov 06 08:49:37 1994 GMT",
        "Fun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "",
    ])
    func malformedDatesAreRefused(_ text: String) {
        #expect(HTTPDate.parse(text, now: now) == nil)
    }

    /// A leap second reads as the second before it.
    @Test func aLeapSecondReadsAs59() {
        #expect(HTTPDate.parse("Wed, 31 Dec 2025 23:59:60 GMT", now: now).map(\.iso8601) == "2025-12-31T23:59:59.000Z")
    }

    /// Found by the retry-after target: `Int64("+5")` is 5, but delay-seconds are `1*DIGIT`.
    @Test(arguments: ["+5", "+0", "0x10", "5 5", "99999999999999999999"])
    func retryAfterTakesDigitsOnly(_ text: String) {
        #expect(RetryAfter.parse(text, now: now) == nil)
    }

    /// Found by the slope probe: trailing tabs were trimmed in quadratic time.
    @Test func aLongPaddedValueIsStillRead() {
        let padded = String(repeating: " ", count: 100_000) + "120" + String(repeating: "\t", count: 100_000)
        #expect(RetryAfter.parse(padded, now: now) == .seconds(120))
        #expect(RetryAfter.parse("\t \t", now: now) == nil)
        #expect(RetryAfter.parse(" 1\u{301} ", now: now) == nil)
    }

    @Test func retryAfterTakesTheObsoleteDateFormats() {
        #expect(RetryAfter.parse("Tuesday, 01-Dec-26 00:02:00 GMT", now: now) == .seconds(120))
        #expect(RetryAfter.parse("Tue Dec  1 00:02:00 2026", now: now) == .seconds(120))
        #expect(RetryAfter.parse("\tTue, 01 Dec 2026 00:02:00 GMT ", now: now) == .seconds(120))
    }
}

/// Found by the api-error target: an error body's fields reached log lines with their newlines.
@Suite struct APIErrorBodyTests {
    @Test func everyFieldIsOneBoundedLine() {
        let body = #"{"errors":[{"title":"a\nb","detail":"one\r\ntwo\u0007\u2028three"}],"request_id":"x\ny"}"#
        let error = APIError.fromResponse(
            status: 400, body: Array(body.utf8), endpoint: "GET /x", vin: nil, retryAfter: nil)
        #expect(error.title == "a b")
        #expect(error.detail == "one  two  three")
        #expect(error.requestID == "x y")
        #expect(!error.description.contains("\n"))
        let long = #"{"request_id":""# + String(repeating: "r", count: 10_000) + #""}"#
        let bounded = APIError.fromResponse(
            status: 400, body: Array(long.utf8), endpoint: "GET /x", vin: nil, retryAfter: nil)
        #expect(bounded.requestID?.count == 100)
    }

    /// Found by the api-error target: a CR LF is one character, and became two spaces past the limit.
    @Test func aLineBreakAtTheLimitDoesNotPassIt() {
        let title = String(repeating: "t", count: 199) + #"\r\n"# + String(repeating: "u", count: 50)
        let body = #"{"error":""# + title + #""}"#
        let error = APIError.fromResponse(
            status: 400, body: Array(body.utf8), endpoint: "POST /v1/access_tokens", vin: nil, retryAfter: nil)
        #expect(error.title?.count == 200)
        #expect(error.title?.hasSuffix("t ") == true)
    }
}
