/// A parsed JSON document, kept generic because Auto API responses are sparse and open-ended.
public enum JSONValue: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    /// Members in document order (the Auto API gives the order no meaning: compared as a set).
    case object(JSONObject)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? container.decode(Double.self) {
            self = .number(n)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? container.decode([String: JSONValue].self) {
            self = .object(JSONObject(o))
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let n): try container.encode(n)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o.dictionary)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The members of an object, or `nil`.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The items of an array, or `nil`.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The text of a string, or `nil`.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of a number, or `nil` (a number given as text is not converted).
    public var numberValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// This value as compact JSON text with object keys sorted, so that the same value always
    /// serializes the same way. Whole numbers print without a fraction (`12`, not `12.0`); a
    /// number that is not finite (never produced by ``JSONParser``) prints as `null`.
    public var serialized: String { serialized(sortingKeys: true) }

    /// Compact JSON text with the object members in the order given (for output whose keys
    /// follow a table's columns), or sorted as ``serialized`` has them.
    public func serialized(sortingKeys: Bool) -> String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n):
            guard n.isFinite else { return "null" }
            return n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .string(let s): return JSONValue.quoted(s)
        case .array(let a): return "[" + a.map { $0.serialized(sortingKeys: sortingKeys) }.joined(separator: ",") + "]"
        case .object(let o):
            let members = sortingKeys ? o.members.sorted { $0.key < $1.key } : o.members
            return "{"
                + members.map { JSONValue.quoted($0.key) + ":" + $0.value.serialized(sortingKeys: sortingKeys) }
                .joined(separator: ",") + "}"
        }
    }

    /// `string` as a JSON string literal, with quotes, backslashes and control characters escaped.
    public static func quoted(_ string: String) -> String {
        var out = "\""
        out.reserveCapacity(string.utf8.count + 2)
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
        return out
    }
}
