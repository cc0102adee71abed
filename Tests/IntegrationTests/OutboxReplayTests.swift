import Foundation
import SyncModel
import SyncTestSupport
import Testing

// The clinician → server path end to end: a real ehr-syncd with its local API, a real
// sekmet-fhir EHR (often behind the fault proxy), another client editing the EHR directly.

/// `meta.tag` system of local changes not yet on the EHR.
private let syncStateSystem = "https://ehr-sync.org/fhir/CodeSystem/sync-state"
/// The identifier system of the client identifiers that make creates idempotent.
private let clientIDSystem = "urn:ietf:rfc:3986"
/// Our own identifier on every resource a test creates, to find it on the EHR.
private let markerSystem = "https://ehr-sync.org/test/marker"
/// The author of the local API's token.
private let author = "dr.test"

/// `system|value` percent-encoded for a token search parameter.
private func token(_ system: String, _ value: String = "") -> String {
    let allowed = CharacterSet.alphanumerics.union(.init(charactersIn: "-._~"))
    return "\(system)|\(value)".addingPercentEncoding(withAllowedCharacters: allowed) ?? system
}

private func marker(_ value: String) -> [[String: Any]] {
    [["system": markerSystem, "value": value]]
}

/// The value of one identifier system of a resource (all of them).
private func identifiers(_ resource: [String: Any], system: String) -> [String] {
    (resource["identifier"] as? [[String: Any]] ?? []).filter { $0["system"] as? String == system }
        .compactMap { $0["value"] as? String }
}

private func reference(_ resource: [String: Any], _ field: String) -> String? {
    (resource[field] as? [String: Any])?["reference"] as? String
}

/// JSON equality of two values from JSONSerialization (key order ignored).
private func same(_ a: Any?, _ b: Any?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    let wrap = { (v: Any) in try? JSONSerialization.data(withJSONObject: ["v": v], options: [.sortedKeys]) }
    return wrap(a) == wrap(b)
}

private func object(_ text: String?) -> [String: Any]? {
    guard let text else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

/// Polls an async condition until it holds or `timeout` passes (the condition is what the
/// test waits for; the interval only paces the polling).
private func eventually(timeout: Double = 120, interval: Double = 0.2, _ condition: () async throws -> Bool)
    async rethrows -> Bool
{
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
    }
    return try await condition()
}

/// Waits for a status satisfying `condition`; returns the last status seen.
@discardableResult
private func waitForStatus(_ fixture: DaemonFixture, timeout: Double = 120, _ condition: (StatusReport) -> Bool)
    -> (met: Bool, status: StatusReport?)
{
    var last: StatusReport?
    let met = DaemonFixture.waitUntil(timeout: timeout, interval: 0.2) {
        last = (try? fixture.status()) ?? nil
        return last.map(condition) ?? false
    }
    return (met, last)
}

private func describe(_ status: StatusReport?) -> String {
    guard let s = status else { return "no status" }
    return
        "state=\(s.state) initial=\(s.initialSyncComplete) pending=\(s.outboxPending) waiting=\(s.outboxWaiting) "
        + "parked=\(s.outboxParked) conflicts=\(s.conflicts) held=\(s.heldChanges) lastError=\(s.lastError ?? "-")"
}

/// A daemon with the local API, replay without jitter, a short poll interval, and a short
/// overlap (the data set was loaded a moment ago: a 120 s re-read window would make every
/// cycle read all of it again).
private func outboxFixture(baseURL: String, types: [String]) throws -> DaemonFixture {
    try DaemonFixture(
        baseURL: baseURL, sync: "resource_types = \(typeList(types))\npoll_interval = 1\noverlap = 10",
        ehr: "requests_per_second = 1000\nconnect_timeout = 2",
        extra: "[replay]\nstart_jitter = 0", localAPIAuthor: author)
}

/// Starts the daemon and waits until the first copy is complete and the EHR online.
private func startOnline(_ fixture: DaemonFixture, timeout: Double = 180) throws {
    try fixture.start()
    let (met, status) = waitForStatus(fixture, timeout: timeout) { $0.initialSyncComplete && $0.state == "online" }
    try #require(met, "never online: \(describe(status))\nlog:\n\(fixture.log.suffix(2000))")
}

private func converged(_ s: StatusReport) -> Bool { s.outboxPending + s.outboxWaiting == 0 }

/// The one resource of `type` carrying our marker `value` on the EHR; records an issue when
/// there is none or more than one.
private func unique(_ server: ServerClient, _ type: String, marker value: String) async throws -> [String: Any]? {
    let found = try await server.search("\(type)?identifier=\(token(markerSystem, value))")
    #expect(found.count == 1, "\(type) \(value) is on the EHR \(found.count) times")
    return found.count == 1 ? found[0] : nil
}

/// Every client identifier on the EHR's resources of `type`: each must be unique.
private func clientIdentifiers(_ server: ServerClient, _ type: String) async throws -> [String] {
    try await server.search("\(type)?identifier=\(token(clientIDSystem))").flatMap {
        identifiers($0, system: clientIDSystem)
    }
}

private func minimalObservation(_ markerValue: String, subject: String, encounter: String? = nil) -> [String: Any] {
    var o: [String: Any] = [
        "resourceType": "Observation", "status": "final",
        "code": ["coding": [["system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"]]],
        "subject": ["reference": subject], "effectiveDateTime": "2026-11-20T09:30:00Z",
        "valueQuantity": ["value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"],
        "identifier": marker(markerValue),
    ]
    if let encounter { o["encounter"] = ["reference": encounter] }
    return o
}

private func encounter(_ markerValue: String, subject: String) -> [String: Any] {
    [
        "resourceType": "Encounter", "status": "finished",
        "class": ["system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"],
        "subject": ["reference": subject], "period": ["start": "2026-11-20T09:00:00Z", "end": "2026-11-20T09:40:00Z"],
        "identifier": marker(markerValue),
    ]
}

