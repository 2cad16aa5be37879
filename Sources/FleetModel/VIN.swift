/// A Vehicle Identification Number, validated on construction.
///
/// A VIN is exactly 17 characters of the ISO 3779 alphabet: the digits `0`–`9` and the upper-case
/// letters `A`–`Z` except `I`, `O` and `Q`. Lower-case input is upper-cased first. Once a `VIN`
/// exists it is valid, so it is safe to put into a URL path, a log line or the database.
public struct VIN: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The 17 validated characters.
    public let rawValue: String

    /// Validates `string` as a VIN.
    ///
    /// - Throws: ``VINError`` naming the offending character or the wrong length.
    public init(validating string: String) throws(VINError) {
        // What every API response and config carries: 17 valid upper-case characters, taken as they are.
        if string.utf8.count == 17, string.utf8.allSatisfy(VIN.isAllowed(byte:)) {
            self.rawValue = string
            return
        }
        // Upper-case ASCII only: `ſ`.uppercased() is `S`, which must not make a VIN valid.
        let upper = String(
            String.UnicodeScalarView(
                string.unicodeScalars.map { ("a"..."z").contains($0) ? Unicode.Scalar($0.value - 32)! : $0 }))
        let scalars = Array(upper.unicodeScalars)
        guard scalars.count == 17 else {
            throw VINError(input: string, reason: "must be 17 characters, got \(scalars.count)")
        }
        for (offset, scalar) in scalars.enumerated() where !VIN.isAllowed(scalar) {
            throw VINError(
                input: string,
                reason:
                    "character \(offset + 1) ('\(scalar.escaped(asASCII: true))') is not in the ISO 3779 alphabet (0-9, A-Z without I, O, Q)"
            )
        }
        self.rawValue = upper
    }

    /// Returns `nil` when `string` is not a valid VIN.
    public init?(_ string: String) {
        guard let vin = try? VIN(validating: string) else { return nil }
        self = vin
    }

    /// ``isAllowed(_:)`` for one UTF-8 byte: `0`–`9` and `A`–`Z` without `I`, `O`, `Q`.
    static func isAllowed(byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        case UInt8(ascii: "I"), UInt8(ascii: "O"), UInt8(ascii: "Q"): return false
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return true
        default: return false
        }
    }

    static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "0"..."9": return true
        case "I", "O", "Q": return false
        case "A"..."Z": return true
        default: return false
        }
    }

    public var description: String { rawValue }

    public static func < (lhs: VIN, rhs: VIN) -> Bool { lhs.rawValue < rhs.rawValue }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        do {
            self = try VIN(validating: string)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A string that is not a valid VIN, and why.
public struct VINError: Error, Sendable, CustomStringConvertible {
    /// The rejected input, shown escaped so that control characters cannot forge log lines.
    public let input: String
    /// What is wrong with it.
    public let reason: String

    public var description: String {
        let shown = input.count > 40 ? String(input.prefix(40)) + "…" : input
        return "invalid VIN \"\(shown.unicodeScalars.map { $0.escaped(asASCII: true) }.joined())\": \(reason)"
    }
}
