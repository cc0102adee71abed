import Foundation
import SyncModel
import Testing

private func object(_ text: String) throws -> JSONObject {
    try #require(try JSONValue(data: Data(text.utf8)).objectValue)
}

private func compact(_ object: JSONObject) -> String {
    String(decoding: JSONValue.object(object).data(), as: UTF8.self)
}

/// Small pure edits of resources on their way into and out of the outbox.
@Suite struct ResourceEditsTests {
    /// A name that must never show up in an error message.
    static let secret = "Zyxwquist"

    struct BadBody: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var message: String
        var testDescription: String { name }
    }

    @Test(arguments: [
        BadBody(
            name: "truncated JSON", body: #"{"resourceType":"Patient","name":[{"family":"Zyxwquist""#,
            message: "the body is not valid JSON"),
        BadBody(name: "not JSON at all", body: "Zyxwquist, born 1970", message: "the body is not valid JSON"),
        BadBody(name: "empty", body: "", message: "the body is not valid JSON"),
        BadBody(
            name: "duplicate keys", body: #"{"resourceType":"Patient","id":"Zyxwquist","id":"x"}"#,
            message: "the body is not valid JSON"),
        BadBody(name: "an array", body: #"[{"family":"Zyxwquist"}]"#, message: "the body is not a JSON object"),
        BadBody(name: "a string", body: #""Zyxwquist""#, message: "the body is not a JSON object"),
        BadBody(
            name: "no resourceType", body: #"{"name":[{"family":"Zyxwquist"}]}"#, message: "resourceType is missing"),
        BadBody(
            name: "resourceType not a string", body: #"{"resourceType":["Patient"],"note":"Zyxwquist"}"#,
            message: "resourceType is missing"),
        BadBody(
            name: "another type", body: #"{"resourceType":"Observation","note":"Zyxwquist"}"#,
            message: "resourceType Observation does not match the URL's Patient"),
    ])
    func parseRefusesWithoutEchoingContent(bad: BadBody) {
        let error = #expect(throws: OutboxError.self) {
            try ResourceEdits.parse(Data(bad.body.utf8), resourceType: "Patient")
        }
        guard case .invalid(let message)? = error else {
            Issue.record("expected .invalid, got \(String(describing: error))")
            return
        }
        #expect(message.hasPrefix(bad.message))
        #expect(!message.contains(Self.secret))
        #expect(error?.description == message)
    }

    @Test func parseKeepsTheWholeObject() throws {
        let body = #"{"resourceType":"Patient","id":"p1","active":true,"name":[{"family":"Martin"}]}"#
        let parsed = try ResourceEdits.parse(Data(body.utf8), resourceType: "Patient")
        #expect(compact(parsed) == #"{"active":true,"id":"p1","name":[{"family":"Martin"}],"resourceType":"Patient"}"#)
    }

    @Test func withoutServerMetaDropsVersionTimeAndOnlyThePendingTag() throws {
        let resource = try object(
            """
            {"resourceType":"Patient","id":"p1","meta":{
              "versionId":"7","lastUpdated":"2026-01-01T00:00:00Z","source":"#lab","profile":["http://x/p"],
              "security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],
              "tag":[
                {"system":"https://ehr-sync.org/fhir/CodeSystem/sync-state","code":"pending"},
                {"system":"http://example.org/tags","code":"pending"},
                {"system":"https://ehr-sync.org/fhir/CodeSystem/sync-state","code":"conflict"}
              ]}}
            """)
        let cleaned = ResourceEdits.withoutServerMeta(resource)
        #expect(
            compact(cleaned)
                == ##"{"id":"p1","meta":{"profile":["http://x/p"],"security":[{"code":"R","system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}],"source":"#lab","tag":[{"code":"pending","system":"http://example.org/tags"}]},"resourceType":"Patient"}"##
        )
        #expect(PendingTag.system == "https://ehr-sync.org/fhir/CodeSystem/sync-state")
    }

    @Test(arguments: [
        #"{"resourceType":"Patient","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"}}"#,
        #"{"resourceType":"Patient","meta":{"tag":[{"system":"https://ehr-sync.org/fhir/CodeSystem/sync-state","code":"pending"}]}}"#,
        #"{"resourceType":"Patient","meta":{}}"#,
        #"{"resourceType":"Patient"}"#,
    ])
    func metaLeftEmptyIsRemoved(text: String) throws {
        #expect(compact(ResourceEdits.withoutServerMeta(try object(text))) == #"{"resourceType":"Patient"}"#)
    }

    @Test func withoutMetaDropsAllOfIt() throws {
        let resource = try object(#"{"resourceType":"Patient","id":"p1","meta":{"profile":["http://x/p"]}}"#)
        #expect(compact(ResourceEdits.withoutMeta(resource)) == #"{"id":"p1","resourceType":"Patient"}"#)
    }

    @Test func theClientIdentifierIsAddedOnce() throws {
        let resource = try object(
            #"{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"170022A"},{"system":"urn:ietf:rfc:3986","value":"urn:uuid:other"}]}"#
        )
        let value = "urn:uuid:5f0c8a3e-2b1d-4c55-9e0f-7a1b2c3d4e5f"
        let once = ResourceEdits.withClientIdentifier(resource, resourceType: "Patient", value: value)
        let twice = ResourceEdits.withClientIdentifier(once, resourceType: "Patient", value: value)
        #expect(twice == once)
        let identifiers = try #require(once["identifier"]?.arrayValue)
        #expect(identifiers.count == 3)
        #expect(identifiers[0]["value"] == "170022A")
        #expect(identifiers[2] == ["system": "urn:ietf:rfc:3986", "value": .string(value)])
        #expect(once["meta"] == nil)
    }

    @Test func aResourceWithoutIdentifierGetsAList() throws {
        let resource = try object(#"{"resourceType":"Observation","status":"final"}"#)
        let tagged = ResourceEdits.withClientIdentifier(resource, resourceType: "Observation", value: "urn:uuid:1")
        #expect(
            compact(tagged)
                == #"{"identifier":[{"system":"urn:ietf:rfc:3986","value":"urn:uuid:1"}],"resourceType":"Observation","status":"final"}"#
        )
    }

    @Test(arguments: ["Provenance", "Binary", "Bundle", "AuditEvent", "Parameters"])
    func typesWithoutIdentifierGetATagInstead(type: String) throws {
        let resource = try object(
            #"{"resourceType":"\#(type)","meta":{"tag":[{"system":"http://example.org/tags","code":"x"}]}}"#)
        #expect(ResourceEdits.typesWithoutIdentifier.contains(type))
        let once = ResourceEdits.withClientIdentifier(resource, resourceType: type, value: "urn:uuid:42")
        let twice = ResourceEdits.withClientIdentifier(once, resourceType: type, value: "urn:uuid:42")
        #expect(twice == once)
        #expect(once["identifier"] == nil)
        #expect(
            once["meta"]?["tag"]
                == [
                    ["system": "http://example.org/tags", "code": "x"],
                    ["system": "urn:ietf:rfc:3986", "code": "urn:uuid:42"],
                ])
    }

    @Test func clientIdentifierQueries() {
        let value = "urn:uuid:5f0c8a3e-2b1d-4c55-9e0f-7a1b2c3d4e5f"
        #expect(
            ResourceEdits.clientIdentifierQuery(resourceType: "Patient", value: value, forURL: false)
                == "identifier=urn:ietf:rfc:3986|urn:uuid:5f0c8a3e-2b1d-4c55-9e0f-7a1b2c3d4e5f")
        #expect(
            ResourceEdits.clientIdentifierQuery(resourceType: "Patient", value: value, forURL: true)
                == "identifier=urn:ietf:rfc:3986%7Curn:uuid:5f0c8a3e-2b1d-4c55-9e0f-7a1b2c3d4e5f")
        #expect(
            ResourceEdits.clientIdentifierQuery(resourceType: "Provenance", value: value, forURL: false)
                == "_tag=urn:ietf:rfc:3986|urn:uuid:5f0c8a3e-2b1d-4c55-9e0f-7a1b2c3d4e5f")
        #expect(
            ResourceEdits.clientIdentifierQuery(resourceType: "Provenance", value: value, forURL: true)
                == "_tag=urn:ietf:rfc:3986%7Curn:uuid:5f0c8a3e-2b1d-4c55-9e0f-7a1b2c3d4e5f")
    }

    @Test func urlQueriesEscapeWhatAURLCannotCarry() {
        let query = ResourceEdits.clientIdentifierQuery(resourceType: "Patient", value: "a&b c#d+e", forURL: true)
        #expect(query == "identifier=urn:ietf:rfc:3986%7Ca%26b%20c%23d%2Be")
    }
}