private func condition(_ markerValue: String, subject: String, encounter: String) -> [String: Any] {
    [
        "resourceType": "Condition",
        "clinicalStatus": [
            "coding": [["system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"]]
        ],
        "code": ["coding": [["system": "http://snomed.info/sct", "code": "444814009", "display": "Viral sinusitis"]]],
        "subject": ["reference": subject], "encounter": ["reference": encounter],
        "recordedDate": "2026-11-20T09:35:00Z", "identifier": marker(markerValue),
    ]
}

private func patient(_ markerValue: String, family: String, given: String) -> [String: Any] {
    [
        "resourceType": "Patient", "name": [["use": "official", "family": family, "given": [given]]],
        "gender": "female", "birthDate": "1971-03-04", "identifier": marker(markerValue),
    ]
}

/// A made-up family name no data set contains (PHI needle).
private func inventedName(_ prefix: String) -> String {
    let letters = Array("bcdfghjklmnpqrstvwxz")
    var generator = SystemRandomNumberGenerator()
    return prefix + String((0..<8).map { _ in letters.randomElement(using: &generator)! })
}

@Suite(.serialized) struct OutboxReplayTests {
    // MARK: 1. The outage scenario

    /// One local create as planned by the scenario: where it goes and what it references.
    struct PlannedCreate {
        var marker: String
        var type: String
        var resource: [String: Any]
        /// field → marker of the local create it must point at on the EHR
        var localReferences: [String: String] = [:]
        /// field → literal reference that must stay as it is
        var serverReferences: [String: String] = [:]
    }

    enum EditKind: String { case plain, merge, sameField, remoteDeleted }

    struct PlannedEdit {
        var kind: EditKind
        var type: String
        var id: String
        var field: String
        var local: Any
        var remoteField: String?
        var remote: Any?
    }

    @Test func anOutageWithLocalCreatesUpdatesDeletesAndRemoteEditsConverges() async throws {
        let types = try TestData.loadOrder("small")
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let server = ServerClient(baseURL: fhir.baseURL)
        let fixture = try outboxFixture(baseURL: proxy.url("/fhir"), types: types)
        let api = try #require(fixture.localAPI).client()
        try startOnline(fixture)

        // What is on the EHR before the outage.
        let observations = try await server.all("Observation")
        let obsIDs = observations.keys.sorted()
        let conditions = try await server.all("Condition")
        let condIDs = conditions.keys.sorted()
        let encounters = try await server.all("Encounter")
        let patientIDs = try await server.all("Patient").keys.sorted()

        // The EHR goes dark: refused connections until the daemon notices, then 503s.
        proxy.setMode(.refuseConnections)
        let (down, downStatus) = waitForStatus(fixture, timeout: 60) { $0.state == "outage" }
        #expect(down, "the outage was not noticed: \(describe(downStatus))")
        proxy.setMode(.status(503))

        // 30 local creates: a new patient with an encounter and what was recorded in it, more
        // encounters, an observation in one of them, observations of mirrored patients.
        let family = inventedName("Outage")
        var creates: [PlannedCreate] = [
            PlannedCreate(
                marker: "s1-patient", type: "Patient",
                resource: patient("s1-patient", family: family, given: "Maelle")),
            PlannedCreate(
                marker: "s1-encounter", type: "Encounter", resource: [:], localReferences: ["subject": "s1-patient"]),
        ]
        for k in 0..<9 {
            creates.append(
                PlannedCreate(
                    marker: "s1-obs-\(k)", type: "Observation", resource: [:],
                    localReferences: ["subject": "s1-patient", "encounter": "s1-encounter"]))
        }
        for k in 0..<5 {
            creates.append(
                PlannedCreate(
                    marker: "s1-cond-\(k)", type: "Condition", resource: [:],
                    localReferences: ["subject": "s1-patient", "encounter": "s1-encounter"]))
        }
        for k in 0..<3 {
            creates.append(
                PlannedCreate(
                    marker: "s1-enc-\(k)", type: "Encounter", resource: [:], localReferences: ["subject": "s1-patient"])
            )
        }
        creates.append(
            PlannedCreate(
                marker: "s1-obs-in-new-encounter", type: "Observation", resource: [:],
                localReferences: ["encounter": "s1-enc-0"], serverReferences: ["subject": "Patient/\(patientIDs[0])"]))
        for k in 0..<10 {
            creates.append(
                PlannedCreate(
                    marker: "s1-obs-mirrored-\(k)", type: "Observation", resource: [:],
                    serverReferences: ["subject": "Patient/\(patientIDs[k % patientIDs.count])"]))
        }
        #expect(creates.count == 30)

        var localIDs: [String: String] = [:]  // marker → local id
        for var create in creates {
            func ref(_ field: String) -> String? {
                if let m = create.localReferences[field] {
                    let type = creates.first { $0.marker == m }!.type
                    return "\(type)/\(localIDs[m]!)"
                }
                return create.serverReferences[field]
            }
            switch create.type {
            case "Patient": break
            case "Encounter": create.resource = encounter(create.marker, subject: ref("subject")!)
            case "Condition":
                create.resource = condition(create.marker, subject: ref("subject")!, encounter: ref("encounter")!)
            default:
                create.resource = minimalObservation(
                    create.marker, subject: ref("subject")!, encounter: ref("encounter"))
            }
            let response = try await api.create(create.resource)
            try #require(response.status == 201, "create \(create.marker): \(response.status) \(response.diagnostics)")
            let localID = try #require(response.locationID)
            localIDs[create.marker] = localID
            #expect(response.tags(system: syncStateSystem) == ["pending"])
        }

        // 20 local updates of mirrored records, some of which the EHR's other client also edits.
        let refuted: [String: Any] = [
            "coding": [["system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"]]
        ]
        let remoteNote: [[String: Any]] = [["text": "added on the EHR during the outage"]]
        var edits: [PlannedEdit] = []
        for i in 0..<10 {
            edits.append(
                PlannedEdit(kind: .plain, type: "Observation", id: obsIDs[i], field: "status", local: "amended"))
        }
        edits.append(
            PlannedEdit(kind: .plain, type: "Condition", id: condIDs[0], field: "verificationStatus", local: refuted))
        let encounterID = encounters.keys.sorted().first { encounters[$0]?["status"] as? String != "cancelled" }!
        edits.append(PlannedEdit(kind: .plain, type: "Encounter", id: encounterID, field: "status", local: "cancelled"))
        for i in 10..<13 {
            edits.append(
                PlannedEdit(
                    kind: .merge, type: "Observation", id: obsIDs[i], field: "status", local: "amended",
                    remoteField: "note", remote: remoteNote))
        }
        edits.append(
            PlannedEdit(
                kind: .merge, type: "Condition", id: condIDs[1], field: "verificationStatus", local: refuted,
                remoteField: "note", remote: remoteNote))
        for i in 13..<16 {
            edits.append(
                PlannedEdit(
                    kind: .sameField, type: "Observation", id: obsIDs[i], field: "status", local: "corrected",
                    remoteField: "status", remote: "entered-in-error"))
        }
        edits.append(
            PlannedEdit(kind: .remoteDeleted, type: "Observation", id: obsIDs[16], field: "status", local: "amended"))
        #expect(edits.count == 20)
        for edit in edits {
            let current = try await api.read(edit.type, edit.id)
            try #require(current.status == 200)
            var resource = try #require(current.json)
            resource[edit.field] = edit.local
            let response = try await api.update(resource)
            #expect(response.status == 200, "update: \(response.status) \(response.diagnostics)")
            #expect(response.tags(system: syncStateSystem) == ["pending"])
        }
        let deleted = Array(obsIDs[17..<22])
        for id in deleted {
            let response = try await api.delete("Observation", id)
            #expect(response.status == 204, "delete: \(response.status) \(response.diagnostics)")
            #expect(try await api.read("Observation", id).status == 410)
        }

        // Meanwhile the other client edits the EHR directly.
        for edit in edits where edit.kind != .plain {
            let all = edit.type == "Observation" ? observations : conditions
            if edit.kind == .remoteDeleted {
                #expect(try await server.delete(edit.type, edit.id) < 300)
                continue
            }
            var remote = try #require(all[edit.id])
            remote[edit.remoteField!] = edit.remote
            #expect(try await server.put(remote) < 300)
        }
        let queued = try #require(try fixture.status())
        #expect(queued.outboxPending + queued.outboxWaiting == 55, "\(describe(queued))")

        // Service returns.
        let outageRequests = proxy.requests.count
        proxy.setMode(.passThrough)
        _ = try fixture.ctl(["sync-now"])
        let (settled, final) = waitForStatus(fixture, timeout: 180) {
            $0.state == "online" && converged($0) && $0.conflicts == 4
        }
        #expect(settled, "did not converge: \(describe(final))\nlog:\n\(fixture.log.suffix(3000))")
        #expect(final?.outboxParked == 0)
        #expect(final?.outboxPending == 0)
        #expect(final?.outboxWaiting == 0)

        // Replay waited for the health probe (metadata, then one cheap search) that ends an
        // outage: nothing was written to the EHR before the probe's search succeeded.
        let afterOutage = Array(proxy.requests.dropFirst(outageRequests))
        let probed = afterOutage.firstIndex { $0.uri.contains("_count=1&_elements=id") && $0.status == 200 }
        let firstWrite = afterOutage.firstIndex { $0.method != "GET" }
        let order =
            "first write: request \(firstWrite.map(String.init) ?? "-") after the outage, "
            + "probe search: \(probed.map(String.init) ?? "-")"
        #expect(
            probed != nil && firstWrite != nil && probed! < firstWrite!, "replay before the health probe (\(order))")

