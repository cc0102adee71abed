import Foundation
import SyncModel
import Testing

// MARK: - Helpers

private func json(_ text: String) -> JSONValue {
    do {
        return try JSONValue(data: Data(text.utf8))
    } catch {
        Issue.record("test fixture is not JSON: \(error)")
        return .null
    }
}

private func text(_ value: JSONValue?) -> String? {
    value.map { String(decoding: $0.data(), as: UTF8.self) }
}

/// The merged document as compact sorted JSON, or the conflict paths.
private enum Expected: Equatable, CustomStringConvertible {
    case merged(String)
    case conflicts([String])

    init(_ outcome: MergeOutcome) {
        switch outcome {
        case .merged(let value): self = .merged(text(value) ?? "")
        case .conflicts(let conflicts): self = .conflicts(conflicts.map(\.path))
        }
    }

    var description: String {
        switch self {
        case .merged(let text): return "merged \(text)"
        case .conflicts(let paths): return "conflicts \(paths)"
        }
    }
}

/// One merge case: base, local and remote as JSON text, and what must come out.
struct MergeCase: Sendable, CustomTestStringConvertible {
    var name: String
    var base: String
    var local: String
    var remote: String
    /// Compact, key-sorted merged JSON; or nil when `conflicts` is expected.
    var merged: String?
    var conflicts: [String] = []

    init(_ name: String, base: String, local: String, remote: String, merged: String) {
        self.name = name
        self.base = base
        self.local = local
        self.remote = remote
        self.merged = merged
    }

    init(_ name: String, base: String, local: String, remote: String, conflicts: [String]) {
        self.name = name
        self.base = base
        self.local = local
        self.remote = remote
        self.merged = nil
        self.conflicts = conflicts
    }

    var testDescription: String { name }

    fileprivate var expected: Expected {
        if let merged { return .merged(text(json(merged)) ?? "") }
        return .conflicts(conflicts)
    }

    fileprivate func run() -> Expected {
        Expected(ThreeWayMerge.merge(base: json(base), local: json(local), remote: json(remote)))
    }
}

// MARK: - JSONValue

