import Foundation
import SyncModel
import Testing

/// Discovery's pure parts: what to ask about, what answers mean, how coverage reads.
@Suite struct TypeDiscoveryTests {
    @Test func undeclaredTypesAreAskedAboutAndExclusionsAreShown() {
        let (ask, excluded) = TypeProbe.candidates(
            declared: ["Patient", "Observation", "Questionnaire", "AuditEvent"], configured: nil,
            excluded: TypeProbe.defaultExcluded)
        // Declared or not, every Patient-compartment and reference type is asked about.
        for type in ["CareTeam", "Composition", "FamilyMemberHistory", "ClinicalImpression", "Appointment", "Slot"] {
            #expect(ask.contains(type), "\(type)")
        }
        // Declared types outside a practice's records are not mirrored; exclusions are listed.
        #expect(!ask.contains("Questionnaire"))
        #expect(excluded == ["AuditEvent", "Group"])
        // Mirror order: what records point at, then Patient, then the rest.
        #expect(ask.prefix(5).allSatisfy { ServerCapabilities.referenceTypes.contains($0) })
        #expect(ask.firstIndex(of: "Patient")! < ask.firstIndex(of: "Observation")!)
    }

    @Test func configuredTypesPinTheSet() {
        let (ask, excluded) = TypeProbe.candidates(
            declared: ["Patient", "Observation", "Condition"], configured: ["Observation", "Patient"],
            excluded: TypeProbe.defaultExcluded)
        #expect(ask == ["Patient", "Observation"])
        #expect(excluded.contains("Condition"))
        #expect(excluded.contains("CareTeam"))
    }

