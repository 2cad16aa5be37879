/// The members of a JSON object, kept in document order.
///
/// Auto API objects are small (`{"data", "timestamp"}`, `{"value", "unit"}`, a capability's few
/// properties): finding a key by comparing it with each member costs less than hashing it, and
/// building the object costs one append per member instead of a hash table. Compared and hashed
/// as a dictionary would be: member order has no meaning, and a key appears once (a repeated key
/// in a document keeps its last value, as ``JSONParser`` reads it).
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    /// The members, each key once.
    public private(set) var members: [Element]

    /// Above this many members, keys are checked for repeats through a hash table instead of by
    /// comparison (objects of untrusted bodies can be large).
    static let linearLimit = 32

    /// An empty object.
    public init() {
        members = []
    }

    /// The members of `dictionary` (in no particular order).
    public init(_ dictionary: [String: JSONValue]) {
        members = dictionary.map { ($0.key, $0.value) }
    }

    /// An object of string members (clearance `tags`), in no particular order.
    public init(strings: [String: String]) {
        members = strings.map { ($0.key, .string($0.value)) }
    }

    /// The members of the literal, in order (a repeated key keeps its last value).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(members: elements.map { (key: $0.0, value: $0.1) })
    }

    /// Members in order; of a repeated key, the last value is kept (at the key's first place).
    public init(members: [Element]) {
        if members.count <= Self.linearLimit {
            // The common case, no key repeated, keeps the array as it is.
            let repeated = members.indices.dropFirst().contains { index in
                members[..<index].contains { $0.key == members[index].key }
            }
            guard repeated else {
                self.members = members
                return
            }
            self.members = []
            for member in members { self[member.key] = member.value }
            return
        }
        var positions: [String: Int] = [:]
        positions.reserveCapacity(members.count)
        var unique: [Element] = []
        unique.reserveCapacity(members.count)
        for member in members {
            if let position = positions[member.key] {
                unique[position].value = member.value
            } else {
                positions[member.key] = unique.count
                unique.append(member)
            }
        }
        self.members = unique
    }

    /// The value of `key`, or `nil`; setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            for member in members where member.key == key { return member.value }
            return nil
        }
        set {
            if let index = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[index].value = newValue } else { members.remove(at: index) }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    /// The number of members (distinct keys).
    public var count: Int { members.count }
    /// True for `{}`.
    public var isEmpty: Bool { members.isEmpty }
    /// The keys, in document order.
    public var keys: [String] { members.map(\.key) }

    /// The members as `(key, value)`, in document order.
    public func makeIterator() -> IndexingIterator<[Element]> {
        members.makeIterator()
    }

    /// The members whose key and value satisfy `isIncluded`, in order.
    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> JSONObject {
        var result = JSONObject()
        result.members = try members.filter(isIncluded)
        return result
    }

    /// The values transformed, by key; members for which `transform` gives `nil` are left out.
    public func compactMapValues<T>(_ transform: (JSONValue) throws -> T?) rethrows -> [String: T] {
        var result: [String: T] = [:]
        for member in members {
            if let value = try transform(member.value) { result[member.key] = value }
        }
        return result
    }

    /// The members as a dictionary.
    public var dictionary: [String: JSONValue] {
        Dictionary(members, uniquingKeysWith: { _, last in last })
    }

    /// Equal when both hold the same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count > linearLimit { return lhs.dictionary == rhs.dictionary }
        return lhs.members.allSatisfy { rhs[$0.key] == $0.value }
    }

    /// Hashes the members independently of their order, as equality compares them.
    public func hash(into hasher: inout Hasher) {
        var combined = 0
        for member in members {
            var memberHasher = Hasher()
            memberHasher.combine(member.key)
            memberHasher.combine(member.value)
            combined ^= memberHasher.finalize()
        }
        hasher.combine(count)
        hasher.combine(combined)
    }
}
