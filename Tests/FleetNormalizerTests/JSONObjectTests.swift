import FleetModel
import Testing

/// `JSONObject` keeps members in document order but compares, hashes and repeats keys as a
/// dictionary would.
@Suite struct JSONObjectTests {
    @Test func membersKeepDocumentOrder() throws {
        let object = try #require(try JSONParser.parse(#"{"timestamp": "t", "data": 1, "failure": null}"#).objectValue)
        #expect(object.keys == ["timestamp", "data", "failure"])
        #expect(object["data"] == .number(1))
        #expect(object["missing"] == nil)
    }

    @Test func aRepeatedKeyKeepsItsLastValue() throws {
        let small = try JSONParser.parse(#"{"a": 1, "b": 2, "a": 3}"#)
        #expect(small == .object(["a": .number(3), "b": .number(2)]))
        #expect(small.objectValue?.count == 2)

        // Above the linear limit, repeats are found through a hash table.
        var text = "{"
        for index in 0..<5_000 { text += "\"k\(index)\": \(index), " }
        text += "\"k7\": \"last\"}"
        let large = try #require(try JSONParser.parse(text).objectValue)
        #expect(large.count == 5_000)
        #expect(large["k7"] == .string("last"))
        #expect(large["k4999"] == .number(4_999))
    }

    @Test func orderDoesNotMatterForEqualityOrHashing() throws {
        let one = try JSONParser.parse(#"{"value": 12.5, "unit": "kilometers"}"#)
        let other = try JSONParser.parse(#"{"unit": "kilometers", "value": 12.5}"#)
        #expect(one == other)
        #expect(one.hashValue == other.hashValue)
        #expect(one != (try JSONParser.parse(#"{"unit": "miles", "value": 12.5}"#)))
        #expect(one != (try JSONParser.parse(#"{"value": 12.5}"#)))
        #expect(one.serialized == other.serialized)
        #expect(one.serialized == #"{"unit":"kilometers","value":12.5}"#)
    }

    @Test func settingAndRemovingMembers() {
        var object: JSONObject = ["a": .number(1)]
        object["b"] = .bool(true)
        object["a"] = .number(2)
        #expect(object.keys == ["a", "b"])
        #expect(object["a"] == .number(2))
        object["a"] = nil
        #expect(object.keys == ["b"])
        #expect(object.filter { $0.key != "b" }.isEmpty)
    }
}