@Suite struct ThreeWayMergeJSONValueTests {
    @Test(arguments: [
        (#"{"b":1,"a":[1.50,-0,1e5,2E-3,-12.340e+07]}"#, #"{"a":[1.50,-0,1e5,2E-3,-12.340e+07],"b":1}"#),
        (" \n\t{ \"z\" : { \"y\" : [ ] , \"x\" : { } } }\r\n", #"{"z":{"x":{},"y":[]}}"#),
        (#""a\"b\\c\/d\n\t\r\b\f\u00e9\ud83d\ude00""#, "\"a\\\"b\\\\c/d\\n\\t\\r\\b\\f\u{E9}\u{1F600}\""),
        (#""\u0001\u001f\u007f""#, "\"\\u0001\\u001f\u{7F}\""),
        ("true", "true"), ("false", "false"), ("null", "null"), (#""x""#, #""x""#), ("0", "0"), ("-0.0", "-0.0"),
        ("\u{FEFF}[1]", "[1]"),
        (#"{"é":1,"e":2,"Z":3,"_a":4,"a":5}"#, #"{"Z":3,"_a":4,"a":5,"e":2,"é":1}"#),
        (#"[{"b":null,"a":true},[],[[]]]"#, #"[{"a":true,"b":null},[],[[]]]"#),
    ])
    func parsesAndWritesCompactSortedJSON(input: String, output: String) throws {
        let value = try JSONValue(data: Data(input.utf8))
        #expect(text(value) == output)
        #expect(try JSONValue(data: value.data()) == value)
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", #"{"a":1,}"#, "01", "1.", ".5", "-", "1e", "1e+", "+1", "0x10", "NaN", "Infinity",
        #"{"a":1 "b":2}"#, #"{a:1}"#, "[1] x", "nul", "tru", #""abc"#, #""\x""#, #""\u12G4""#, "\"a\u{01}b\"",
        #"{"a"}"#, "[1 2]", "'a'",
    ])
    func rejectsMalformedJSON(input: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(data: Data(input.utf8)) }
    }

    @Test func rejectsDuplicateKeysLoneSurrogatesBadUTF8AndDeepNesting() {
        #expect(throws: JSONValue.ParseError.duplicateKey(offset: 0)) {
            try JSONValue(data: Data(#"{"a":1,"b":2,"a":3}"#.utf8))
        }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(data: Data(#""\ud800""#.utf8)) }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(data: Data(#""\udc00\ud800""#.utf8)) }
        #expect(throws: JSONValue.ParseError.invalidUTF8(offset: 0)) { try JSONValue(data: Data([0x22, 0xFF, 0x22])) }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(data: Data([0x22, 0xC3, 0x28, 0x22])) }
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONValue.ParseError.tooDeep(offset: 512)) { try JSONValue(data: Data(deep.utf8)) }
        let fine = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try JSONValue(data: Data(fine.utf8)) }
    }

    @Test func parseErrorsCarryNoContent() {
        do {
            _ = try JSONValue(data: Data(#"{"family":"Dupont","family":"Durand"}"#.utf8))
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("Dupont"))
            #expect(!"\(error)".contains("family"))
        }
    }

    @Test(arguments: [("1.50", "1.5"), ("1e2", "100"), ("0.0", "0"), ("-0", "0"), ("1E2", "1e2")])
    func numbersKeepTheirText(a: String, b: String) throws {
        let x = try JSONValue(data: Data("[\(a)]".utf8))
        let y = try JSONValue(data: Data("[\(b)]".utf8))
        #expect(x != y)
        #expect(text(x) == "[\(a)]")
        #expect(x == .array([.number(a)]))
    }

    @Test func stringsAndKeysCompareByBytes() {
        let composed = JSONValue.string("\u{E9}")
        let decomposed = JSONValue.string("e\u{301}")
        #expect(composed != decomposed)
        #expect(Set([composed, decomposed]).count == 2)
        let object: JSONValue = ["\u{E9}": 1, "e\u{301}": 2]
        #expect(object.objectValue?.count == 2)
        #expect(object["\u{E9}"] == 1)
        #expect(object["e\u{301}"] == 2)
    }

    @Test func objectsStaySortedWhenEdited() {
        var object: JSONObject = ["m": 1, "b": 2]
        object["a"] = "x"
        object["z"] = .null
        object["m"] = nil
        object["b"] = [true]
        #expect(object.keys == ["a", "b", "z"])
        #expect(text(.object(object)) == #"{"a":"x","b":[true],"z":null}"#)
        #expect(JSONObject([("k", 1), ("k", 2)]) == ["k": 2])
    }

    @Test func literalsAndAccessors() {
        let value: JSONValue = ["a": [1, 2.5, "s", true, .null], "b": ["c": "d"]]
        #expect(text(value) == #"{"a":[1,2.5,"s",true,null],"b":{"c":"d"}}"#)
        #expect(value["b"]?["c"]?.stringValue == "d")
        #expect(value["a"]?.arrayValue?.count == 5)
        #expect(value["missing"] == nil)
        #expect(JSONValue.string("x")["a"] == nil)
    }

    @Test func codableEncodesPlainJSON() throws {
        let value = json(#"{"b":[1,-2,3.25,"x",null,false],"a":{"c":"\u00e9\n"}}"#)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let encoded = try encoder.encode(value)
        #expect(try JSONValue(data: encoded) == value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: value.data()) == value)
        // Through Codable numbers pass as Decimal: the value survives, trailing zeros do not
        // (use data() and init(data:) to keep the exact text).
        let decimal = try JSONDecoder().decode(JSONValue.self, from: Data("[1.50]".utf8))
        #expect(decimal == [.number("1.5")])
    }

    @Test func mergeConflictsAreCodable() throws {
        let conflict = MergeConflict(path: "name[use=official].family", base: "A", local: nil, remote: ["x": 1])
        let data = try JSONEncoder().encode(conflict)
        #expect(try JSONDecoder().decode(MergeConflict.self, from: data) == conflict)
        #expect(!String(decoding: data, as: UTF8.self).contains("\"local\""))
    }
}

// MARK: - Merge rules

@Suite struct ThreeWayMergeTests {
    static let objectCases: [MergeCase] = [
        MergeCase(
            "local change only", base: #"{"a":1,"b":2}"#, local: #"{"a":1,"b":3}"#, remote: #"{"a":1,"b":2}"#,
            merged: #"{"a":1,"b":3}"#),
        MergeCase(
            "changes to different fields", base: #"{"a":1,"b":2}"#, local: #"{"a":9,"b":2}"#,
            remote: #"{"a":1,"b":8}"#, merged: #"{"a":9,"b":8}"#),
        MergeCase(
            "same change on both sides", base: #"{"a":1,"b":2,"c":3}"#, local: #"{"a":5,"b":2,"c":4}"#,
            remote: #"{"a":5,"b":7,"c":3}"#, merged: #"{"a":5,"b":7,"c":4}"#),
        MergeCase(
            "different changes to one field", base: #"{"a":1,"b":2}"#, local: #"{"a":5,"b":2}"#,
            remote: #"{"a":6,"b":3}"#, conflicts: ["a"]),
        MergeCase(
            "added on one side", base: #"{"a":1}"#, local: #"{"a":1,"l":"x"}"#, remote: #"{"a":2,"r":"y"}"#,
            merged: #"{"a":2,"l":"x","r":"y"}"#),
        MergeCase(
            "added identically on both", base: #"{"a":1}"#, local: #"{"a":1,"n":[1]}"#,
            remote: #"{"a":2,"n":[1]}"#, merged: #"{"a":2,"n":[1]}"#),
        MergeCase(
            "added differently on both", base: #"{"a":1}"#, local: #"{"a":1,"n":"x"}"#,
            remote: #"{"a":2,"n":"y"}"#, conflicts: ["n"]),
        MergeCase(
            "removed locally, unchanged remotely", base: #"{"a":1,"b":2}"#, local: #"{"a":1}"#,
            remote: #"{"a":3,"b":2}"#, merged: #"{"a":3}"#),
        MergeCase(
            "removed remotely, unchanged locally", base: #"{"a":1,"b":2}"#, local: #"{"a":3,"b":2}"#,
            remote: #"{"a":1}"#, merged: #"{"a":3}"#),
        MergeCase(
            "removed on both", base: #"{"a":1,"b":2}"#, local: #"{"a":3}"#, remote: #"{"a":1}"#,
            merged: #"{"a":3}"#),
        MergeCase(
            "removed locally, changed remotely", base: #"{"a":1,"b":2}"#, local: #"{"a":3}"#,
            remote: #"{"a":1,"b":4}"#, conflicts: ["b"]),
        MergeCase(
            "changed locally, removed remotely", base: #"{"a":1,"b":2}"#, local: #"{"a":3,"b":5}"#,
            remote: #"{"a":1}"#, conflicts: ["b"]),
        MergeCase(
            "nested objects merge field by field", base: #"{"x":{"y":{"c":1,"d":2},"e":0}}"#,
            local: #"{"x":{"y":{"c":9,"d":2},"e":0}}"#, remote: #"{"x":{"y":{"c":1,"d":8},"e":0,"f":1}}"#,
            merged: #"{"x":{"e":0,"f":1,"y":{"c":9,"d":8}}}"#),
        MergeCase(
            "nested conflict path", base: #"{"x":{"y":{"c":1,"d":2}}}"#, local: #"{"x":{"y":{"c":9,"d":3}}}"#,
            remote: #"{"x":{"y":{"c":8,"d":3}}}"#, conflicts: ["x.y.c"]),
        MergeCase(
            "nested object removed locally, changed remotely", base: #"{"x":{"c":1},"z":0}"#, local: #"{"z":1}"#,
            remote: #"{"x":{"c":2},"z":0}"#, conflicts: ["x"]),
        MergeCase(
            "objects added on both merge as from {}", base: #"{"a":1}"#,
            local: #"{"a":2,"period":{"start":"2020"}}"#, remote: #"{"a":1,"period":{"end":"2021"}}"#,
            merged: #"{"a":2,"period":{"end":"2021","start":"2020"}}"#),
        MergeCase(
            "type changed differently", base: #"{"a":"s","b":0}"#, local: #"{"a":{"x":1},"b":0}"#,
            remote: #"{"a":{"x":2},"b":1}"#, conflicts: ["a"]),
        MergeCase(
            "all conflicts reported in key order", base: #"{"a":1,"b":{"c":1},"d":1}"#,
            local: #"{"a":2,"b":{"c":2},"d":2}"#, remote: #"{"a":3,"b":{"c":3},"d":3}"#,
            conflicts: ["a", "b.c", "d"]),
        MergeCase(
            "number text is a change", base: #"{"v":1.5,"w":1}"#, local: #"{"v":1.50,"w":1}"#,
            remote: #"{"v":1.5,"w":2}"#, merged: #"{"v":1.50,"w":2}"#),
        MergeCase(
            "number text differing on both sides", base: #"{"v":1.5,"w":1}"#, local: #"{"v":1.50,"w":1}"#,
            remote: #"{"v":1.500,"w":2}"#, conflicts: ["v"]),
    ]

    @Test(arguments: objectCases)
    func objects(_ c: MergeCase) {
        #expect(c.run() == c.expected)
    }

    static let keyedArrayCases: [MergeCase] = [
        // identifier by system|value
        MergeCase(
            "identifier: added on both sides", base: #"{"identifier":[{"system":"s","value":"1"}]}"#,
            local: #"{"identifier":[{"system":"s","value":"1"},{"system":"l","value":"2"}]}"#,
            remote: #"{"identifier":[{"system":"r","value":"3"},{"system":"s","value":"1"}]}"#,
            merged:
                #"{"identifier":[{"system":"r","value":"3"},{"system":"s","value":"1"},{"system":"l","value":"2"}]}"#),
        MergeCase(
            "identifier: element fields merge", base: #"{"identifier":[{"system":"s","value":"1"}]}"#,
            local: #"{"identifier":[{"system":"s","value":"1","use":"official"}]}"#,
            remote: #"{"identifier":[{"system":"s","value":"1","period":{"start":"2020"}}]}"#,
            merged: #"{"identifier":[{"period":{"start":"2020"},"system":"s","use":"official","value":"1"}]}"#),
        MergeCase(
            "identifier: removed locally, unchanged remotely",
            base: #"{"identifier":[{"system":"s","value":"1"},{"system":"s","value":"2"}]}"#,
            local: #"{"identifier":[{"system":"s","value":"2"}]}"#,
            remote:
                #"{"identifier":[{"system":"s","value":"1"},{"system":"s","value":"2"},{"system":"t","value":"3"}]}"#,
            merged: #"{"identifier":[{"system":"s","value":"2"},{"system":"t","value":"3"}]}"#),
        MergeCase(
            "identifier: removed locally, changed remotely",
            base: #"{"identifier":[{"system":"s","value":"1"},{"system":"s","value":"2"}]}"#,
            local: #"{"identifier":[{"system":"s","value":"2"}]}"#,
            remote: #"{"identifier":[{"system":"s","value":"1","use":"old"},{"system":"s","value":"2"}]}"#,
            conflicts: ["identifier[s|1]"]),
        MergeCase(
            "identifier: same element changed differently",
            base: #"{"identifier":[{"system":"s","value":"1","use":"usual"}]}"#,
            local: #"{"identifier":[{"system":"s","value":"1","use":"official"}]}"#,
            remote: #"{"identifier":[{"system":"s","value":"1","use":"old"}]}"#,
            conflicts: ["identifier[s|1].use"]),
        MergeCase(
            "identifier: one value replaced by two different values",
            base: #"{"identifier":[{"system":"mrn","value":"1"}]}"#,
            local: #"{"identifier":[{"system":"mrn","value":"2"}]}"#,
            remote: #"{"identifier":[{"system":"mrn","value":"3"}]}"#, conflicts: ["identifier"]),
        // telecom by system|value
        MergeCase(
            "telecom: local adds, remote changes another",
            base: #"{"telecom":[{"system":"phone","value":"555-1234","use":"home"}]}"#,
            local:
                #"{"telecom":[{"system":"phone","value":"555-1234","use":"home"},{"system":"email","value":"a@b.c"}]}"#,
            remote: #"{"telecom":[{"system":"phone","value":"555-1234","use":"work"}]}"#,
            merged:
                #"{"telecom":[{"system":"phone","use":"work","value":"555-1234"},{"system":"email","value":"a@b.c"}]}"#
        ),
        MergeCase(
            "telecom: conflict path names the element",
            base: #"{"telecom":[{"system":"phone","value":"555-1234","rank":1}]}"#,
            local: #"{"telecom":[{"system":"phone","value":"555-1234","rank":2}]}"#,
            remote: #"{"telecom":[{"system":"phone","value":"555-1234","rank":3}]}"#,
            conflicts: ["telecom[phone|555-1234].rank"]),
        MergeCase(
            "telecom: the same number changed to two numbers",
            base: #"{"telecom":[{"system":"phone","value":"1"},{"system":"email","value":"e"}]}"#,
            local: #"{"telecom":[{"system":"phone","value":"2"},{"system":"email","value":"e"}]}"#,
            remote: #"{"telecom":[{"system":"phone","value":"3"},{"system":"email","value":"e"}]}"#,
            conflicts: ["telecom"]),
        MergeCase(
            "telecom: the same number changed identically",
            base: #"{"a":0,"telecom":[{"system":"phone","value":"1"}]}"#,
            local: #"{"a":1,"telecom":[{"system":"phone","value":"2"}]}"#,
            remote: #"{"a":0,"telecom":[{"system":"phone","value":"2"}]}"#,
            merged: #"{"a":1,"telecom":[{"system":"phone","value":"2"}]}"#),
        MergeCase(
            "telecom: a second number added on each side",
            base: #"{"telecom":[{"system":"phone","value":"1"}]}"#,
            local: #"{"telecom":[{"system":"phone","value":"1"},{"system":"phone","value":"2"}]}"#,
            remote: #"{"telecom":[{"system":"phone","value":"1"},{"system":"phone","value":"3"}]}"#,
            merged:
                #"{"telecom":[{"system":"phone","value":"1"},{"system":"phone","value":"3"},{"system":"phone","value":"2"}]}"#
        ),
        // name by use
        MergeCase(
            "name: family changed remotely, given locally",
            base: #"{"name":[{"use":"official","family":"A","given":["B"]},{"use":"nickname","given":["C"]}]}"#,
            local: #"{"name":[{"use":"official","family":"A","given":["B","D"]},{"use":"nickname","given":["C"]}]}"#,
            remote: #"{"name":[{"use":"official","family":"Z","given":["B"]},{"use":"nickname","given":["C"]}]}"#,
            merged:
                #"{"name":[{"family":"Z","given":["B","D"],"use":"official"},{"given":["C"],"use":"nickname"}]}"#),
        MergeCase(
            "name: family changed on both sides",
            base: #"{"name":[{"use":"official","family":"A"}]}"#,
            local: #"{"name":[{"use":"official","family":"B"}]}"#,
            remote: #"{"name":[{"use":"official","family":"C"}]}"#, conflicts: ["name[use=official].family"]),
        MergeCase(
            "name: a name without use makes the array atomic",
            base: #"{"name":[{"family":"A"}]}"#, local: #"{"name":[{"family":"A"},{"use":"old","family":"B"}]}"#,
            remote: #"{"name":[{"family":"C"}]}"#, conflicts: ["name"]),
        MergeCase(
            "name: two official names make the array atomic",
            base: #"{"name":[{"use":"official","family":"A"},{"use":"official","family":"B"}]}"#,
            local: #"{"name":[{"use":"official","family":"X"},{"use":"official","family":"B"}]}"#,
            remote: #"{"name":[{"use":"official","family":"A"},{"use":"official","family":"Y"}]}"#,
            conflicts: ["name"]),
        MergeCase(
            "name: atomic array changed on one side only",
            base: #"{"a":0,"name":[{"family":"A"}]}"#, local: #"{"a":0,"name":[{"family":"B"}]}"#,
            remote: #"{"a":1,"name":[{"family":"A"}]}"#, merged: #"{"a":1,"name":[{"family":"B"}]}"#),
        // extension and modifierExtension by url, at any depth
        MergeCase(
            "extension: merged by url",
            base: #"{"extension":[{"url":"u1","valueString":"a"},{"url":"u2","valueString":"b"}]}"#,
            local: #"{"extension":[{"url":"u1","valueString":"x"},{"url":"u2","valueString":"b"}]}"#,
            remote: #"{"extension":[{"url":"u2","valueString":"y"},{"url":"u1","valueString":"a"}]}"#,
            merged: #"{"extension":[{"url":"u2","valueString":"y"},{"url":"u1","valueString":"x"}]}"#),
        MergeCase(
            "extension: nested extension conflict path",
            base: #"{"extension":[{"url":"race","extension":[{"url":"text","valueString":"a"}]}]}"#,
            local: #"{"extension":[{"url":"race","extension":[{"url":"text","valueString":"b"}]}]}"#,
            remote: #"{"extension":[{"url":"race","extension":[{"url":"text","valueString":"c"}]}]}"#,
            conflicts: ["extension[race].extension[text].valueString"]),
        MergeCase(
            "extension: on a nested element",
            base: #"{"address":{"city":"P","extension":[{"url":"geo","valueString":"1"}]}}"#,
            local:
                #"{"address":{"city":"P","extension":[{"url":"geo","valueString":"1"},{"url":"n","valueString":"l"}]}}"#,
            remote: #"{"address":{"city":"Q","extension":[{"url":"geo","valueString":"2"}]}}"#,
            merged:
                #"{"address":{"city":"Q","extension":[{"url":"geo","valueString":"2"},{"url":"n","valueString":"l"}]}}"#
        ),
        MergeCase(
            "modifierExtension: merged by url",
            base: #"{"modifierExtension":[{"url":"m","valueBoolean":true}]}"#,
            local: #"{"modifierExtension":[{"url":"m","valueBoolean":true},{"url":"l","valueBoolean":false}]}"#,
            remote: #"{"modifierExtension":[]}"#,
            merged: #"{"modifierExtension":[{"url":"l","valueBoolean":false}]}"#),
        MergeCase(
            "extension: without url the array is atomic",
            base: #"{"extension":[{"valueString":"a"}]}"#, local: #"{"extension":[{"valueString":"b"}]}"#,
            remote: #"{"extension":[{"valueString":"c"}]}"#, conflicts: ["extension"]),
        // coding by system|code, at any depth
        MergeCase(
            "coding: translations added on both sides",
            base: #"{"code":{"coding":[{"system":"loinc","code":"1"}]}}"#,
            local: #"{"code":{"coding":[{"system":"loinc","code":"1"},{"system":"snomed","code":"2"}]}}"#,
            remote: #"{"code":{"coding":[{"system":"loinc","code":"1"},{"system":"icd","code":"3"}]}}"#,
            merged:
                #"{"code":{"coding":[{"code":"1","system":"loinc"},{"code":"3","system":"icd"},{"code":"2","system":"snomed"}]}}"#
        ),
        MergeCase(
            "coding: display changed differently",
            base: #"{"maritalStatus":{"coding":[{"system":"v3","code":"M","display":"Married"}]}}"#,
            local: #"{"maritalStatus":{"coding":[{"system":"v3","code":"M","display":"married"}]}}"#,
            remote: #"{"maritalStatus":{"coding":[{"system":"v3","code":"M","display":"MARRIED"}]}}"#,
            conflicts: ["maritalStatus.coding[v3|M].display"]),
        MergeCase(
            "coding: the code changed on both sides",
            base: #"{"maritalStatus":{"coding":[{"system":"v3","code":"M"}]}}"#,
            local: #"{"maritalStatus":{"coding":[{"system":"v3","code":"S"}]}}"#,
            remote: #"{"maritalStatus":{"coding":[{"system":"v3","code":"D"}]}}"#,
            conflicts: ["maritalStatus.coding"]),
        MergeCase(
            "coding: two same-system codes added independently",
            base: #"{"code":{"coding":[{"system":"snomed","code":"1"}]}}"#,
            local: #"{"code":{"coding":[{"system":"snomed","code":"1"},{"system":"snomed","code":"2"}]}}"#,
            remote: #"{"code":{"coding":[{"system":"snomed","code":"1"},{"system":"snomed","code":"3"}]}}"#,
            conflicts: ["code.coding"]),
        MergeCase(
            "coding: the code changed locally, text remotely",
            base: #"{"code":{"coding":[{"system":"v3","code":"M"}],"text":"a"}}"#,
            local: #"{"code":{"coding":[{"system":"v3","code":"S"}],"text":"a"}}"#,
            remote: #"{"code":{"coding":[{"system":"v3","code":"M"}],"text":"b"}}"#,
            merged: #"{"code":{"coding":[{"code":"S","system":"v3"}],"text":"b"}}"#),
        MergeCase(
            "coding: without system the array is atomic",
            base: #"{"code":{"coding":[{"code":"1"}]}}"#, local: #"{"code":{"coding":[{"code":"1"},{"code":"2"}]}}"#,
            remote: #"{"code":{"coding":[{"code":"1"},{"code":"3"}]}}"#, conflicts: ["code.coding"]),
        MergeCase(
            "keyed arrays added on both sides merge as from []", base: #"{"a":1}"#,
            local: #"{"a":1,"telecom":[{"system":"phone","value":"1"}]}"#,
            remote: #"{"a":2,"telecom":[{"system":"email","value":"e"}]}"#,
            merged: #"{"a":2,"telecom":[{"system":"email","value":"e"},{"system":"phone","value":"1"}]}"#),
        MergeCase(
            "order: remote order, then new local elements in local order",
            base: #"{"identifier":[{"system":"s","value":"1"},{"system":"s","value":"2"}]}"#,
            local:
                #"{"identifier":[{"system":"n","value":"b"},{"system":"s","value":"1"},{"system":"n","value":"a"},{"system":"s","value":"2"}]}"#,
            remote: #"{"identifier":[{"system":"s","value":"2"},{"system":"s","value":"1"}]}"#,
            merged:
                #"{"identifier":[{"system":"s","value":"2"},{"system":"s","value":"1"},{"system":"n","value":"b"},{"system":"n","value":"a"}]}"#
        ),
    ]

    @Test(arguments: keyedArrayCases)
    func arraysWithIdentity(_ c: MergeCase) {
        #expect(c.run() == c.expected)
    }

    static let atomicCases: [MergeCase] = [
        MergeCase(
            "other arrays: changed on one side", base: #"{"address":[{"city":"A"}],"b":0}"#,
            local: #"{"address":[{"city":"B"}],"b":0}"#, remote: #"{"address":[{"city":"A"}],"b":1}"#,
            merged: #"{"address":[{"city":"B"}],"b":1}"#),
        MergeCase(
            "other arrays: changed on both sides", base: #"{"address":[{"city":"A"},{"city":"C"}]}"#,
            local: #"{"address":[{"city":"B"},{"city":"C"}]}"#, remote: #"{"address":[{"city":"A"},{"city":"D"}]}"#,
            conflicts: ["address"]),
        MergeCase(
            "other arrays: same change on both sides", base: #"{"given":["A"],"b":0}"#,
            local: #"{"given":["A","B"],"b":0}"#, remote: #"{"given":["A","B"],"b":1}"#,
            merged: #"{"b":1,"given":["A","B"]}"#),
        MergeCase(
            "a keyed name used for a non-array is a plain field", base: #"{"name":"A","x":0}"#,
            local: #"{"name":"B","x":0}"#, remote: #"{"name":"A","x":1}"#, merged: #"{"name":"B","x":1}"#),
        MergeCase(
            "identity arrays of non-objects are atomic", base: #"{"coding":["a"]}"#, local: #"{"coding":["a","b"]}"#,
            remote: #"{"coding":["a","c"]}"#, conflicts: ["coding"]),
        MergeCase(
            "primitive and extension arrays change together",
            base: #"{"given":["A","B"],"_given":[null,{"extension":[{"url":"u","valueCode":"x"}]}]}"#,
            local: #"{"given":["A","C"],"_given":[null,{"extension":[{"url":"u","valueCode":"x"}]}]}"#,
            remote: #"{"given":["A","B"],"_given":[{"extension":[{"url":"u","valueCode":"y"}]},null]}"#,
            conflicts: ["given", "_given"]),
        MergeCase(
            "primitive array changed with its extension on one side",
            base: #"{"a":0,"given":["A"],"_given":[null]}"#,
            local: #"{"a":0,"given":["A","B"],"_given":[null,{"id":"1"}]}"#,
            remote: #"{"a":1,"given":["A"],"_given":[null]}"#,
            merged: #"{"_given":[null,{"id":"1"}],"a":1,"given":["A","B"]}"#),
        MergeCase(
            "primitive changed on both sides identically, extension on one",
            base: #"{"given":["A"],"_given":[null]}"#, local: #"{"given":["B"],"_given":[null]}"#,
            remote: #"{"given":["B"],"_given":[{"id":"1"}]}"#, merged: #"{"_given":[{"id":"1"}],"given":["B"]}"#),
        MergeCase(
            "scalar primitive and its extension merge independently",
            base: #"{"birthDate":"1970","_birthDate":{"extension":[{"url":"t","valueString":"a"}]}}"#,
            local: #"{"birthDate":"1971","_birthDate":{"extension":[{"url":"t","valueString":"a"}]}}"#,
            remote: #"{"birthDate":"1970","_birthDate":{"extension":[{"url":"t","valueString":"b"}]}}"#,
            merged: #"{"_birthDate":{"extension":[{"url":"t","valueString":"b"}]},"birthDate":"1971"}"#),
    ]

    @Test(arguments: atomicCases)
    func atomicArrays(_ c: MergeCase) {
        #expect(c.run() == c.expected)
    }

    static let resourceCases: [MergeCase] = [
        MergeCase(
            "meta is the remote's",
            base: #"{"resourceType":"Patient","id":"p","meta":{"versionId":"1"},"gender":"male","active":true}"#,
            local:
                #"{"resourceType":"Patient","id":"p","meta":{"versionId":"1","tag":[{"code":"pending"}]},"gender":"female","active":true}"#,
            remote: #"{"resourceType":"Patient","id":"p","meta":{"versionId":"2"},"gender":"male","active":false}"#,
            merged: #"{"resourceType":"Patient","id":"p","meta":{"versionId":"2"},"gender":"female","active":false}"#),
        MergeCase(
            "meta absent on the remote",
            base: #"{"resourceType":"Patient","meta":{"versionId":"1"},"a":1,"b":1}"#,
            local: #"{"resourceType":"Patient","meta":{"versionId":"1"},"a":2,"b":1}"#,
            remote: #"{"resourceType":"Patient","a":1,"b":2}"#, merged: #"{"resourceType":"Patient","a":2,"b":2}"#),
        MergeCase(
            "text (narrative) is atomic",
            base: #"{"resourceType":"Patient","text":{"status":"generated","div":"<div>a</div>"}}"#,
            local: #"{"resourceType":"Patient","text":{"status":"generated","div":"<div>b</div>"}}"#,
            remote: #"{"resourceType":"Patient","text":{"status":"additional","div":"<div>a</div>"}}"#,
            conflicts: ["text"]),
        MergeCase(
            "text changed on one side", base: #"{"text":{"status":"generated","div":"a"},"x":0}"#,
            local: #"{"text":{"status":"generated","div":"b"},"x":0}"#,
            remote: #"{"text":{"status":"generated","div":"a"},"x":1}"#,
            merged: #"{"text":{"div":"b","status":"generated"},"x":1}"#),
        MergeCase(
            "id differing", base: #"{"resourceType":"Patient","id":"p","a":0}"#,
            local: #"{"resourceType":"Patient","id":"p","a":1}"#, remote: #"{"resourceType":"Patient","id":"q","a":0}"#,
            conflicts: ["id"]),
        MergeCase(
            "resourceType differing", base: #"{"resourceType":"Patient","id":"p","a":0}"#,
            local: #"{"resourceType":"Person","id":"p","a":1}"#, remote: #"{"resourceType":"Patient","id":"p","a":2}"#,
            conflicts: ["a", "resourceType"]),
        MergeCase(
            "contained resources: meta is the remote's",
            base: #"{"x":{"resourceType":"Medication","meta":{"v":"1"},"a":0,"b":0}}"#,
            local: #"{"x":{"resourceType":"Medication","meta":{"v":"L"},"a":1,"b":0}}"#,
            remote: #"{"x":{"resourceType":"Medication","meta":{"v":"2"},"a":0,"b":1}}"#,
            merged: #"{"x":{"resourceType":"Medication","meta":{"v":"2"},"a":1,"b":1}}"#),
        MergeCase(
            "element ids follow the ordinary rules", base: #"{"x":{"id":"e1","v":0}}"#,
            local: #"{"x":{"id":"e2","v":0}}"#, remote: #"{"x":{"id":"e1","v":1}}"#,
            merged: #"{"x":{"id":"e2","v":1}}"#),
        MergeCase(
            "deleted locally, unchanged remotely", base: #"{"resourceType":"Patient","id":"p"}"#, local: "null",
            remote: #"{"resourceType":"Patient","id":"p"}"#, merged: "null"),
        MergeCase(
            "edited locally, deleted remotely", base: #"{"resourceType":"Patient","id":"p","a":0}"#,
            local: #"{"resourceType":"Patient","id":"p","a":1}"#, remote: "null", conflicts: [""]),
        MergeCase(
            "deleted locally, edited remotely", base: #"{"resourceType":"Patient","id":"p","a":0}"#, local: "null",
            remote: #"{"resourceType":"Patient","id":"p","a":2}"#, conflicts: [""]),
        MergeCase(
            "created on both sides without a base", base: "null", local: #"{"resourceType":"Patient","a":1}"#,
            remote: #"{"resourceType":"Patient","b":2}"#, merged: #"{"resourceType":"Patient","a":1,"b":2}"#),
        MergeCase("non-objects at the root", base: "[1]", local: "[2]", remote: "[3]", conflicts: [""]),
    ]

    @Test(arguments: resourceCases)
    func resources(_ c: MergeCase) {
        #expect(c.run() == c.expected)
    }

    static var allCases: [MergeCase] { objectCases + keyedArrayCases + atomicCases + resourceCases }

    @Test(arguments: allCases)
    func identities(_ c: MergeCase) {
        let (b, l, r) = (json(c.base), json(c.local), json(c.remote))
        #expect(ThreeWayMerge.merge(base: b, local: l, remote: l) == .merged(l))
        #expect(ThreeWayMerge.merge(base: b, local: r, remote: r) == .merged(r))
        #expect(ThreeWayMerge.merge(base: b, local: b, remote: r) == .merged(r))
        #expect(ThreeWayMerge.merge(base: b, local: l, remote: b) == .merged(l))
    }

    @Test(arguments: allCases)
    func deterministicWhateverTheKeyOrderOfTheInputs(_ c: MergeCase) throws {
        let reference = ThreeWayMerge.merge(base: json(c.base), local: json(c.local), remote: json(c.remote))
        var generator = SplitMix64(seed: UInt64(truncatingIfNeeded: c.name.utf8.count))
        for _ in 0..<5 {
            let shuffled = [c.base, c.local, c.remote].map { shuffledText(json($0), using: &generator) }
            let inputs = try shuffled.map { try JSONValue(data: Data($0.utf8)) }
            let outcome = ThreeWayMerge.merge(base: inputs[0], local: inputs[1], remote: inputs[2])
            #expect(outcome == reference)
            if case .merged(let a) = outcome, case .merged(let b) = reference {
                #expect(a.data() == b.data())
            }
        }
    }

    @Test func conflictsCarryAllThreeValues() {
        let outcome = ThreeWayMerge.merge(
            base: json(#"{"name":[{"use":"official","family":"Martin"}],"birthDate":"1970-01-01","gender":"male"}"#),
            local: json(#"{"name":[{"use":"official","family":"Martins"}],"gender":"female"}"#),
            remote: json(#"{"name":[{"use":"official","family":"Martin-Dupont"}],"birthDate":"1971-01-01"}"#))
        #expect(
            outcome
                == .conflicts([
                    MergeConflict(path: "birthDate", base: "1970-01-01", local: nil, remote: "1971-01-01"),
                    MergeConflict(path: "gender", base: "male", local: "female", remote: nil),
                    MergeConflict(
                        path: "name[use=official].family", base: "Martin", local: "Martins", remote: "Martin-Dupont"),
                ]))
    }

    @Test func arrayConflictsCarryTheWholeArrays() {
        let outcome = ThreeWayMerge.merge(
            base: json(#"{"address":[{"city":"A"}]}"#), local: json(#"{"address":[{"city":"B"}]}"#),
            remote: json(#"{}"#))
        #expect(
            outcome
                == .conflicts([
                    MergeConflict(path: "address", base: [["city": "A"]], local: [["city": "B"]], remote: nil)
                ]))
    }

    @Test func numberTextSurvivesTheMerge() throws {
        let base = json(#"{"valueQuantity":{"value":1.50,"unit":"mmol/L"},"status":"preliminary"}"#)
        let local = json(#"{"valueQuantity":{"value":1.50,"unit":"mmol/L"},"status":"final"}"#)
        let remote = json(#"{"valueQuantity":{"value":2.0e1,"unit":"mmol/L"},"status":"preliminary"}"#)
        let outcome = ThreeWayMerge.merge(base: base, local: local, remote: remote)
        guard case .merged(let merged) = outcome else {
            Issue.record("expected a merge, got \(Expected(outcome))")
            return
        }
        #expect(text(merged) == #"{"status":"final","valueQuantity":{"unit":"mmol/L","value":2.0e1}}"#)
    }
}

// MARK: - Realistic FHIR resources

@Suite struct ThreeWayMergeFHIRTests {
    static let patientBase = #"""
        {"resourceType":"Patient","id":"pat-1","meta":{"versionId":"4","lastUpdated":"2025-11-01T10:00:00Z"},
         "identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"1700101234567"},
                       {"system":"https://ehr.example/mrn","value":"MRN-0042"}],
         "active":true,
         "name":[{"use":"official","family":"Martin","given":["Claire","Anne"]},
                 {"use":"maiden","family":"Durand"}],
         "telecom":[{"system":"phone","value":"+33 1 23 45 67 89","use":"home"}],
         "gender":"female","birthDate":"1970-01-31",
         "address":[{"use":"home","line":["1 rue de la Paix"],"city":"Paris","postalCode":"75002"}],
         "maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M"}]},
         "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                       "valueAddress":{"city":"Lyon"}}]}
        """#

    @Test func patientLocalTelecomAndAddressWithRemoteFamily() throws {
        var local = json(Self.patientBase).objectValue!
        local["telecom"] = json(
            #"[{"system":"phone","value":"+33 1 23 45 67 89","use":"home"},{"system":"phone","value":"+33 6 12 34 56 78","use":"mobile"}]"#
        )
        local["address"] = json(
            #"[{"use":"home","line":["8 avenue Foch"],"city":"Paris","postalCode":"75016"}]"#)
        local["meta"] = json(
            #"{"versionId":"4","lastUpdated":"2025-11-01T10:00:00Z","tag":[{"system":"urn:ehr-sync","code":"pending"}]}"#
        )
        var remote = json(Self.patientBase).objectValue!
        remote["name"] = json(
            #"[{"use":"official","family":"Martin-Leroy","given":["Claire","Anne"]},{"use":"maiden","family":"Durand"}]"#
        )
        remote["meta"] = json(#"{"versionId":"5","lastUpdated":"2025-11-20T08:00:00Z"}"#)

        let outcome = ThreeWayMerge.merge(base: json(Self.patientBase), local: .object(local), remote: .object(remote))
        var expected = json(Self.patientBase).objectValue!
        expected["telecom"] = local["telecom"]
        expected["address"] = local["address"]
        expected["name"] = remote["name"]
        expected["meta"] = remote["meta"]
        #expect(outcome == .merged(.object(expected)))
    }

    @Test func patientBothChangeTheMaritalStatusCoding() {
        var local = json(Self.patientBase).objectValue!
        local["maritalStatus"] = json(
            #"{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"D"}]}"#)
        var remote = json(Self.patientBase).objectValue!
        remote["maritalStatus"] = json(
            #"{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"W"}]}"#)
        remote["active"] = false
        let outcome = ThreeWayMerge.merge(base: json(Self.patientBase), local: .object(local), remote: .object(remote))
        #expect(
            outcome
                == .conflicts([
                    MergeConflict(
                        path: "maritalStatus.coding", base: json(Self.patientBase)["maritalStatus"]?["coding"],
                        local: local["maritalStatus"]?["coding"], remote: remote["maritalStatus"]?["coding"])
                ]))
    }

    static let observationBase = #"""
        {"resourceType":"Observation","id":"obs-7","meta":{"versionId":"1"},"status":"preliminary",
         "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
         "code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose"}],"text":"Glucose"},
         "subject":{"reference":"Patient/pat-1"},"effectiveDateTime":"2025-11-10T09:30:00+01:00",
         "valueQuantity":{"value":5.50,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}}
        """#

    @Test func observationDifferentFieldsMergeAndDecimalsKeepTheirText() {
        let local = json(Self.observationBase.replacingOccurrences(of: #""value":5.50"#, with: #""value":6.10"#))
        let remote = json(
            Self.observationBase
                .replacingOccurrences(of: #""status":"preliminary""#, with: #""status":"final""#)
                .replacingOccurrences(of: #""meta":{"versionId":"1"}"#, with: #""meta":{"versionId":"2"}"#)
                .replacingOccurrences(
                    of: #""display":"Glucose"}"#,
                    with:
                        #""display":"Glucose [Moles/volume] in Blood"},{"system":"http://snomed.info/sct","code":"33747003"}"#
                ))
        let outcome = ThreeWayMerge.merge(base: json(Self.observationBase), local: local, remote: remote)
        let expected = json(
            Self.observationBase
                .replacingOccurrences(of: #""value":5.50"#, with: #""value":6.10"#)
                .replacingOccurrences(of: #""status":"preliminary""#, with: #""status":"final""#)
                .replacingOccurrences(of: #""meta":{"versionId":"1"}"#, with: #""meta":{"versionId":"2"}"#)
                .replacingOccurrences(
                    of: #""display":"Glucose"}"#,
                    with:
                        #""display":"Glucose [Moles/volume] in Blood"},{"system":"http://snomed.info/sct","code":"33747003"}"#
                ))
        #expect(outcome == .merged(expected))
        if case .merged(let merged) = outcome {
            #expect(String(decoding: merged.data(), as: UTF8.self).contains(#""value":6.10"#))
        }
    }

    @Test func observationBothChangeTheSameCodingDisplay() {
        let base = json(Self.observationBase)
        let local = json(
            Self.observationBase.replacingOccurrences(of: #""display":"Glucose""#, with: #""display":"Glc""#))
        let remote = json(
            Self.observationBase.replacingOccurrences(of: #""display":"Glucose""#, with: #""display":"Glucose SerPl""#))
        #expect(
            ThreeWayMerge.merge(base: base, local: local, remote: remote)
                == .conflicts([
                    MergeConflict(
                        path: "code.coding[http://loinc.org|2345-7].display", base: "Glucose", local: "Glc",
                        remote: "Glucose SerPl")
                ]))
    }

    static let allergyBase = #"""
        {"resourceType":"AllergyIntolerance","id":"al-3","meta":{"versionId":"2"},
         "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
         "criticality":"low",
         "code":{"coding":[{"system":"http://snomed.info/sct","code":"91936005","display":"Allergy to penicillin"}]},
         "patient":{"reference":"Patient/pat-1"},
         "reaction":[{"manifestation":[{"coding":[{"system":"http://snomed.info/sct","code":"247472004","display":"Hives"}]}],"severity":"mild"}]}
        """#

    @Test func allergyBothChangeTheSubstanceCode() {
        let base = json(Self.allergyBase)
        let local = json(
            Self.allergyBase
                .replacingOccurrences(
                    of: #""code":"91936005","display":"Allergy to penicillin""#,
                    with: #""code":"294505008","display":"Allergy to amoxicillin""#
                )
                .replacingOccurrences(of: #""criticality":"low""#, with: #""criticality":"high""#))
        let remote = json(
            Self.allergyBase.replacingOccurrences(
                of: #""code":"91936005","display":"Allergy to penicillin""#,
                with: #""code":"294532003","display":"Allergy to ampicillin""#))
        let outcome = ThreeWayMerge.merge(base: base, local: local, remote: remote)
        #expect(
            outcome
                == .conflicts([
                    MergeConflict(
                        path: "code.coding", base: base["code"]?["coding"], local: local["code"]?["coding"],
                        remote: remote["code"]?["coding"])
                ]))
    }

    @Test func allergyReactionAndCriticalityMerge() {
        let base = json(Self.allergyBase)
        let local = json(
            Self.allergyBase.replacingOccurrences(of: #""criticality":"low""#, with: #""criticality":"high""#))
        let remote = json(
            Self.allergyBase.replacingOccurrences(of: #""severity":"mild""#, with: #""severity":"severe""#))
        let expected = json(
            Self.allergyBase
                .replacingOccurrences(of: #""criticality":"low""#, with: #""criticality":"high""#)
                .replacingOccurrences(of: #""severity":"mild""#, with: #""severity":"severe""#))
        #expect(ThreeWayMerge.merge(base: base, local: local, remote: remote) == .merged(expected))
    }
}

// MARK: - Shuffling helpers

/// A small deterministic generator, so shuffles are reproducible.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// JSON text of `value` with every object's keys in a random order (and some whitespace).
private func shuffledText(_ value: JSONValue, using generator: inout SplitMix64) -> String {
    switch value {
    case .array(let elements):
        return "[ " + elements.map { shuffledText($0, using: &generator) }.joined(separator: " , ") + " ]"
    case .object(let object):
        let members = object.members.shuffled(using: &generator)
        let parts = members.map { member in
            (text(.string(member.key)) ?? "") + ": " + shuffledText(member.value, using: &generator)
        }
        return "{ " + parts.joined(separator: ", ") + " }"
    default:
        return text(value) ?? ""
    }
}

// MARK: - Randomised properties

@Suite struct ThreeWayMergePropertyTests {
    /// Values a field may take: scalars, nested objects, arrays with and without identity.
    private static func randomValue(_ field: String, using g: inout SplitMix64) -> JSONValue {
        let n = Int(g.next() % 4)
        switch field {
        case "telecom":
            let values = ["1", "2", "3", "4"].shuffled(using: &g).prefix(1 + n % 3)
            return .array(
                values.map { ["system": "phone", "value": .string($0), "rank": .number(String(g.next() % 3))] })
        case "address":
            return [["city": .string(["Paris", "Lyon", "Nice"][n % 3])]]
        case "code":
            return ["coding": [["system": "s", "code": .string(String(n % 2))]], "text": .string(String(n))]
        case "valueQuantity":
            return ["value": .number(["1.50", "1.5", "2", "2.0"][n]), "unit": .string(["mg", "g"][n % 2])]
        default:
            return .string(String(n))
        }
    }

    private static let fields = ["active", "address", "code", "gender", "telecom", "valueQuantity", "birthDate"]

    private static func randomResource(using g: inout SplitMix64) -> JSONObject {
        var object: JSONObject = ["resourceType": "Observation", "id": "o"]
        for field in fields where g.next() % 4 != 0 { object[field] = randomValue(field, using: &g) }
        return object
    }

    /// Each field kept, changed or removed, and absent fields sometimes added.
    private static func randomEdit(_ base: JSONObject, using g: inout SplitMix64) -> JSONObject {
        var edited = base
        for field in fields {
            switch g.next() % 6 {
            case 0: edited[field] = nil
            case 1, 2: edited[field] = randomValue(field, using: &g)
            default: break
            }
        }
        return edited
    }

    @Test(arguments: 0..<8)
    func oneSidedChangesAreKeptAndConflictsOnlyWhereBothChanged(seed: UInt64) throws {
        var g = SplitMix64(seed: seed)
        var counts = (merged: 0, conflicts: 0)
        for _ in 0..<100 {
            let base = Self.randomResource(using: &g)
            let local = Self.randomEdit(base, using: &g)
            let remote = Self.randomEdit(base, using: &g)
            let outcome = ThreeWayMerge.merge(base: .object(base), local: .object(local), remote: .object(remote))
            let again = ThreeWayMerge.merge(base: .object(base), local: .object(local), remote: .object(remote))
            #expect(outcome == again)
            switch outcome {
            case .merged(let merged):
                counts.merged += 1
                for field in Self.fields {
                    if local[field] == base[field] { #expect(merged[field] == remote[field]) }
                    if remote[field] == base[field] { #expect(merged[field] == local[field]) }
                    if local[field] == remote[field] { #expect(merged[field] == local[field]) }
                }
            case .conflicts(let conflicts):
                counts.conflicts += 1
                #expect(!conflicts.isEmpty)
                for conflict in conflicts {
                    let field = String(conflict.path.prefix { $0 != "." && $0 != "[" })
                    #expect(
                        local[field] != base[field] && remote[field] != base[field] && local[field] != remote[field])
                }
            }
        }
    }
}