    @Test(arguments: [
        (200, #"{"resourceType":"Bundle","type":"searchset","entry":[]}"#, "served"),
        (200, #"{"resourceType":"OperationOutcome"}"#, "transient"),
        (
            400,
            #"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"required","diagnostics":"patient required"}]}"#,
            "refused"
        ),
        (403, "", "refused"),
        (422, "", "refused"),
        (404, "", "absent"),
        (405, "", "absent"),
        (501, "", "absent"),
        (500, "", "transient"),
        (429, "", "transient"),
        (401, "", "transient"),
    ])
    func answersAreRead(status: Int, body: String, expected: String) {
        let verdict = TypeProbe.verdict(status: status, body: Data(body.utf8))
        let kind =
            switch verdict {
            case .served: "served"
            case .refused: "refused"
            case .absent: "absent"
            case .transient: "transient"
            }
        #expect(kind == expected)
        if status == 400, case .refused(let reason) = verdict { #expect(reason.contains("patient required")) }
    }

    @Test func refusalReasonsNeverCarryThePatientsId() {
        let body = Data(
            #"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"Patient/pat-8f3a not found; subject pat-8f3a"}]}"#
                .utf8)
        for url in [
            "Patient/pat-8f3a/$everything?_count=1", "Observation?patient=pat-8f3a&_count=1",
            "Schedule?actor=Patient%2Fpat-8f3a",
        ] {
            let reason = TypeProbe.reason(body, url: url)
            #expect(!reason.contains("pat-8f3a"), "\(url): \(reason)")
            #expect(reason.contains("not found"))
        }
        if case .absent(let text) = TypeProbe.verdict(status: 404, body: body, url: "Observation?patient=pat-8f3a") {
            #expect(!text.contains("pat-8f3a"))
        } else {
            Issue.record("a 404 is an absence")
        }
    }

    @Test func patientScopedQueriesUseTheCompartmentParameter() {
        #expect(TypeProbe.patientQuery("Observation", patientID: "p1") == "Observation?patient=p1")
        #expect(TypeProbe.patientQuery("Schedule", patientID: "p1") == "Schedule?actor=Patient/p1")
        #expect(TypeProbe.patientQuery("Practitioner", patientID: "p1") == nil)
        #expect(TypeProbe.patientQuery("Patient", patientID: "p1") == nil)
        #expect(TypeProbe.patientQuery("Condition", patientID: "a b&c") == "Condition?patient=a%20b%26c")
        #expect(TypeProbe.everythingQuery(patientID: "p1", extra: "?_count=5") == "Patient/p1/$everything?_count=5")
    }

    @Test func coverageSaysWhatIsMissingAndWhy() throws {
        var coverage = TypeCoverage(entries: [
            .init(type: "Observation", access: .search, declared: true),
            .init(type: "Patient", access: .search, declared: true),
            .init(type: "CareTeam", access: .search, declared: false),
            .init(type: "Practitioner", access: .search, declared: true),
            .init(type: "AuditEvent", access: .excluded, declared: true),
            .init(type: "Basic", access: .absent, declared: true, reason: "HTTP 404"),
        ])
        #expect(coverage.mirrored == ["Practitioner", "Patient", "CareTeam", "Observation"])
        #expect(coverage.undeclared == ["CareTeam"])
        #expect(coverage.absentDeclared == ["Basic"])
        #expect(!coverage.isPartial)

        coverage.mark("Observation", .perPatient, reason: "HTTP 400: patient required")
        #expect(coverage.perPatient == ["Observation"])
        #expect(coverage["Observation"]?.declared == true)
        #expect(!coverage.isPartial)

        coverage.mark("Device", .refused, reason: "HTTP 403: forbidden")
        #expect(coverage.isPartial)
        #expect(coverage.summary.contains("REFUSED by the EHR: Device (HTTP 403: forbidden)"))
        #expect(!coverage.mirrored.contains("Device"))

        coverage.markWithoutLastUpdated("Observation", reason: "HTTP 400: _lastUpdated")
        #expect(coverage["Observation"]?.withoutLastUpdated == true)
        #expect(coverage["Observation"]?.access == .perPatient)

        // Kept as JSON in the replica: the same value comes back.
        let decoded = try JSONDecoder().decode(TypeCoverage.self, from: JSONEncoder().encode(coverage))
        #expect(decoded == coverage)

        // Status: partial is critical, and says so in words.
        var report = StatusReport(
            state: "online", resources: 10, initialSyncComplete: true, lastSyncAt: nil, keySource: "k")
        #expect(report.exitCode == 0)
        report.types = TypesStatus(coverage)
        #expect(report.exitCode == 2)
        #expect(report.text(now: 0).contains("PARTIAL MIRROR — the EHR refuses to list: Device (HTTP 403: forbidden)"))

        // A long list of undeclared types stays one readable line; --json has them all.
        let many = ["A1", "A2", "A3", "A4", "A5", "A6", "A7"].map {
            TypeCoverage.Entry(type: $0, access: .search, declared: false)
        }
        report.types = TypesStatus(TypeCoverage(entries: many))
        #expect(
            report.text(now: 0).contains(
                "Types         7 mirrored; 7 found although the EHR does not declare them (A1, A2, A3, A4, A5 and 2 more (status --json))"
            ))
        #expect(report.types?.undeclared.count == 7)
    }
}

/// Per-patient servers: who is asked each cycle, and from when.
@Suite struct PatientRoundTests {
    let patients = ["a", "b", "c", "d"]

    @Test func theFirstCycleIsARoundFromTheCursor() {
        let plan = PatientRound.plan(
            patients: patients, matter: ["c"], cursor: "2026-12-07T10:00:00Z", last: nil, now: 1000, interval: 900)
        #expect(plan.isRound)
        #expect(plan.patients == ["c", "a", "b", "d"])
        #expect(plan.since == "2026-12-07T10:00:00Z")
    }

    @Test func betweenRoundsOnlyThePatientsThatMatterAreAskedFromTheLastRound() {
        let last = PatientRound.State(since: "2026-12-07T09:50:00Z", at: 1000)
        let plan = PatientRound.plan(
            patients: patients, matter: ["d", "b", "stranger"], cursor: "2026-12-07T10:00:00Z", last: last,
            now: 1300, interval: 900)
        #expect(!plan.isRound)
        #expect(plan.patients == ["b", "d"])
        // From the last round's start: a patient that starts to matter now misses nothing.
        #expect(plan.since == "2026-12-07T09:50:00Z")
    }

    @Test func aRoundComesBackAfterItsIntervalOrAClockGoingBack() {
        let last = PatientRound.State(since: "2026-12-07T09:50:00Z", at: 1000)
        for now in [1900.0, 5000, 999] {
            let plan = PatientRound.plan(
                patients: patients, matter: [], cursor: "c", last: last, now: now, interval: 900)
            #expect(plan.isRound, "now \(now)")
            #expect(plan.patients == patients)
        }
        let always = PatientRound.plan(patients: patients, matter: [], cursor: "c", last: last, now: 1001, interval: 0)
        #expect(always.isRound)
    }

    @Test func appointmentsTodayAndTomorrowNameTheirPatients() {
        func appointment(_ start: String, status: String = "booked") -> Data {
            Data(
                #"{"resourceType":"Appointment","status":"\#(status)","start":"\#(start)","participant":[{"actor":{"reference":"Patient/p1"}},{"actor":{"reference":"Practitioner/d1"}}]}"#
                    .utf8)
        }
        let days: Set<String> = ["2026-12-07", "2026-12-08"]
        #expect(
            PatientRound.scheduledPatients(appointment: appointment("2026-12-07T09:30:00+01:00"), days: days) == ["p1"])
        #expect(PatientRound.scheduledPatients(appointment: appointment("2026-12-08T17:00:00Z"), days: days) == ["p1"])
        #expect(PatientRound.scheduledPatients(appointment: appointment("2026-12-09T09:00:00Z"), days: days).isEmpty)
        #expect(
            PatientRound.scheduledPatients(
                appointment: appointment("2026-12-07T09:00:00Z", status: "cancelled"), days: days
            )
            .isEmpty)
    }

    @Test func recentPatientsAreKeptAnHour() {
        var recent = RecentPatients(keep: 3600)
        recent.record("p1", at: 0)
        recent.record("p2", at: 3000)
        #expect(recent.patients(now: 3500) == ["p1", "p2"])
        #expect(recent.patients(now: 3700) == ["p2"])
    }

    /// One patient gone (404) or restricted (403) never turns `$everything` off for all;
    /// a run of refusals from the first patient does.
    @Test func everythingIsConcludedUnsupportedOnlyFromARunOfRefusalsAtTheStart() {
        #expect(!TypeProbe.everythingUnsupported(refusedFromStart: 1, patients: 20))
        #expect(TypeProbe.everythingUnsupported(refusedFromStart: 2, patients: 20))
        #expect(TypeProbe.everythingUnsupported(refusedFromStart: 1, patients: 1))
        #expect(!TypeProbe.everythingUnsupported(refusedFromStart: 0, patients: 0))
        // In a pass: an answer ends the run; a resumed pass has had its answer.
        var pass = EverythingRefusals(patients: 20)
        let first = pass.refuse()
        let second = pass.refuse()
        #expect(!first && second)
        var late = EverythingRefusals(patients: 20)
        late.answer()
        let afterAnswer = [late.refuse(), late.refuse()]
        #expect(afterAnswer == [false, false])
        var resumed = EverythingRefusals(patients: 20, resumed: true)
        let afterResume = [resumed.refuse(), resumed.refuse()]
        #expect(afterResume == [false, false])
    }
}
