import Foundation
import SyncModel
import SyncTestSupport
import Testing

// Real FHIR clients against the real daemon: sekmet-fhir with `small`, mirrored by ehr-syncd with
// `[local_api]`, then Tests/harness/fhir_clients_check.py (fhirpy, fhirclient, and fhir.resources
// validating every answer) run with the venv's python.

/// The patient of `small` with the most MedicationRequests that reference a Medication resource
/// (so that `_include=MedicationRequest:medication` has something to include), with its family
/// name, its Encounters and the Medications its requests reference, read from the data set.
private struct InteropPatient {
    var id: String
    var family: String
    var encounters: Int
    var medications: Set<String>

    static func pick(from set: String) throws -> InteropPatient {
        func objects(_ type: String) throws -> [[String: Any]] {
            try TestData.lines(set, type: type).compactMap {
                try JSONSerialization.jsonObject(with: $0) as? [String: Any]
            }
        }
        func reference(_ object: [String: Any], _ member: String) -> String? {
            (object[member] as? [String: Any])?["reference"] as? String
        }
        var medications: [String: Set<String>] = [:]
        for request in try objects("MedicationRequest") {
            guard let subject = reference(request, "subject"),
                let medication = reference(request, "medicationReference")
            else { continue }
            medications[subject, default: []].insert(medication)
        }
        // The most such requests; among equals the smallest reference, so the pick is stable.
        let ranked = medications.map { (key: $0.key, count: $0.value.count) }.sorted {
            ($1.count, $0.key) < ($0.count, $1.key)
        }
        let best = try #require(ranked.first, "no MedicationRequest with a medicationReference")
        let id = String(best.key.dropFirst("Patient/".count))
        let patients = try objects("Patient").filter { $0["id"] as? String == id }
        let patient = try #require(patients.first, "the patient is not in the data set")
        let names = patient["name"] as? [[String: Any]] ?? []
        let family = try #require(names.compactMap { $0["family"] as? String }.first)
        let encounters = try objects("Encounter").filter { reference($0, "subject") == "Patient/\(id)" }.count
        let meds = Set(medications[best.key, default: []].map { String($0.dropFirst("Medication/".count)) })
        return InteropPatient(id: id, family: family, encounters: encounters, medications: meds)
    }
}

/// Polls an async condition until it holds or `timeout` passes.
private func eventually(timeout: Double = 60, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(200))
    }
    return try await condition()
}

/// A member of a decoded JSON object by path, e.g. `value(summary, "paging", "Patient fhirpy", "total")`.
private func value(_ object: Any?, _ path: String...) -> Any? {
    var current = object
    for key in path { current = (current as? [String: Any])?[key] }
    return current
}

private func int(_ object: Any?, _ path: String...) -> Int? {
    var current = object
    for key in path { current = (current as? [String: Any])?[key] }
    if let number = current as? Int { return number }
    return (current as? NSNumber)?.intValue
}

private func bool(_ object: Any?, _ path: String...) -> Bool? {
    var current = object
    for key in path { current = (current as? [String: Any])?[key] }
    if let flag = current as? Bool { return flag }
    return (current as? NSNumber)?.boolValue
}

/// A FHIR instant as the local API writes it (`2026-01-02T03:04:05.000Z`).
private func isInstant(_ text: String?) -> Bool {
    guard let text else { return false }
    let pattern = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"#
    return text.range(of: pattern, options: .regularExpression) != nil
}

