import Foundation
import SyncTestSupport
import Testing

@testable import SyncModel
@testable import SyncServer
@testable import SyncStore

/// The downtime entry form → FHIR resources: validation, and the resources built.
@Suite struct WebDowntimeEntryTests {
    static let now = 1_795_000_000.0  // 2026-11-18T…Z
    static let instant = FHIRInstant.format(now)

    func build(_ values: [DowntimeEntry.Field: String]) -> Result<[DowntimeEntry.Resource], EntryProblems> {
        DowntimeEntry.build(.init(values), patientID: "p1", author: "Dr Léa Martin", now: Self.now)
    }

    func resources(_ values: [DowntimeEntry.Field: String]) throws -> [DowntimeEntry.Resource] {
        try build(values).get()
    }

    func problems(_ values: [DowntimeEntry.Field: String]) -> [DowntimeEntry.Problem] {
        if case .failure(let e) = build(values) { return e.problems }
        return []
    }

    func object(_ resource: DowntimeEntry.Resource) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: resource.json) as? [String: Any])
    }

    /// `code.coding[0].code` and friends.
    func coding(_ value: Any?) -> (system: String?, code: String?) {
        let first = ((value as? [String: Any])?["coding"] as? [[String: Any]])?.first
        return (first?["system"] as? String, first?["code"] as? String)
    }

    @Test func anEmptyFormIsRefused() {
        #expect(problems([:]) == [.nothingEntered])
        #expect(problems([.note: "  \n ", .weight: " "]) == [.nothingEntered])
    }

    @Test func aNoteBecomesAProgressNoteDocumentReference() throws {
        let note = "Patient vu en urgence.\r\nTA correcte. <b>pas de HTML</b>"
        let built = try resources([.note: note])
        #expect(built.count == 1)
        #expect(built[0].kind == .note && built[0].resourceType == "DocumentReference")
        let doc = try object(built[0])
        #expect(doc["resourceType"] as? String == "DocumentReference")
        #expect(doc["status"] as? String == "current")
        #expect(doc["id"] == nil)
        let type = coding(doc["type"])
        #expect(type.system == "http://loinc.org" && type.code == "11506-3")
        #expect(
            ((doc["type"] as? [String: Any])?["coding"] as? [[String: Any]])?.first?["display"] as? String
                == "Progress note")
        #expect((doc["subject"] as? [String: Any])?["reference"] as? String == "Patient/p1")
        #expect(doc["date"] as? String == Self.instant)
        #expect((doc["author"] as? [[String: Any]])?.first?["display"] as? String == "Dr Léa Martin")
        let content = try #require((doc["content"] as? [[String: Any]])?.first)
        let attachment = try #require(content["attachment"] as? [String: Any])
        #expect((attachment["contentType"] as? String)?.hasPrefix("text/plain") == true)
        let base64 = try #require(attachment["data"] as? String)
        let data = try #require(Data(base64Encoded: base64))
        #expect(String(decoding: data, as: UTF8.self) == "Patient vu en urgence.\nTA correcte. <b>pas de HTML</b>")
    }

    @Test func vitalSignsBecomeObservationsWithLOINCCodesAndUCUMUnits() throws {
        let built = try resources([
            .weight: "72,5", .height: "172", .heartRate: "64", .systolic: "128", .diastolic: "82",
            .temperature: "37.0",
        ])
        #expect(built.map(\.kind) == [.weight, .height, .heartRate, .bloodPressure, .temperature])
        #expect(built.allSatisfy { $0.resourceType == "Observation" })
        let expected: [(String, String?, String?)] = [
            ("29463-7", "72.5", "kg"), ("8302-2", "172", "cm"), ("8867-4", "64", "/min"), ("85354-9", nil, nil),
            ("8310-5", "37.0", "Cel"),
        ]
        for (resource, (code, value, unit)) in zip(built, expected) {
            let o = try object(resource)
            #expect(o["status"] as? String == "final")
            #expect(coding(o["code"]).code == code)
            #expect(coding(o["code"]).system == "http://loinc.org")
            let category = coding((o["category"] as? [Any])?.first)
            #expect(category.code == "vital-signs")
            #expect(category.system == "http://terminology.hl7.org/CodeSystem/observation-category")
            #expect((o["subject"] as? [String: Any])?["reference"] as? String == "Patient/p1")
            #expect(o["effectiveDateTime"] as? String == Self.instant)
            let quantity = o["valueQuantity"] as? [String: Any]
            if let value, let unit {
                // Decimals keep the text typed (37.0 stays 37.0), with a point.
                let text = String(decoding: resource.json, as: UTF8.self)
                #expect(text.contains("\"value\":\(value)"), "\(code)")
                #expect(quantity?["code"] as? String == unit)
                #expect(quantity?["system"] as? String == "http://unitsofmeasure.org")
            } else {
                #expect(quantity == nil)
            }
        }
        let panel = try object(built[3])
        let components = try #require(panel["component"] as? [[String: Any]])
        #expect(components.map { coding($0["code"]).code } == ["8480-6", "8462-4"])
        #expect(components.map { ($0["valueQuantity"] as? [String: Any])?["value"] as? Double } == [128, 82])
        #expect(components.allSatisfy { ($0["valueQuantity"] as? [String: Any])?["code"] as? String == "mm[Hg]" })
    }

    @Test func aNoteAndVitalsTogetherGiveOneResourceEach() throws {
        let built = try resources([.note: "RAS", .heartRate: "70"])
        #expect(built.map(\.kind) == [.note, .heartRate])
    }

    @Test func numbersAreCheckedAndEveryProblemIsReported() {
        #expect(problems([.weight: "abc"]) == [.notANumber(.weight)])
        #expect(problems([.weight: "72.5.1"]) == [.notANumber(.weight)])
        #expect(problems([.weight: "-3"]) == [.notANumber(.weight)])
        #expect(problems([.weight: "1e3"]) == [.notANumber(.weight)])
        #expect(problems([.weight: "600"]) == [.outOfRange(.weight, min: "0.2", max: "500")])
        #expect(problems([.temperature: "52"]) == [.outOfRange(.temperature, min: "30", max: "45")])
        #expect(problems([.systolic: "120"]) == [.bloodPressureIncomplete])
        #expect(problems([.diastolic: "80"]) == [.bloodPressureIncomplete])
        #expect(problems([.systolic: "80", .diastolic: "90"]) == [.systolicBelowDiastolic])
        #expect(
            problems([.note: "ok", .weight: "x", .heartRate: "900", .systolic: "120"])
                == [.notANumber(.weight), .outOfRange(.heartRate, min: "20", max: "300"), .bloodPressureIncomplete])
        #expect(
            problems([.note: String(repeating: "a", count: DowntimeEntry.maxNoteLength + 1)])
                == [.noteTooLong(DowntimeEntry.maxNoteLength)])
    }

    @Test func decimalsAreNormalisedToJSONNumbers() {
        #expect(DowntimeEntry.normalizedDecimal("72,5") == "72.5")
        #expect(DowntimeEntry.normalizedDecimal("072") == "72")
        #expect(DowntimeEntry.normalizedDecimal("0,8") == "0.8")
        #expect(DowntimeEntry.normalizedDecimal("000") == "0")
        #expect(DowntimeEntry.normalizedDecimal("37.0") == "37.0")
        #expect(DowntimeEntry.normalizedDecimal(".5") == nil)
        #expect(DowntimeEntry.normalizedDecimal("5.") == nil)
        #expect(DowntimeEntry.normalizedDecimal("12345") == nil)
        #expect(DowntimeEntry.normalizedDecimal("1.2345") == nil)
        #expect(DowntimeEntry.normalizedDecimal("٣") == nil)
        #expect(DowntimeEntry.normalizedDecimal("+5") == nil)
    }

    @Test func builtResourcesAreAcceptedByTheOutbox() throws {
        // The replica's enqueue parses what the form built, as the daemon will.
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: KeyEncryptionKey.generate(), keySource: "test key")
        defer { replica.close() }
        for resource in try resources([.note: "RAS", .systolic: "120", .diastolic: "80"]) {
            let queued = try replica.outbox.enqueue(
                LocalChange(
                    operation: .create, resourceType: resource.resourceType, id: nil, resource: resource.json,
                    author: "dr.martin"))
            #expect(queued.seq > 0)
        }
    }
}
