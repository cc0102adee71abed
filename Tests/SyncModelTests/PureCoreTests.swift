import Foundation
import SyncModel
import Testing

@Suite struct FHIRInstantTests {
    @Test(arguments: [
        ("2026-01-02T03:04:05Z", 1_767_323_045.0),
        ("2026-01-02T03:04:05.250Z", 1_767_323_045.25),
        ("2026-01-02T05:04:05+02:00", 1_767_323_045.0),
        ("1969-12-31T23:59:59Z", -1.0),
    ])
    func parses(text: String, seconds: Double) {
        #expect(FHIRInstant.parse(text) == seconds)
    }

    @Test(arguments: ["2026-01-02", "2026-13-02T03:04:05Z", "2026-01-02T03:04:05", "garbage", "2026-01-02T03:04:05.Z"])
    func rejects(text: String) {
        #expect(FHIRInstant.parse(text) == nil)
    }

    @Test func formatsInUTCWithMilliseconds() {
        #expect(FHIRInstant.format(1_767_323_045.25) == "2026-01-02T03:04:05.250Z")
        #expect(FHIRInstant.parse(FHIRInstant.format(1_767_323_045.123)) == 1_767_323_045.123)
    }
}

@Suite struct UpsertDecisionTests {
    typealias V = UpsertDecision.Version
    let h1: [UInt8] = [1]
    let h2: [UInt8] = [2]

    @Test func decisions() {
        #expect(
            UpsertDecision.decide(stored: nil, incoming: V(versionId: "1", lastUpdated: nil, contentHash: h1))
                == .insert)
        #expect(
            UpsertDecision.decide(
                stored: V(versionId: "1", lastUpdated: nil, contentHash: h1),
                incoming: V(versionId: "1", lastUpdated: nil, contentHash: h1)) == .unchanged)
        #expect(
            UpsertDecision.decide(
                stored: V(versionId: "1", lastUpdated: nil, contentHash: h1),
                incoming: V(versionId: "1", lastUpdated: nil, contentHash: h2)) == .update)
        #expect(
            UpsertDecision.decide(
                stored: V(versionId: "9", lastUpdated: nil, contentHash: h1),
                incoming: V(versionId: "10", lastUpdated: nil, contentHash: h2)) == .update)
        #expect(
            UpsertDecision.decide(
                stored: V(versionId: "10", lastUpdated: nil, contentHash: h1),
                incoming: V(versionId: "9", lastUpdated: nil, contentHash: h2)) == .holdRegression)
        // A tombstone re-sent as live at the same version is an update (undelete).
        #expect(
            UpsertDecision.decide(
                stored: V(versionId: "2", lastUpdated: nil, contentHash: h1, deleted: true),
                incoming: V(versionId: "2", lastUpdated: nil, contentHash: h1)) == .update)
    }

    @Test func withoutVersionIdsLastUpdatedOrders() {
        let old = V(versionId: nil, lastUpdated: "2026-01-01T00:00:00Z", contentHash: h1)
        let new = V(versionId: nil, lastUpdated: "2026-01-01T01:00:00+02:00", contentHash: h2)  // 2025-12-31T23:00Z
        #expect(UpsertDecision.decide(stored: old, incoming: new) == .holdRegression)
        #expect(UpsertDecision.decide(stored: new, incoming: old) == .update)
        #expect(
            UpsertDecision.decide(
                stored: V(versionId: "a", lastUpdated: nil, contentHash: h1),
                incoming: V(versionId: "b", lastUpdated: nil, contentHash: h2)) == .update)
    }
}

@Suite struct ResourceEnvelopeTests {
    @Test func readsBookkeepingAndThePatientCompartment() throws {
        let env = try ResourceEnvelope.parse(
            Data(
                #"{"resourceType":"Observation","id":"o-1.a","meta":{"versionId":"3","lastUpdated":"2026-01-01T00:00:00Z"},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":1}}"#
                    .utf8))
        #expect(
            env
                == ResourceEnvelope(
                    resourceType: "Observation", id: "o-1.a", versionId: "3", lastUpdated: "2026-01-01T00:00:00Z",
                    patientID: "p1"))
        let group = try ResourceEnvelope.parse(
            Data(#"{"resourceType":"Encounter","id":"e","subject":{"reference":"Group/g"}}"#.utf8))
        #expect(group.patientID == nil)
        let patient = try ResourceEnvelope.parse(Data(#"{"resourceType":"Patient","id":"p"}"#.utf8))
        #expect(patient.patientID == "p")
    }

    @Test func refusesBadData() {
        #expect(throws: ResourceError.notJSON) { try ResourceEnvelope.parse(Data("<html>".utf8)) }
        #expect(throws: ResourceError.missingResourceType) { try ResourceEnvelope.parse(Data(#"{"id":"x"}"#.utf8)) }
        #expect(throws: ResourceError.missingID(resourceType: "Patient")) {
            try ResourceEnvelope.parse(Data(#"{"resourceType":"Patient"}"#.utf8))
        }
        #expect(throws: ResourceError.invalidID(resourceType: "Patient")) {
            try ResourceEnvelope.parse(Data(#"{"resourceType":"Patient","id":"a/b"}"#.utf8))
        }
        #expect(throws: ResourceError.tooLarge(bytes: 40, limit: 10)) {
            try ResourceEnvelope.parse(Data(repeating: 0x20, count: 40), sizeLimit: 10)
        }
    }

    @Test(arguments: [
        ("Patient/123", "Patient", "123"),
        ("https://ehr.example/fhir/Patient/123", "Patient", "123"),
        ("Patient/123/_history/4", "Patient", "123"),
    ])
    func parsesReferences(reference: String, type: String, id: String) {
        #expect(FHIRReference(reference) == FHIRReference(type: type, id: id))
    }

    @Test func refusesNonLiteralReferences() {
        #expect(FHIRReference("urn:uuid:abc") == nil)
        #expect(FHIRReference("#contained") == nil)
    }
}