@Suite(.serialized) struct FHIRClientInteropTests {
    @Test func fhirpyAndFhirclientReadTheLocalAPIAndEveryAnswerValidates() async throws {
        let patient = try InteropPatient.pick(from: "small")
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let types = try TestData.loadOrder("small")
        // sekmet's CapabilityStatement omits some types it serves (CareTeam, SupplyDelivery).
        let typeList = "[" + types.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        let fixture = try DaemonFixture(
            baseURL: fhir.baseURL, sync: "resource_types = \(typeList)", localAPIAuthor: "interop-check")
        #expect(try fixture.runOnce() == 0, "daemon log:\n\(fixture.log.suffix(3000))")
        try fixture.start()
        defer { fixture.stop() }
        let access = try #require(fixture.localAPI)
        let api = access.client()
        let up = await eventually { (try? await api.request(.GET, "metadata"))?.status == 200 }
        try #require(up, "the local API did not answer; log:\n\(fixture.log.suffix(2000))")

        // The freshness header and Bundle.meta.lastUpdated, seen by a plain client.
        let search = try await api.request(.GET, "Patient?_count=5")
        #expect(search.status == 200)
        #expect(isInstant(search.headers["x-data-as-of"]), "X-Data-As-Of on a search")
        #expect(isInstant(value(search.json, "meta", "lastUpdated") as? String), "Bundle.meta.lastUpdated of a search")
        let everything = try await api.request(.GET, "Patient/\(patient.id)/$everything")
        #expect(everything.status == 200)
        #expect(isInstant(everything.headers["x-data-as-of"]), "X-Data-As-Of on $everything")
        #expect(isInstant(value(everything.json, "meta", "lastUpdated") as? String), "meta.lastUpdated of $everything")
        let read = try await api.read("Patient", patient.id)
        #expect(read.status == 200)
        #expect(isInstant(read.headers["x-data-as-of"]), "X-Data-As-Of on a read")
        // A version read (vread) returns the record and is attributed like a read.
        let version = try #require(value(read.json, "meta", "versionId") as? String)
        let vread = try await api.request(.GET, "Patient/\(patient.id)/_history/\(version)")
        #expect(vread.status == 200)

        // The real clients.
        let output = fixture.dir.file("fhir-clients-check.json")
        let python = TestData.repositoryRoot + "/.build-venv/bin/python"
        let script = TestData.repositoryRoot + "/Tests/harness/fhir_clients_check.py"
        let (status, log) = try run(
            python,
            [
                script, "--base-url", access.baseURL, "--token-file", access.tokenFile, "--family", patient.family,
                "--expect-patients", "20", "--output", output,
            ])
        let data = try #require(
            FileManager.default.contents(atPath: output),
            "fhir_clients_check.py wrote no summary (exit \(status)); its output:\n\(log.suffix(4000))")
        let summary = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for failure in summary["failures"] as? [[String: Any]] ?? [] {
            let fields = ["check", "client", "type", "id", "error"].compactMap { key in
                failure[key].map { "\(key): \($0)" }
            }
            Issue.record("fhir_clients_check: \(fields.joined(separator: ", "))")
        }
        #expect(status == 0, "fhir_clients_check.py exited with \(status); its output:\n\(log.suffix(4000))")
        #expect(value(summary, "patient_id") as? String == patient.id)
        #expect(bool(summary, "fhirclient_prepare") == true, "fhirclient could not parse the metadata")

        // Searches by family, name, birthdate, identifier: both clients find the patient.
        for label in ["family", "name", "birthdate", "identifier"] {
            #expect((int(summary, "patient_search", label, "fhirpy") ?? 0) >= 1, "fhirpy search by \(label)")
            #expect((int(summary, "patient_search", label, "fhirclient") ?? 0) >= 1, "fhirclient search by \(label)")
        }
        // Paging with _count=5 visits every Patient once, following next links to the end.
        for client in ["fhirpy", "fhirclient"] {
            let row = "Patient \(client)"
            #expect(int(summary, "paging", row, "total") == 20, "Bundle.total of Patients (\(client))")
            #expect(int(summary, "paging", row, "visited") == 20, "Patients visited (\(client))")
            #expect(int(summary, "paging", row, "unique") == 20, "distinct Patients visited (\(client))")
            #expect(int(summary, "paging", row, "pages") == 4, "pages of 5 (\(client))")
        }
        let encounterPaging = "Encounter of the patient, fhirpy"
        #expect(int(summary, "paging", encounterPaging, "visited") == patient.encounters)
        #expect(int(summary, "paging", encounterPaging, "pages") == (patient.encounters + 4) / 5)
        // $everything: the Patient first, then its compartment, with every Encounter.
        #expect(bool(summary, "everything", "first_is_patient") == true)
        #expect(int(summary, "everything", "by_type", "Patient") == 1)
        #expect(int(summary, "everything", "encounters") == patient.encounters)
        #expect(int(summary, "everything", "fhirclient_entries") == int(summary, "everything", "entries"))
        // Observation searches (patient + category + date + code) match what $everything holds.
        for label in ["year", "day", "range"] {
            let expected = int(summary, "observation_search", label, "expected")
            #expect((expected ?? 0) >= 1, "Observation search (\(label)) has something to find")
            #expect(int(summary, "observation_search", label, "fhirpy") == expected, "Observation search (\(label))")
        }
        // _include=MedicationRequest:medication brings every referenced Medication.
        #expect(int(summary, "medication_include", "included_medications") == patient.medications.count)
        #expect(int(summary, "medication_include", "medication_references") == patient.medications.count)
        // Every answer carried X-Data-As-Of, every Bundle meta.lastUpdated; everything validated.
        let responses = int(summary, "http", "ok") ?? 0
        #expect(responses > 20)
        #expect(int(summary, "http", "with_data_as_of") == responses)
        #expect((int(summary, "http", "bundles") ?? 0) > 10)
        #expect(int(summary, "http", "bundles_with_last_updated") == int(summary, "http", "bundles"))
        #expect((int(summary, "validated", "resources") ?? 0) >= 100)
        #expect(int(summary, "validated", "failed") == 0)
        #expect(int(summary, "search_vs_stored_exact", "mismatched") == 0)
        #expect(fixture.stop() == 0, "daemon log:\n\(fixture.log.suffix(2000))")
        let replica = try fixture.openReplica()
        defer { replica.close() }
        let trail = try replica.audit.records()
        #expect(
            trail.contains {
                $0.action == "read" && $0.actor == "interop-check" && $0.patient == patient.id
                    && $0.target == "Patient/\(patient.id)/_history/\(version)"
            }, "the version read is in the audit trail")
    }
}
