import FleetModel
import Foundation

extension FuzzTarget {
    /// `JSONParser` on any bytes, against Foundation's `JSONSerialization`.
    ///
    /// Checked: a refusal names a byte offset inside the input; an accepted document serializes
    /// and parses back to itself; and the verdict and the values agree with `JSONSerialization`
    /// (strings exactly, numbers within Double's precision, a repeated key keeping its last value)
    /// except where the two differ by design (see ``JSONDifferential``).
    public static let json = FuzzTarget(
        name: "json",
        summary: "JSONParser: offsets of refusals, round trip, differential against JSONSerialization",
        grow: [
            Growth("nested arrays (refused past the depth limit)") { n in
                Array(repeating: UInt8(ascii: "["), count: n / 2) + Array(repeating: UInt8(ascii: "]"), count: n / 2)
            },
            Growth("one string of escapes") { n in
                Array("\"".utf8) + Array(repeating: Array("\\u00e9".utf8), count: n / 6).flatMap { $0 }
                    + Array("\"".utf8)
            },
            Growth("an object of distinct keys") { n in
                let members = (0..<max(1, n / 12)).map { "\"k\($0)\":\($0)" }
                return Array(("{" + members.joined(separator: ",") + "}").utf8)
            },
            Growth("an object of one repeated key") { n in
                Array(("{" + Array(repeating: "\"k\":1", count: max(1, n / 6)).joined(separator: ",") + "}").utf8)
            },
            Growth("a number of many digits") { n in Array(repeating: UInt8(ascii: "7"), count: n) },
        ]
    ) { input throws(FuzzFailure) in
        let ours: JSONValue
        do throws(JSONParser.SyntaxError) {
            ours = try JSONParser.parse(input)
        } catch {
            guard error.offset >= 0, error.offset <= input.count, !error.reason.isEmpty else {
                throw FuzzFailure("json", "refusal without a position inside the input: \(error)")
            }
            try JSONDifferential.checkRefusal(input, error)
            return
        }
        let text = ours.serialized
        guard let again = try? JSONParser.parse(text), again == ours else {
            throw FuzzFailure(
                "json", "\(quoted(input)) does not parse back from its serialization \(quoted(text.utf8))")
        }
        try JSONDifferential.checkAcceptance(input, ours)
    }
}

