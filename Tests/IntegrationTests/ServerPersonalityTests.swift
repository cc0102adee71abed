import Foundation
import SyncModel
import SyncTestSupport
import Testing

// Real EHRs are not sekmet. Each personality (the fault proxy answering as Epic-, Cerner-,
// patient-scoped or wrongly declaring servers do, in front of sekmet) × {the first mirror
// equals the server, 20 updates + 5 creates + 3 deletes converge, an outbox of local changes
// replays exactly once}. Types are never named: the daemon discovers them.

private let markerSystem = "https://ehr-sync.org/test/marker"

@Suite(.serialized) struct ServerPersonalityTests {
    @Test(arguments: ServerPersonality.allCases)
    func mirrorsConvergesAndReplays(_ personality: ServerPersonality) async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        let metadata = try await server.request(.GET, "metadata").body
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port, rewriteUpstreamURLs: true)
        proxy.setPersonality(personality.rule(metadata: metadata))
        var sync = "sweep_interval = 0\npoll_interval = 1\noverlap = 0\npatient_round = 0"
        if personality == .epic {
            // The practice's Group, as its IT contractor registers it with the vendor.
            let members = try await server.all("Patient").keys.sorted().map {
                ["entity": ["reference": "Patient/\($0)"]]
            }
            let group: [String: Any] = [
                "resourceType": "Group", "id": ServerPersonality.groupID, "type": "person", "actual": true,
                "member": members,
            ]
            #expect(try await server.put(group) < 300)
            sync += "\ngroup_id = \"\(ServerPersonality.groupID)\""
        }
        // No overlap window: the data set was loaded a moment ago, and re-reading it would make
        // the idle cycle's figure the load's, not the protocol's. Every cycle is a round of every
        // patient on per-patient servers (the round itself is tested below).
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"), sync: sync,
            ehr: "requests_per_second = 1000", extra: "[replay]\nstart_jitter = 0", localAPIAuthor: "dr.test")

        // The first mirror: every record of every type the server holds.
        #expect(try fixture.runOnce() == 0, "\(personality): log:\n\(fixture.log.suffix(3000))")
        let initialRequests = await proxy.settledRequests().count
        var types = try TestData.loadOrder("small")
        let coverage = try fixture.coverage()
        switch personality {
        case .epic, .cerner:
            // sekmet cannot search SupplyDelivery by patient, and these servers refuse it
            // whole and have no $everything: refused every way, and said so (a partial
            // mirror, never a silent one).
            #expect(coverage.refused.map(\.type) == ["SupplyDelivery"], "\(coverage.summary)")
            #expect(coverage.isPartial)
            types.removeAll { $0 == "SupplyDelivery" }
        default:
            #expect(!coverage.isPartial, "\(personality): \(coverage.summary)")
        }
        try await assertReplicaEqualsServer(fixture, server, types: types)
        for type in types { #expect(coverage.mirrored.contains(type), "\(personality): \(type) not mirrored") }
        switch personality {
        case .patientScoped, .epic, .cerner:
            #expect(coverage.perPatient.contains("Observation"), "\(coverage.summary)")
        case .underDeclaring:
            #expect(coverage.undeclared.count >= types.count / 3, "\(coverage.summary)")
        case .overDeclaring:
            #expect(coverage.absentDeclared == ServerPersonality.phantomTypes.sorted(), "\(coverage.summary)")
        case .sekmet:
            break
        }

        // One idle cycle.
        proxy.resetLog()
        #expect(try fixture.runOnce() == 0, "\(personality): log:\n\(fixture.log.suffix(3000))")
        let idle = await proxy.settledRequests()
        let idleRequests = idle.count
        // What a cycle costs without a sweep (a sweep is due every six hours by default).
        let idleWithoutSweep = idle.filter {
            !$0.uri.contains("_elements=id") && !($0.uri.contains("$everything") && !$0.uri.contains("_since"))
                && !$0.uri.hasSuffix("/metadata")
        }.count

        if personality == .epic {
            // An idle cycle is one Group export with `_since`, not a search a patient.
            let uris = idle.map(\.uri)
            #expect(
                uris.contains { $0.contains("Group/\(ServerPersonality.groupID)/$export") && $0.contains("_since=") },
                "\(uris.prefix(20))")
            #expect(
                !uris.contains { $0.contains("Observation?patient=") && !$0.contains("_elements=id") },
                "\(uris.prefix(20))")
        }

        // Another client edits the EHR: 20 updates, 5 creates, 3 deletes.
        let observations = try await server.all("Observation")
        let ids = observations.keys.sorted()
        for id in ids.prefix(20) {
            var o = observations[id]!
            o["status"] = "amended"
            #expect(try await server.put(o) < 300)
        }
        for n in 0..<5 {
            var o = observations[ids[30]]!
            o["id"] = "personality-created-\(n)"
            #expect(try await server.put(o) < 300)
        }
        for id in ids.suffix(3) { #expect(try await server.delete("Observation", id) < 300) }
        #expect(try fixture.runOnce() == 0, "\(personality): log:\n\(fixture.log.suffix(3000))")
        try await assertReplicaEqualsServer(fixture, server, types: ["Observation"])

        // Local changes during an outage replay once the EHR is back, each exactly once.
        let api = try #require(fixture.localAPI).client()
        try fixture.start()
        #expect(
            DaemonFixture.waitUntil(timeout: 120) { (try? fixture.status())?.state == "online" },
            "\(personality): never online")
        proxy.setMode(.refuseConnections)
        #expect(
            DaemonFixture.waitUntil(timeout: 60) { (try? fixture.status())?.state == "outage" },
            "\(personality): outage not noticed")
        proxy.setMode(.status(503))
        let patient = try #require(try await server.all("Patient").keys.sorted().first)
        for n in 0..<3 {
            let created = try await api.create([
                "resourceType": "Observation", "status": "final",
                "code": ["coding": [["system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"]]],
                "subject": ["reference": "Patient/\(patient)"], "effectiveDateTime": "2026-12-07T09:30:00Z",
                "valueQuantity": ["value": 70 + n, "unit": "/min"],
                "identifier": [["system": markerSystem, "value": "\(personality)-\(n)"]],
            ])
            #expect(created.status == 201, "\(personality): local create answered \(created.status)")
        }
        proxy.setMode(.passThrough)
        let drained = DaemonFixture.waitUntil(timeout: 180) {
            guard let s = try? fixture.status() else { return false }
            return s.state == "online" && s.outboxPending + s.outboxWaiting + s.outboxParked + s.conflicts == 0
        }
        #expect(drained, "\(personality): outbox not replayed; log:\n\(fixture.log.suffix(3000))")
        if personality == .epic {
            // Status names what is missing and why, and is critical.
            let status = try #require(try fixture.status())
            #expect(status.types?.partial == true)
            #expect(status.types?.refused.first?.type == "SupplyDelivery")
            #expect(status.exitCode == 2)
            #expect(status.text(now: Date().timeIntervalSince1970).contains("PARTIAL MIRROR"))
        }
        #expect(fixture.stop(signal: SIGTERM) == 0)
        for n in 0..<3 {
            let found = try await server.search(
                "Observation?identifier=\(markerSystem.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)%7C\(personality)-\(n)"
            )
            #expect(found.count == 1, "\(personality): local create \(n) is on the EHR \(found.count) times")
        }
        try await proxy.stop()
        print(
            "personality \(personality): initial \(initialRequests) requests, idle cycle \(idleRequests) requests "
                + "with a sweep, \(idleWithoutSweep) without")
    }

    /// On a per-patient server, the patients with an appointment today are asked every cycle;
    /// the others wait for the round (`patient_round`).
    @Test func patientsWithAnAppointmentTodayAreRefreshedEveryCycleTheOthersOnTheRound() async throws {
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        let metadata = try await server.request(.GET, "metadata").body
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port, rewriteUpstreamURLs: true)
        proxy.setPersonality(ServerPersonality.patientScoped.rule(metadata: metadata))
        let patients = try await server.all("Patient").keys.sorted()
        let (seen, unseen) = (patients[0], patients[1])
        let today = ISO8601DateFormatter().string(from: Date()).prefix(10)
        let appointment: [String: Any] = [
            "resourceType": "Appointment", "id": "today-1", "status": "booked", "start": "\(today)T12:00:00Z",
            "end": "\(today)T12:15:00Z",
            "participant": [["actor": ["reference": "Patient/\(seen)"], "status": "accepted"]],
        ]
        #expect(try await server.put(appointment) < 300)
        let fixture = try DaemonFixture(
            baseURL: proxy.url("/fhir"), sync: "patient_round = 86400\noverlap = 0\nsweep_interval = 86400")
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(3000))")  // first copy
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(3000))")  // first round
        do {
            let replica = try fixture.openReplica()
            defer { replica.close() }
            #expect(try replica.records.resource(type: "Appointment", id: "today-1") != nil)
        }

        // Another client edits one Observation of each patient.
        let observations = try await server.all("Observation")
        func observation(of patient: String) throws -> [String: Any] {
            try #require(
                observations.values.first {
                    ($0["subject"] as? [String: Any])?["reference"] as? String == "Patient/\(patient)"
                })
        }
        var edited: [String: String] = [:]
        for patient in [seen, unseen] {
            var o = try observation(of: patient)
            o["status"] = "amended"
            #expect(try await server.put(o) < 300)
            edited[patient] = o["id"] as? String
        }
        proxy.resetLog()
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(3000))")
        let everything = await proxy.settledRequests().filter { $0.uri.contains("$everything") }.map(\.uri)
        #expect(everything.count == 1 && everything.first?.contains("Patient/\(seen)/") == true, "\(everything)")
        let replica = try fixture.openReplica()
        defer { replica.close() }
        let refreshed = try replica.records.resource(type: "Observation", id: try #require(edited[seen]))
        let waiting = try replica.records.resource(type: "Observation", id: try #require(edited[unseen]))
        #expect(refreshed.map { String(decoding: $0.json, as: UTF8.self).contains("amended") } == true)
        #expect(waiting.map { String(decoding: $0.json, as: UTF8.self).contains("amended") } == false)
        try await proxy.stop()
    }
}