        // Every create is on the EHR exactly once, with one client identifier, and points at
        // the EHR's ids of the other local creates.
        var serverIDs: [String: String] = [:]
        var created: [String: [String: Any]] = [:]
        for create in creates {
            guard let resource = try await unique(server, create.type, marker: create.marker) else { continue }
            serverIDs[create.marker] = resource["id"] as? String
            created[create.marker] = resource
            let clientIDs = identifiers(resource, system: clientIDSystem)
            #expect(
                clientIDs.count == 1 && clientIDs[0].hasPrefix("urn:uuid:"), "client identifier of \(create.marker)")
        }
        for create in creates {
            guard let resource = created[create.marker] else { continue }
            for (field, target) in create.localReferences {
                let type = creates.first { $0.marker == target }!.type
                #expect(
                    reference(resource, field) == "\(type)/\(serverIDs[target] ?? "?")",
                    "\(create.marker).\(field) does not point at the EHR's \(type)")
            }
            for (field, literal) in create.serverReferences {
                #expect(reference(resource, field) == literal, "\(create.marker).\(field) changed")
            }
        }
        for type in ["Patient", "Encounter", "Observation", "Condition"] {
            let values = try await clientIdentifiers(server, type)
            #expect(values.count == Set(values).count, "duplicate client identifiers among \(type)s")
            #expect(values.count == creates.filter { $0.type == type }.count, "\(type)s created")
        }
        // The local id keeps working and now shows the EHR's version.
        let patientView = try await api.read("Patient", localIDs["s1-patient"]!)
        #expect(patientView.status == 200)
        #expect(patientView.json?["id"] as? String == serverIDs["s1-patient"])
        #expect(patientView.tags(system: syncStateSystem).isEmpty)

        // Updates: local values on the EHR; merged ones keep the other client's field too.
        for edit in edits where edit.kind == .plain || edit.kind == .merge {
            let remote = try await server.json("\(edit.type)/\(edit.id)")
            #expect(same(remote[edit.field], edit.local), "\(edit.kind) update of a \(edit.type) lost its local value")
            if let field = edit.remoteField {
                #expect(same(remote[field], edit.remote), "merged \(edit.type) lost the EHR's \(field)")
            }
        }
        for edit in edits where edit.kind == .sameField {
            let remote = try await server.json("\(edit.type)/\(edit.id)")
            #expect(same(remote[edit.field], edit.remote), "a conflicting edit was written to the EHR")
            // Locally the practice still sees its version, marked as in conflict.
            let view = try await api.read(edit.type, edit.id)
            #expect(view.tags(system: syncStateSystem) == ["conflict"])
            #expect(same(view.json?[edit.field], edit.local))
        }
        // Locally, a merged record now shows the EHR's result: both sides' fields, no tag.
        let merged = try #require(edits.first { $0.kind == .merge })
        let mergedView = try await api.read(merged.type, merged.id)
        #expect(mergedView.tags(system: syncStateSystem).isEmpty)
        #expect(same(mergedView.json?[merged.field], merged.local))
        #expect(same(mergedView.json?[merged.remoteField!], merged.remote))
        for id in deleted {
            #expect([404, 410].contains(try await server.status("Observation/\(id)")), "local delete not replayed")
        }

        // The review queue holds exactly the same-field edits and the edit of a deleted record,
        // each with its three versions.
        let conflicting = Set(edits.filter { $0.kind == .sameField || $0.kind == .remoteDeleted }.map(\.id))
        let queue = try #require(try fixture.conflicts(), "syncctl conflicts --json is not available")
        #expect(queue.count == 4)
        var shown: Set<String> = []
        for item in queue {
            let detail = try #require(try fixture.conflict(item.seq), "syncctl conflicts show \(item.seq)")
            shown.insert(detail.id)
            let edit = try #require(edits.first { $0.id == detail.id })
            #expect(object(detail.base)?["status"] as? String == "final")
            #expect(same(object(detail.local)?[edit.field], edit.local))
            if edit.kind == .remoteDeleted {
                #expect(detail.remoteDeleted)
                #expect(detail.remote == nil)
            } else {
                #expect(!detail.remoteDeleted)
                #expect(object(detail.remote)?["status"] as? String == "entered-in-error")
                #expect(detail.places.contains { $0.path == "status" }, "\(detail.places.map(\.path))")
            }
        }
        #expect(shown == conflicting)

        // Provenance of replayed changes names the author.
        var withProvenance = 0
        var targets: [String] = creates.compactMap { c in serverIDs[c.marker].map { "\(c.type)/\($0)" } }
        targets += edits.filter { $0.kind == .plain || $0.kind == .merge }.map { "\($0.type)/\($0.id)" }
        targets += deleted.map { "Observation/\($0)" }
        for target in targets {
            let records = try await server.search("Provenance?target=\(target)")
            let authored = records.contains { record in
                let pointsAt = (record["target"] as? [[String: Any]] ?? []).compactMap { $0["reference"] as? String }
                let byAuthor = (record["agent"] as? [[String: Any]] ?? []).contains {
                    ($0["who"] as? [String: Any])?["display"] as? String == author
                }
                return byAuthor && pointsAt.contains { $0 == target || $0.hasPrefix(target + "/_history/") }
            }
            if authored {
                withProvenance += 1
            } else {
                Issue.record("no Provenance for a replayed \(target.prefix { $0 != "/" })")
            }
        }
        #expect(withProvenance == targets.count)

        #expect(PHINeedles.find([family], in: Array(fixture.log.utf8)).isEmpty, "PHI in the daemon's log")
        #expect(fixture.stop(signal: SIGTERM) == 0)
        try await proxy.stop()
    }

    // MARK: 2. Crash safety

    @Test func twentyKillsDuringReplayLoseNothingAndDuplicateNothing() async throws {
        let types = ["Patient", "Encounter", "Observation", "Condition"]
        let fhir = try await FHIRTestServer.start(dataset: "small")
        defer { fhir.stop() }
        let proxy = try await FaultProxy.start(upstreamPort: fhir.port)
        let server = ServerClient(baseURL: fhir.baseURL)
        let fixture = try outboxFixture(baseURL: proxy.url("/fhir"), types: types)
        let api = try #require(fixture.localAPI).client()
        #expect(try fixture.runOnce() == 0, "log:\n\(fixture.log.suffix(2000))")
        let observations = try await server.all("Observation")
        let obsIDs = observations.keys.sorted()
        let patientIDs = try await server.all("Patient").keys.sorted()

        // The EHR is cut; the practice keeps working through the local API.
        proxy.setMode(.refuseConnections)
        try fixture.start()
        let apiUp = await eventually(timeout: 60) { (try? await api.request(.GET, "metadata"))?.status == 200 }
        try #require(apiUp, "log:\n\(fixture.log.suffix(2000))")

        var createMarkers: [String: String] = [:]  // marker → type
        var localIDs: [String: String] = [:]
        var expectedRefs: [String: [String: String]] = [:]  // marker → field → marker
        func create(_ marker: String, _ resource: [String: Any], refs: [String: String] = [:]) async throws {
            let response = try await api.create(resource)
            try #require(response.status == 201, "create: \(response.status) \(response.diagnostics)")
            let localID = try #require(response.locationID)
            localIDs[marker] = localID
            createMarkers[marker] = resource["resourceType"] as? String
            expectedRefs[marker] = refs
        }
        // 20 rounds, so that replay meets every kind of change early: a new patient with an
        // encounter, observations and a condition in it; updates of mirrored observations (one
        // pointing at the new patient); deletes; observations of mirrored patients.
        var updates: [String: (note: String, subject: String?)] = [:]  // observation id → expected
        var deleted: [String] = []
        var nextObservation = 0
        func takeObservation() -> String {
            defer { nextObservation += 1 }
            return obsIDs[nextObservation]
        }
        for p in 0..<20 {
            let pm = "c2-p\(p)"
            try await create(pm, patient(pm, family: inventedName("Crash"), given: "Ilse"))
            let patientRef = "Patient/\(localIDs[pm]!)"
            try await create("c2-e\(p)", encounter("c2-e\(p)", subject: patientRef), refs: ["subject": pm])
            let encounterRef = "Encounter/\(localIDs["c2-e\(p)"]!)"
            for k in 0..<3 {
                try await create(
                    "c2-o\(p)-\(k)", minimalObservation("c2-o\(p)-\(k)", subject: patientRef, encounter: encounterRef),
                    refs: ["subject": pm, "encounter": "c2-e\(p)"])
            }
            try await create(
                "c2-c\(p)", condition("c2-c\(p)", subject: patientRef, encounter: encounterRef),
                refs: ["subject": pm, "encounter": "c2-e\(p)"])
            for u in 0..<5 {
                let id = takeObservation()
                var resource = try #require(try await api.read("Observation", id).json)
                let note = "crash-update-\(p)-\(u)"
                resource["status"] = "amended"
                resource["note"] = [["text": note]]
                if u == 0 { resource["subject"] = ["reference": patientRef] }
                let response = try await api.update(resource)
                try #require(response.status == 200, "update: \(response.status) \(response.diagnostics)")
                updates[id] = (note, u == 0 ? pm : nil)
            }
            for _ in 0..<(p.isMultiple(of: 2) ? 2 : 3) {
                let id = takeObservation()
                let response = try await api.delete("Observation", id)
                try #require(response.status == 204, "delete: \(response.status) \(response.diagnostics)")
                deleted.append(id)
            }
            for k in 0..<(p.isMultiple(of: 2) ? 2 : 1) {
                let m = "c2-m\(p)-\(k)"
                try await create(m, minimalObservation(m, subject: "Patient/\(patientIDs[(p + k) % patientIDs.count])"))
            }
        }
        let changes = createMarkers.count + updates.count + deleted.count
        #expect(changes == 300)
        let queued = try #require(try fixture.status())
        #expect(queued.outboxPending + queued.outboxWaiting == changes, "\(describe(queued))")

        // The EHR comes back; the daemon is killed at random moments of the replay.
        #expect(fixture.stop(signal: SIGTERM) == 0)
        proxy.setMode(.passThrough)
        proxy.resetLog()
        func writes() -> Int { proxy.requests.filter { $0.method != "GET" }.count }
        var generator = SeededGenerator(seed: 0x5EED_2025)
        var kills = 0
        try fixture.start()
        for _ in 0..<20 {
            let threshold = writes() + Int.random(in: 1...24, using: &generator)
            let reached = DaemonFixture.waitUntil(timeout: 60, interval: 0.002) {
                writes() >= threshold || !fixture.isRunning
            }
            guard reached, fixture.isRunning else { break }
            // A random moment within the request: before, while or after the EHR writes it.
            usleep(UInt32.random(in: 0..<25_000, using: &generator))
            fixture.stop(signal: SIGKILL)
            kills += 1
            try fixture.start()
        }
        #expect(kills == 20, "replay ended after \(kills) kills (\(writes()) writes)")
        let (settled, final) = waitForStatus(fixture, timeout: 180) { $0.state == "online" && converged($0) }
        #expect(settled, "did not converge: \(describe(final))\nlog:\n\(fixture.log.suffix(3000))")
        #expect(final?.outboxParked == 0)
        #expect(final?.conflicts == 0)
        #expect(fixture.stop(signal: SIGTERM) == 0)

        // Nothing lost: every entry is done, every change is on the EHR.
        let replica = try fixture.openReplica()
        let entries = try replica.outbox.entries()
        replica.close()
        #expect(entries.count == changes)
        let notDone = entries.filter { $0.state != .done }
        #expect(notDone.isEmpty, "\(notDone.map { "#\($0.seq) \($0.operation.rawValue) \($0.state.rawValue)" })")

        // Nothing duplicated: each create once, client identifiers unique.
        var serverIDs: [String: String] = [:]
        var byMarker: [String: [String: Any]] = [:]
        for type in types {
            let found = try await server.search("\(type)?identifier=\(token(markerSystem))")
            var seen: [String: Int] = [:]
            for resource in found {
                for m in identifiers(resource, system: markerSystem) {
                    seen[m, default: 0] += 1
                    serverIDs[m] = resource["id"] as? String
                    byMarker[m] = resource
                }
            }
            let expected = Set(createMarkers.filter { $0.value == type }.keys)
            #expect(Set(seen.keys) == expected, "\(type): \(expected.subtracting(seen.keys).count) creates missing")
            let doubles = seen.filter { $0.value > 1 }
            #expect(doubles.isEmpty, "\(doubles.count) \(type) creates on the EHR more than once")
            let clientIDs = try await clientIdentifiers(server, type)
            #expect(clientIDs.count == Set(clientIDs).count, "duplicate client identifiers among \(type)s")
            #expect(clientIDs.count == expected.count)
        }
        for (markerValue, refs) in expectedRefs {
            guard let resource = byMarker[markerValue] else { continue }
            for (field, target) in refs {
                let type = createMarkers[target]!
                #expect(reference(resource, field) == "\(type)/\(serverIDs[target] ?? "?")")
            }
        }
        let after = try await server.all("Observation")
        for (id, expected) in updates {
            let resource = try #require(after[id], "an updated Observation is gone")
            #expect(resource["status"] as? String == "amended")
            #expect((resource["note"] as? [[String: Any]])?.first?["text"] as? String == expected.note)
            if let subject = expected.subject {
                #expect(reference(resource, "subject") == "Patient/\(serverIDs[subject] ?? "?")")
            }
        }
        for id in deleted {
            #expect(after[id] == nil, "a deleted Observation is still on the EHR")
        }
        try await proxy.stop()
    }

    // MARK: 3. Parking

    @Test func aRejectedChangeIsParkedWithTheServersReasonAndItsDependentsWait() async throws {
        let fhir = try await FHIRTestServer.start(validation: .strict)
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        let seedPatient: [String: Any] = [
            "resourceType": "Patient", "id": "seed-patient", "gender": "male", "birthDate": "1980-02-03",
            "name": [["family": "Seed", "given": ["Sam"]]],
        ]
        #expect(try await server.put(seedPatient) < 300)
        var seedObservation = minimalObservation("seed", subject: "Patient/seed-patient")
        seedObservation["id"] = "seed-obs"
        #expect(try await server.put(seedObservation) < 300)

        let fixture = try outboxFixture(baseURL: fhir.baseURL, types: ["Patient", "Observation"])
        let api = try #require(fixture.localAPI).client()
        try startOnline(fixture, timeout: 60)
        #expect(try fixture.ctl(["pause"]).status == 0)

        func queue(_ resource: [String: Any], update: Bool = false) async throws -> (seq: Int64, id: String?) {
            let response = try await (update ? api.update(resource) : api.create(resource))
            try #require(
                response.status == (update ? 200 : 201), "local write: \(response.status) \(response.diagnostics)")
            return (try #require(response.outboxEntry), response.locationID)
        }
        _ = try await queue(minimalObservation("p3-valid", subject: "Patient/seed-patient"))
        var noCode = minimalObservation("p3-no-code", subject: "Patient/seed-patient")
        noCode["code"] = nil
        let invalid = try await queue(noCode)
        var seedUpdate = try #require(try await api.read("Patient", "seed-patient").json)
        seedUpdate["active"] = true
        _ = try await queue(seedUpdate, update: true)
        var badPatient = patient("p3-bad-patient", family: "Baddate", given: "Bea")
        badPatient["birthDate"] = "the third of March"
        let parkedPatient = try await queue(badPatient)
        let dependent = try await queue(
            minimalObservation("p3-dependent", subject: "Patient/\(parkedPatient.id!)"))

        #expect(try fixture.ctl(["resume"]).status == 0)
        let (parked, status) = waitForStatus(fixture, timeout: 60) {
            $0.outboxParked == 2 && $0.outboxWaiting == 1 && $0.outboxPending == 0
        }
        #expect(parked, "\(describe(status))\nlog:\n\(fixture.log.suffix(2000))")

        // The valid changes went through; the rejected ones and their dependent did not.
        let valid = try await unique(server, "Observation", marker: "p3-valid")
        #expect(reference(valid ?? [:], "subject") == "Patient/seed-patient")
        #expect(try await server.json("Patient/seed-patient")["active"] as? Bool == true)
        for (type, value) in [
            ("Observation", "p3-no-code"), ("Patient", "p3-bad-patient"), ("Observation", "p3-dependent"),
        ] {
            #expect(try await server.search("\(type)?identifier=\(token(markerSystem, value))").isEmpty)
        }

        // syncctl outbox says why.
        let items = try #require(try fixture.outbox(), "syncctl outbox --json is not available")
        #expect(items.count == 3, "\(items.map { "#\($0.seq) \($0.state)" })")
        let observationItem = try #require(items.first { $0.seq == invalid.seq })
        #expect(observationItem.state == "parked")
        #expect(observationItem.reason?.contains("400") == true, "\(observationItem.reason ?? "-")")
        #expect(observationItem.reason?.contains("Observation.code") == true, "\(observationItem.reason ?? "-")")
        #expect(observationItem.attempts == 1)
        let patientItem = try #require(items.first { $0.seq == parkedPatient.seq })
        #expect(patientItem.state == "parked")
        #expect(patientItem.reason?.contains("Patient.birthDate") == true, "\(patientItem.reason ?? "-")")
        let waitingItem = try #require(items.first { $0.seq == dependent.seq })
        #expect(waitingItem.state == "waiting")
        #expect(waitingItem.reason?.contains("#\(parkedPatient.seq)") == true, "\(waitingItem.reason ?? "-")")
        #expect(waitingItem.reason?.contains("parked") == true, "\(waitingItem.reason ?? "-")")
        let text = try fixture.ctl(["status"])
        #expect(text.status == 1, "\(text.output)")

        // Sent again without a fix, it is rejected again.
        let retry = try fixture.ctl(["outbox", "retry", String(invalid.seq)])
        #expect(retry.status == 0, "\(retry.output)")
        let reparked = DaemonFixture.waitUntil(timeout: 60, interval: 0.2) {
            let item = ((try? fixture.outbox()) ?? nil)?.first { $0.seq == invalid.seq }
            return item?.state == "parked" && item?.attempts == 2
        }
        #expect(reparked, "log:\n\(fixture.log.suffix(2000))")
        let again = try #require(try fixture.status())
        #expect(again.outboxParked == 2 && again.outboxWaiting == 1 && again.outboxPending == 0, "\(describe(again))")
        #expect(fixture.stop(signal: SIGTERM) == 0)
    }

    // MARK: 4. Local API basics

    @Test func theLocalAPIAuthenticatesAnswersAtOnceAndItsQueueSurvivesAKill() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        #expect(
            try await server.put(["resourceType": "Patient", "id": "seed-patient", "gender": "other"]) < 300)
        let fixture = try outboxFixture(baseURL: fhir.baseURL, types: ["Patient"])
        let access = try #require(fixture.localAPI)
        let api = access.client()
        try startOnline(fixture, timeout: 60)

        // No token, a wrong token: 401, nothing queued.
        let family = inventedName("Local")
        let given = inventedName("Given")
        let first = patient("l4-first", family: family, given: given)
        for token: String? in [nil, "not-the-token-but-long-enough-000000"] {
            let read = try await api.read("Patient", "seed-patient", token: .some(token))
            #expect(read.status == 401)
            #expect(read.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            #expect(try await api.create(first, token: .some(token)).status == 401)
            #expect(try await api.delete("Patient", "seed-patient", token: .some(token)).status == 401)
        }
        #expect(try #require(try fixture.status()).outboxPending == 0)

        // A create is visible at once, tagged as not yet on the EHR.
        #expect(try fixture.ctl(["pause"]).status == 0)
        let created = try await api.create(first)
        #expect(created.status == 201)
        let firstID = try #require(created.locationID)
        let view = try await api.read("Patient", firstID)
        #expect(view.status == 200)
        #expect(view.tags(system: syncStateSystem) == ["pending"])
        #expect(((view.json?["name"] as? [[String: Any]])?.first?["family"] as? String) == family)

        // A create acknowledged just before a kill is not lost.
        let secondFamily = inventedName("Killed")
        let second = try await api.create(patient("l4-second", family: secondFamily, given: given))
        #expect(second.status == 201)
        fixture.stop(signal: SIGKILL)
        let secondID = try #require(second.locationID)
        for value in ["l4-first", "l4-second"] {
            #expect(try await server.search("Patient?identifier=\(token(markerSystem, value))").isEmpty)
        }

        try fixture.start()
        let apiUp = await eventually(timeout: 60) { (try? await api.read("Patient", secondID))?.status == 200 }
        #expect(apiUp, "the queued create is gone after the kill")
        let (settled, final) = waitForStatus(fixture, timeout: 60) { $0.state == "online" && converged($0) }
        #expect(settled, "\(describe(final))\nlog:\n\(fixture.log.suffix(2000))")
        let onServer = try await unique(server, "Patient", marker: "l4-second")
        _ = try await unique(server, "Patient", marker: "l4-first")
        let replayed = try await api.read("Patient", secondID)
        #expect(replayed.tags(system: syncStateSystem).isEmpty)
        #expect(replayed.json?["id"] as? String == onServer?["id"] as? String)
        #expect(fixture.stop(signal: SIGTERM) == 0)

        // Exactly the two creates were queued; no name reached the log or the disk in clear.
        let replica = try fixture.openReplica()
        #expect(try replica.outbox.entries().map(\.state) == [.done, .done])
        // Who queued them is in the audit trail, one line each, naming the new patients.
        let writes = try replica.audit.records().filter { $0.action == "local-create" }
        #expect(writes.map(\.actor) == [access.author, access.author])
        #expect(Set(writes.compactMap(\.patient)) == [firstID, secondID])
        replica.close()
        let needles = [family, given, secondFamily]
        #expect(PHINeedles.find(needles, in: Array(fixture.log.utf8)).isEmpty, "PHI in the daemon's log")
        #expect(try PHINeedles.find(needles, inFilesBelow: fixture.stateDir).isEmpty, "PHI in the state directory")
    }

    // MARK: Cycles among local creates

    /// The clinician's way (#14): during an outage an Encounter, a Condition of that
    /// Encounter, then the Encounter edited to list the Condition as its diagnosis; and a panel
    /// Observation whose member derives from it. The creates reference each other; after the
    /// EHR returns each is on it exactly once, referencing the other's server id.
    @Test func cyclesAmongLocalCreatesReachTheEHR() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        #expect(try await server.put(["resourceType": "Patient", "id": "cycle-patient", "gender": "other"]) < 300)
        let fixture = try outboxFixture(
            baseURL: fhir.baseURL, types: ["Patient", "Encounter", "Condition", "Observation"])
        let api = try #require(fixture.localAPI).client()
        try startOnline(fixture, timeout: 60)
        defer { fixture.stop() }
        #expect(try fixture.ctl(["pause"]).status == 0)

        func created(_ resource: [String: Any]) async throws -> String {
            let response = try await api.create(resource)
            try #require(response.status == 201, "\(response.status) \(response.diagnostics)")
            return try #require(response.locationID)
        }
        let encounterID = try await created(encounter("cy-encounter", subject: "Patient/cycle-patient"))
        let conditionID = try await created(
            condition("cy-condition", subject: "Patient/cycle-patient", encounter: "Encounter/\(encounterID)"))
        var diagnosed = try #require(try await api.read("Encounter", encounterID).json)
        diagnosed["diagnosis"] = [["condition": ["reference": "Condition/\(conditionID)"], "rank": 1]]
        diagnosed["meta"] = nil
        #expect(try await api.update(diagnosed).status == 200)

        var panel = minimalObservation("cy-panel", subject: "Patient/cycle-patient")
        panel["valueQuantity"] = nil
        let panelID = try await created(panel)
        var member = minimalObservation("cy-member", subject: "Patient/cycle-patient")
        member["derivedFrom"] = [["reference": "Observation/\(panelID)"]]
        let memberID = try await created(member)
        var withMembers = try #require(try await api.read("Observation", panelID).json)
        withMembers["hasMember"] = [["reference": "Observation/\(memberID)"]]
        withMembers["meta"] = nil
        #expect(try await api.update(withMembers).status == 200)

        #expect(try fixture.ctl(["resume"]).status == 0)
        let (settled, final) = waitForStatus(fixture, timeout: 120) {
            $0.state == "online" && converged($0) && $0.outboxParked == 0 && $0.conflicts == 0
        }
        let queue = (try? fixture.ctl(["outbox"]).output) ?? ""
        #expect(settled, "\(describe(final))\n\(queue)\nlog:\n\(fixture.log.suffix(3000))")

        let onEncounter = try #require(try await unique(server, "Encounter", marker: "cy-encounter"))
        let onCondition = try #require(try await unique(server, "Condition", marker: "cy-condition"))
        let encounterOnEHR = try #require(onEncounter["id"] as? String)
        let conditionOnEHR = try #require(onCondition["id"] as? String)
        let diagnosis = (onEncounter["diagnosis"] as? [[String: Any]])?.first?["condition"] as? [String: Any]
        #expect(diagnosis?["reference"] as? String == "Condition/\(conditionOnEHR)")
        #expect(reference(onCondition, "encounter") == "Encounter/\(encounterOnEHR)")

        let onPanel = try #require(try await unique(server, "Observation", marker: "cy-panel"))
        let onMember = try #require(try await unique(server, "Observation", marker: "cy-member"))
        let members = (onPanel["hasMember"] as? [[String: Any]])?.compactMap { $0["reference"] as? String }
        #expect(members == ["Observation/\(try #require(onMember["id"] as? String))"])
        let derived = (onMember["derivedFrom"] as? [[String: Any]])?.compactMap { $0["reference"] as? String }
        #expect(derived == ["Observation/\(try #require(onPanel["id"] as? String))"])
        // Both pairs did form a cycle: one member of each went first without its reference.
        let detached = fixture.log.components(separatedBy: "without its references into a cycle").count - 1
        #expect(detached == 2, "\(fixture.log.suffix(3000))")
        // The local view shows the records as the EHR has them, nothing left to send.
        let view = try await api.read("Encounter", encounterID)
        #expect(view.status == 200 && view.tags(system: syncStateSystem).isEmpty)
    }

    // MARK: 5. Conflict resolution

    @Test func conflictsResolvedWithLocalRemoteAndAMergedFileReachTheEHR() async throws {
        let fhir = try await FHIRTestServer.start()
        defer { fhir.stop() }
        let server = ServerClient(baseURL: fhir.baseURL)
        #expect(try await server.put(["resourceType": "Patient", "id": "seed-patient", "gender": "other"]) < 300)
        for n in 1...3 {
            var o = minimalObservation("r5-\(n)", subject: "Patient/seed-patient")
            o["id"] = "obs-\(n)"
            #expect(try await server.put(o) < 300)
        }
        let fixture = try outboxFixture(baseURL: fhir.baseURL, types: ["Patient", "Observation"])
        let api = try #require(fixture.localAPI).client()
        try startOnline(fixture, timeout: 60)

        // The same field changed here and on the EHR while sync is paused.
        #expect(try fixture.ctl(["pause"]).status == 0)
        for n in 1...3 {
            var local = try #require(try await api.read("Observation", "obs-\(n)").json)
            local["status"] = "corrected"
            local["note"] = [["text": "local note \(n)"]]
            #expect(try await api.update(local).status == 200)
            var remote = try await server.json("Observation/obs-\(n)")
            remote["status"] = "entered-in-error"
            #expect(try await server.put(remote) < 300)
        }
        #expect(try fixture.ctl(["resume"]).status == 0)
        let (conflicted, status) = waitForStatus(fixture, timeout: 60) { $0.conflicts == 3 && converged($0) }
        #expect(conflicted, "\(describe(status))\nlog:\n\(fixture.log.suffix(2000))")

        let queue = try #require(try fixture.conflicts(), "syncctl conflicts --json is not available")
        var seqByID: [String: Int64] = [:]
        var details: [String: ConflictDetail] = [:]
        for item in queue {
            let detail = try #require(try fixture.conflict(item.seq))
            seqByID[detail.id] = item.seq
            details[detail.id] = detail
        }
        #expect(Set(seqByID.keys) == ["obs-1", "obs-2", "obs-3"])
        let remoteVersion2 = try await server.json("Observation/obs-2")["meta"] as? [String: Any]

        let keepLocal = try fixture.ctl([
            "conflicts", "resolve", String(try #require(seqByID["obs-1"])), "--keep", "local",
        ])
        #expect(keepLocal.status == 0, "\(keepLocal.output)")
        let keepRemote = try fixture.ctl([
            "conflicts", "resolve", String(try #require(seqByID["obs-2"])), "--keep", "remote",
        ])
        #expect(keepRemote.status == 0, "\(keepRemote.output)")
        var merged = try #require(object(details["obs-3"]?.remote))
        merged["status"] = "amended"
        merged["note"] = [["text": "merged by the reviewer"]]
        merged["meta"] = nil
        let file = fixture.dir.file("merged.json")
        try JSONSerialization.data(withJSONObject: merged).write(to: URL(fileURLWithPath: file))
        let withFile = try fixture.ctl(["conflicts", "resolve", String(try #require(seqByID["obs-3"])), "--file", file])
        #expect(withFile.status == 0, "\(withFile.output)")

        let (resolved, after) = waitForStatus(fixture, timeout: 60) { $0.conflicts == 0 && converged($0) }
        #expect(resolved, "\(describe(after))\nlog:\n\(fixture.log.suffix(2000))")
        let one = try await server.json("Observation/obs-1")
        #expect(one["status"] as? String == "corrected")
        #expect((one["note"] as? [[String: Any]])?.first?["text"] as? String == "local note 1")
        let two = try await server.json("Observation/obs-2")
        #expect(two["status"] as? String == "entered-in-error")
        #expect(two["note"] == nil)
        #expect(
            (two["meta"] as? [String: Any])?["versionId"] as? String == remoteVersion2?["versionId"] as? String,
            "keeping the EHR's version wrote to the EHR")
        let three = try await server.json("Observation/obs-3")
        #expect(three["status"] as? String == "amended")
        #expect((three["note"] as? [[String: Any]])?.first?["text"] as? String == "merged by the reviewer")

        let all = try #require(try fixture.outbox(all: true))
        #expect(all.first { $0.seq == seqByID["obs-1"] }?.state == "done")
        #expect(all.first { $0.seq == seqByID["obs-2"] }?.state == "discarded")
        #expect(all.first { $0.seq == seqByID["obs-3"] }?.state == "done")
        #expect(fixture.stop(signal: SIGTERM) == 0)
    }
}
