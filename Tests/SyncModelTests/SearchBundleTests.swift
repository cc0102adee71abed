import Foundation
import Testing

@testable import SyncModel
@testable import SyncStore

/// `searchset` Bundles assembled around stored bytes: valid JSON, `fullUrl` from the base,
/// type and id (escaped when it must be), matches before includes, no empty `entry`.
@Suite struct SearchBundleTests {
    static let patient = Data(#"{"resourceType":"Patient","id":"p1","name":[{"family":"Martin"}]}"#.utf8)
    static let practitioner = Data(#"{"resourceType":"Practitioner","id":"pr-1"}"#.utf8)

    func parse(_ data: Data) throws -> JSONValue { try JSONValue(data: data) }

    @Test func entriesCarryTheStoredResourcesWithTheirFullURL() throws {
        let bundle = SearchBundle.searchset(
            base: "http://127.0.0.1:8090/fhir", links: .init(selfURL: "http://127.0.0.1:8090/fhir/Patient?x=1"),
            total: 1, matches: [SearchBundle.Entry(resourceType: "Patient", id: "p1", json: Self.patient)],
            included: [SearchBundle.Entry(resourceType: "Practitioner", id: "pr-1", json: Self.practitioner)],
            lastUpdated: "2026-11-29T10:00:00Z")
        let value = try parse(bundle)
        #expect(value["resourceType"] == "Bundle")
        #expect(value["type"] == "searchset")
        #expect(value["total"] == 1)
        #expect(value["meta"]?["lastUpdated"] == "2026-11-29T10:00:00Z")
        let entries = try #require(value["entry"]?.arrayValue)
        #expect(entries.count == 2)
        #expect(entries[0]["fullUrl"] == "http://127.0.0.1:8090/fhir/Patient/p1")
        #expect(entries[0]["resource"] == (try parse(Self.patient)))
        #expect(entries[0]["search"]?["mode"] == "match")
        #expect(entries[1]["fullUrl"] == "http://127.0.0.1:8090/fhir/Practitioner/pr-1")
        #expect(entries[1]["search"]?["mode"] == "include")
        // The resource bytes are embedded as they are.
        #expect(bundle.range(of: Self.patient) != nil)
    }

    @Test func aBaseNeedingEscapesStaysValidJSON() throws {
        let base = #"http://h/"odd"\path"#
        let bundle = SearchBundle.searchset(
            base: base, links: .init(selfURL: base), total: nil, matches: [Self.patient], lastUpdated: nil)
        let entries = try #require(try parse(bundle)["entry"]?.arrayValue)
        #expect(entries.first?["fullUrl"]?.stringValue == base + "/Patient/p1")
    }

    @Test func noMatchesMeansNoEntryArray() throws {
        let bundle = SearchBundle.searchset(
            base: "http://h/fhir", links: .init(selfURL: "http://h/fhir/Patient"), total: 0, matches: [] as [Data],
            lastUpdated: nil)
        let value = try parse(bundle)
        #expect(value["entry"] == nil)
        #expect(value["total"] == 0)
    }
}
