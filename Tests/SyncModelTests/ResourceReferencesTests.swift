import Foundation
import SyncModel
import Testing

private func parse(_ text: String) throws -> JSONValue {
    try JSONValue(data: Data(text.utf8))
}

private func compact(_ value: JSONValue) -> String {
    String(decoding: value.data(), as: UTF8.self)
}

/// Literal references found and rewritten at any depth of a resource.
@Suite struct ResourceReferencesTests {
    static let observation = """
        {
          "resourceType": "Observation",
          "id": "o1",
          "subject": {"reference": "Patient/local-1"},
          "encounter": {"reference": "Encounter/e9/_history/3"},
          "performer": [
            {"reference": "Practitioner/pr1", "display": "Dr A"},
            {"reference": "https://ehr.example/fhir/Practitioner/pr2"},
            {"reference": "urn:uuid:2b0c5f6e-6a43-4f4c-9bb4-1f7a4b2f2a10"},
            {"reference": "#contained-1"},
            {"reference": "Patient/local-1"}
          ],
          "hasMember": [{"reference": "Observation/o2"}],
          "component": [
            {"extension": [{"url": "x", "valueReference": {"reference": "Device/d1"}}]}
          ],
          "note": [{"text": "see Patient/p-not-a-reference"}]
        }
        """

    @Test func collectsRelativeReferencesInDocumentOrderWithoutRepeats() throws {
        let references = ResourceReferences.collect(try parse(Self.observation))
        // Members are visited in key order (a JSONValue object is sorted by key), arrays in
        // order; the second Patient/local-1 is not repeated.
        #expect(
            references == ["Device/d1", "Encounter/e9", "Observation/o2", "Practitioner/pr1", "Patient/local-1"])
    }

    @Test func collectOrderFollowsArrays() throws {
        let value = try parse(
            #"{"a":[{"reference":"Patient/z"},{"reference":"Patient/a"},{"reference":"Patient/m"},{"reference":"Patient/a"}]}"#
        )
        #expect(ResourceReferences.collect(value) == ["Patient/z", "Patient/a", "Patient/m"])
    }

    @Test(arguments: [
        ("Patient/p1", "Patient/p1"),
        ("Patient/p1/_history/4", "Patient/p1"),
        ("Observation/a.b-C9", "Observation/a.b-C9"),
    ])
    func keysOfRelativeReferences(reference: String, key: String) {
        #expect(ResourceReferences.key(reference) == key)
    }

    @Test(arguments: [
        "https://ehr.example/fhir/Patient/p1",
        "urn:uuid:2b0c5f6e-6a43-4f4c-9bb4-1f7a4b2f2a10",
        "urn:oid:1.2.3",
        "#contained-1",
        "#",
        "Patient",
        "Patient/",
        "/Patient/p1",
        "patient/p1",
        "Patient/p 1",
        "Patient/p1/_history",
        "Patient/p1/extra/4",
        "Patient/p1?x=y",
        "Patient/\(String(repeating: "a", count: 65))",
        "",
    ])
    func ignoresWhatIsNotARelativeReference(reference: String) throws {
        #expect(ResourceReferences.key(reference) == nil)
        let value = JSONValue.object(["subject": .object(["reference": .string(reference)])])
        #expect(ResourceReferences.collect(value).isEmpty)
        #expect(ResourceReferences.rewrite(value, ["Patient/p1": "s1"]) == value)
    }

    @Test func referencesThatAreNotStringsAreIgnored() throws {
        let value = try parse(#"{"a":{"reference":42},"b":{"reference":null},"c":{"reference":["Patient/p1"]}}"#)
        #expect(ResourceReferences.collect(value) == [])
    }

    @Test func rewritesOnlyMappedKeysAndKeepsHistorySuffixes() throws {
        let map = ["Patient/local-1": "srv-100", "Encounter/e9": "srv-e9", "Observation/o1": "srv-o1"]
        let rewritten = ResourceReferences.rewrite(try parse(Self.observation), map)
        #expect(rewritten["subject"]?["reference"] == "Patient/srv-100")
        #expect(rewritten["encounter"]?["reference"] == "Encounter/srv-e9/_history/3")
        let performers = try #require(rewritten["performer"]?.arrayValue)
        #expect(
            performers.map { $0["reference"]?.stringValue ?? "" } == [
                "Practitioner/pr1", "https://ehr.example/fhir/Practitioner/pr2",
                "urn:uuid:2b0c5f6e-6a43-4f4c-9bb4-1f7a4b2f2a10", "#contained-1", "Patient/srv-100",
            ])
        #expect(performers[0]["display"] == "Dr A")
        #expect(rewritten["hasMember"]?.arrayValue?.first?["reference"] == "Observation/o2")
        #expect(
            rewritten["component"]?.arrayValue?.first?["extension"]?.arrayValue?.first?["valueReference"]?[
                "reference"] == "Device/d1")
        // The resource's own id and free text are not references.
        #expect(rewritten["id"] == "o1")
        #expect(rewritten["note"]?.arrayValue?.first?["text"] == "see Patient/p-not-a-reference")
        // Nothing else moved.
        let back = ResourceReferences.rewrite(
            rewritten, ["Patient/srv-100": "local-1", "Encounter/srv-e9": "e9"])
        #expect(compact(back) == compact(try parse(Self.observation)))
    }

    @Test func anEmptyMapChangesNothing() throws {
        let value = try parse(Self.observation)
        #expect(ResourceReferences.rewrite(value, [:]) == value)
    }

    @Test func theTypeMustMatchForARewrite() throws {
        let value = try parse(#"{"a":{"reference":"Group/x1"},"b":{"reference":"Patient/x1"}}"#)
        let rewritten = ResourceReferences.rewrite(value, ["Patient/x1": "s1"])
        #expect(compact(rewritten) == #"{"a":{"reference":"Group/x1"},"b":{"reference":"Patient/s1"}}"#)
    }
}