/// The differential check of ``FuzzTarget/json``: our verdict and values against Foundation's
/// `JSONSerialization` (with `.fragmentsAllowed`, as our parser reads any value at the top).
///
/// Where the two differ by design, the input is not counted as a disagreement:
/// - bytes that are not UTF-8 (Foundation also reads UTF-16 and UTF-32; invalid UTF-8 inside a
///   string is refused by Foundation and replaced by U+FFFD by ours, so that one bad byte of a
///   vendor's text does not lose a whole response);
/// - a number too large for Double (`1e999`): Foundation refuses the document, ours keeps the
///   literal as a string for the normalizer to report as that property's failure;
/// - U+FEFF after the start: Foundation drops it where it starts a string, ours keeps it (only a
///   byte-order mark before the document is not part of it);
/// - nesting deeper than ``JSONParser/maximumDepth`` (256; Foundation's limit is 512);
/// - a comma before `]` or `}`, which Foundation accepts and RFC 8259 does not: the comma is
///   removed and the input compared again.
public enum JSONDifferential {
    static func foundation(_ input: [UInt8]) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed])
    }

    static func isComparable(_ input: [UInt8]) -> Bool {
        // Foundation guesses UTF-16/32 from zero bytes among the first four, and drops a U+FEFF
        // that starts a string.
        String(validating: input, as: UTF8.self) != nil && !input.prefix(4).contains(0)
            && !containsByteOrderMark(input.starts(with: [0xEF, 0xBB, 0xBF]) ? input.dropFirst(3) : input[...])
    }

    static func checkRefusal(_ input: [UInt8], _ error: JSONParser.SyntaxError) throws(FuzzFailure) {
        guard isComparable(input), foundation(input) != nil else { return }
        if error.reason.hasPrefix("nesting deeper") { return }
        // Foundation's trailing comma: drop it and compare again.
        if let comma = trailingComma(input, at: error.offset) {
            var fixed = input
            fixed.remove(at: comma)
            do {
                let value = try JSONParser.parse(fixed)
                try checkAcceptance(fixed, value)
            } catch let again as JSONParser.SyntaxError {
                try checkRefusal(fixed, again)
            } catch let failure as FuzzFailure {
                throw failure
            } catch {}
            return
        }
        throw FuzzFailure("json", "refused \(quoted(input)) (\(error)) but JSONSerialization accepts it")
    }

    /// True when the UTF-8 of U+FEFF (`EF BB BF`) occurs in `bytes`.
    static func containsByteOrderMark(_ bytes: ArraySlice<UInt8>) -> Bool {
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: 0xEF) {
            if bytes[found...].starts(with: [0xEF, 0xBB, 0xBF]) { return true }
            index = found + 1
        }
        return false
    }

    /// The offset of a `,` that only whitespace separates from the `]` or `}` at `offset`.
    static func trailingComma(_ input: [UInt8], at offset: Int) -> Int? {
        guard offset < input.count, input[offset] == UInt8(ascii: "]") || input[offset] == UInt8(ascii: "}") else {
            return nil
        }
        var index = offset - 1
        while index >= 0, [0x20, 0x09, 0x0A, 0x0D].contains(input[index]) { index -= 1 }
        return index >= 0 && input[index] == UInt8(ascii: ",") ? index : nil
    }

    static func checkAcceptance(_ input: [UInt8], _ ours: JSONValue) throws(FuzzFailure) {
        guard isComparable(input) else { return }
        guard let theirs = foundation(input) else {
            if containsOversizedNumber(ours) { return }
            throw FuzzFailure("json", "accepted \(quoted(input)) but JSONSerialization refuses it")
        }
        if let difference = compare(ours, theirs, path: "$") {
            throw FuzzFailure("json", "\(quoted(input)): \(difference)")
        }
    }

    /// True when `value` holds a string that is a number literal beyond Double's range (how our
    /// parser keeps `1e999`).
    static func containsOversizedNumber(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let text):
            guard let first = text.utf8.first, first == UInt8(ascii: "-") || (48...57).contains(first) else {
                return false
            }
            return Double(text).map { !$0.isFinite } ?? false
        case .array(let items): return items.contains(where: containsOversizedNumber)
        case .object(let object): return object.contains { containsOversizedNumber($0.value) }
        default: return false
        }
    }

    /// The first difference between our value and Foundation's, or `nil`.
    static func compare(_ ours: JSONValue, _ theirs: Any, path: String) -> String? {
        switch ours {
        case .null:
            return theirs is NSNull ? nil : "\(path): null here, \(theirs) there"
        case .bool(let value):
            guard let number = theirs as? NSNumber, isBoolean(number) else {
                return "\(path): \(value) here, \(theirs) there"
            }
            return number.boolValue == value ? nil : "\(path): \(value) here, \(number.boolValue) there"
        case .number(let value):
            guard let number = theirs as? NSNumber, !isBoolean(number) else {
                return "\(path): \(value) here, \(theirs) there"
            }
            let other = number.doubleValue
            // Foundation reads long fractions through Decimal, which may round in the last digits.
            let tolerance = Swift.max(abs(value), abs(other)) * 1e-14
            return abs(value - other) <= tolerance ? nil : "\(path): \(value) here, \(other) there"
        case .string(let value):
            guard let text = theirs as? String else { return "\(path): string here, \(theirs) there" }
            return text.unicodeScalars.elementsEqual(value.unicodeScalars)
                ? nil : "\(path): \(quoted(value.utf8)) here, \(quoted(text.utf8)) there"
        case .array(let items):
            guard let others = theirs as? [Any] else { return "\(path): array here, \(theirs) there" }
            guard items.count == others.count else {
                return "\(path): \(items.count) items here, \(others.count) there"
            }
            for (index, (item, other)) in zip(items, others).enumerated() {
                if let difference = compare(item, other, path: "\(path)[\(index)]") { return difference }
            }
            return nil
        case .object(let object):
            guard let others = theirs as? [String: Any] else { return "\(path): object here, \(theirs) there" }
            guard object.count == others.count else {
                return "\(path): \(object.count) members here, \(others.count) there"
            }
            for (key, value) in object {
                guard let other = others[key] else { return "\(path): key \(quoted(key.utf8)) missing there" }
                if let difference = compare(value, other, path: "\(path).\(key)") { return difference }
            }
            return nil
        }
    }

    static func isBoolean(_ number: NSNumber) -> Bool {
        // JSONSerialization gives `true` and `false` as a boolean NSNumber (`c`), numbers as `i`, `q`,
        // `Q` or `d`.
        String(cString: number.objCType) == "c"
    }
}
