import Foundation
import Testing

@testable import SyncEngine
@testable import SyncModel

/// What a server's status means for a replayed change.
@Suite struct ReplayResponseTests {
    @Test(arguments: [
        (200, ReplayResponse.written), (201, .written), (204, .written),
        (409, .versionChanged), (412, .versionChanged),
        (404, .gone), (410, .gone),
        (400, .rejected), (405, .rejected), (413, .rejected), (422, .rejected),
        (401, .stop), (403, .stop), (407, .stop), (408, .stop), (429, .stop),
        (500, .stop), (502, .stop), (503, .stop), (504, .stop),
    ])
    func classifies(status: Int, expected: ReplayResponse) {
        #expect(ReplayResponse.classify(status) == expected)
    }

    @Test func onlyClientErrorsOtherThanAuthAndThrottlingPark() {
        for status in 100..<600 where ReplayResponse.classify(status) == .rejected {
            #expect((400..<500).contains(status), "\(status)")
            #expect(![401, 403, 404, 407, 408, 409, 410, 412, 429].contains(status), "\(status)")
        }
    }
}

/// The Provenance written next to a replayed change.
@Suite struct ProvenanceRecordTests {
    @Test func shape() throws {
        let record = ProvenanceRecord.make(
            target: "Patient/s1/_history/2", activity: "CREATE", author: "dr-martin",
            localTime: "2026-03-04T05:06:07.000Z", device: "ehr-sync practice-12")
        #expect(record["resourceType"] == "Provenance")
        #expect(record["target"] == [["reference": "Patient/s1/_history/2"]])
        #expect(record["recorded"] == "2026-03-04T05:06:07.000Z")
        #expect(record["occurredDateTime"] == "2026-03-04T05:06:07.000Z")
        #expect(
            record["activity"]?["coding"]
                == [["system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE"]])
        #expect(record["reason"]?.arrayValue?.first?["text"] == "entered during EHR outage")
        let agents = record["agent"]?.arrayValue ?? []
        #expect(agents.count == 2)
        let participation = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
        #expect(agents.first?["type"]?["coding"] == [["system": .string(participation), "code": "author"]])
        #expect(agents.first?["who"]?["display"] == "dr-martin")
        #expect(agents.last?["type"]?["coding"] == [["system": .string(participation), "code": "assembler"]])
        #expect(agents.last?["who"]?["display"] == "ehr-sync practice-12")
        // A resource the parser accepts back.
        #expect(try JSONValue(data: record.data()) == record)
    }

    @Test(arguments: ["CREATE", "UPDATE", "DELETE"])
    func carriesTheActivity(activity: String) {
        let record = ProvenanceRecord.make(
            target: "Condition/c1", activity: activity, author: "a", localTime: "2026-01-01T00:00:00Z", device: "d")
        #expect(record["activity"]?["coding"]?.arrayValue?.first?["code"] == .string(activity))
        #expect(record["target"]?.arrayValue?.first?["reference"] == "Condition/c1")
    }
}

/// The header parsing of the Reconciler.
@Suite struct ReconcilerPureTests {
    @Test(
        arguments: [
            (#"W/"3""#, "3"),
            (#""3""#, "3"),
            ("3", "3"),
            (#"W/"abc-1""#, "abc-1"),
            (#"W/"""#, nil),
            (#""""#, nil),
            ("", nil),
            ("W/", nil),
        ] as [(String, String?)])
    func parsesETags(etag: String, version: String?) {
        #expect(Reconciler.parseETag(etag) == version)
    }

    @Test(
        arguments: [
            ("https://ehr.example/fhir/Patient/123/_history/4", "123", "4"),
            ("Patient/123/_history/4", "123", "4"),
            ("/fhir/Observation/o-9/_history/1?_format=json", "o-9", "1"),
            ("https://ehr.example/fhir/Patient/123", "123", nil),
            ("Patient/123", "123", nil),
            ("https://ehr.example/fhir/Patient/123?_format=json", "123", nil),
        ] as [(String, String, String?)])
    func parsesLocations(location: String, id: String, version: String?) throws {
        let parsed = try #require(Reconciler.parseLocation(location))
        #expect(parsed.id == id)
        #expect(parsed.version == version)
    }

    @Test(arguments: [
        "", "123", "/", "https://ehr.example/fhir/patient/123", "https://ehr.example/", "_history/4",
        "Patient/123/_history",
    ])
    func refusesLocationsWithoutTypeAndID(location: String) {
        #expect(Reconciler.parseLocation(location) == nil)
    }

    @Test func settingsFallBackToTheDefaultPolicy() {
        var settings = Reconciler.Settings()
        #expect(settings.policy(for: "Observation") == .merge)
        settings.defaultPolicy = .remoteWins
        settings.policies = ["AllergyIntolerance": .manual]
        #expect(settings.policy(for: "Observation") == .remoteWins)
        #expect(settings.policy(for: "AllergyIntolerance") == .manual)
    }
}

/// One line of an OperationOutcome for operators.
@Suite struct OperationOutcomeTextTests {
    static func data(_ text: String) -> Data { Data(text.utf8) }

    @Test func joinsIssuesWithSeverityCodeDiagnosticsAndExpressions() {
        let outcome = Self.data(
            """
            {"resourceType":"OperationOutcome","issue":[
              {"severity":"error","code":"invalid","diagnostics":"birthDate is in the future",
               "expression":["Patient.birthDate"]},
              {"severity":"error","code":"required","details":{"text":"name is required"},
               "expression":["Patient.name","Patient.name[0].family"]},
              {"severity":"warning","code":"informational","diagnostics":"preferred","details":{"text":"ignored"}},
              {"severity":"information","code":"informational"},
              {"diagnostics":"bare text"}
            ]}
            """)
        #expect(
            OperationOutcomeText.summary(outcome)
                == "error invalid: birthDate is in the future (Patient.birthDate); "
                + "error required: name is required (Patient.name, Patient.name[0].family); "
                + "warning informational: preferred; information informational; bare text")
    }

    @Test(arguments: [
        ("", "no details"),
        (#"{"resourceType":"Patient","name":[{"family":"Zyxwquist"}]}"#, "no OperationOutcome"),
        ("<html>Zyxwquist</html>", "no OperationOutcome"),
        (#"{"resourceType":"OperationOutcome"}"#, "no OperationOutcome"),
        (#"[{"resourceType":"OperationOutcome"}]"#, "no OperationOutcome"),
    ])
    func describesWhatIsNotAnOperationOutcomeWithoutEchoingIt(body: String, summary: String) {
        #expect(OperationOutcomeText.summary(Self.data(body)) == summary)
    }

    @Test func truncatesToTheLimit() {
        let long = String(repeating: "x", count: 1000)
        let outcome = Self.data(
            #"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"\#(long)"}]}"#
        )
        let summary = OperationOutcomeText.summary(outcome)
        #expect(summary.count == 400)
        #expect(summary.hasPrefix("error invalid: xxx"))
        #expect(summary.hasSuffix("x…"))
        let short = OperationOutcomeText.summary(outcome, limit: 20)
        #expect(short == "error invalid: xxxx…")
        // At the limit exactly: not cut.
        let fits = Self.data(
            #"{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception"}]}"#)
        #expect(OperationOutcomeText.summary(fits, limit: 15) == "fatal exception")
    }
}
