import Foundation
import GRDB
import SyncTestSupport
import Testing

@testable import SyncModel
@testable import SyncServer
@testable import SyncStore

/// `Patient/[id]/$everything` on a real replica holding `small`: the fast path (stored bytes,
/// one scan a row) gives what the overlay path (parse, lay local changes over, re-serialise)
/// gives, and the single-pass reference scan finds what the tree walk finds.
@Suite(.serialized) struct EverythingTests {
    static let encounter = #"""
        {"resourceType":"Encounter","id":"e1",
         "contained":[{"resourceType":"Practitioner","id":"inner","x":{"reference":"Location/l9"}}],
         "subject":{"reference":"Patient\/p1"},
         "participant":[{"individual":{"reference":"Practitioner/x","display":"Dr \"A\""}}],
         "note":[{"text":"{\"reference\":\"Practitioner/fake\",\"id\":\"fake\"}"}],
         "count":-1.5e3,"ok":true,"none":null}
        """#

    @Test func theScanReadsTopLevelIdentityAndEveryReference() throws {
        let scan = try Data(Self.encounter.utf8).withUnsafeBytes { raw in
            try JSONSlicer.identityAndReferences(ofRaw: raw)
        }
        #expect(scan.resourceType == "Encounter")
        #expect(scan.id == "e1", "the contained resource's id is not the resource's")
        #expect(scan.references == ["Location/l9", "Patient/p1", "Practitioner/x"])
        let filtered = try Data(Self.encounter.utf8).withUnsafeBytes { raw in
            try JSONSlicer.identityAndReferences(ofRaw: raw, referenceTypes: ["Practitioner", "Location"])
        }
        #expect(filtered.references == ["Location/l9", "Practitioner/x"])
        #expect(filtered.id == "e1")
    }

    @Test(arguments: [#"{"id":"a""#, #"{"id":"a"} x"#, #"["id"]"#, #"{"id":"a",}"#, ""])
    func theScanRefusesWhatIsNotOneObject(_ text: String) {
        #expect(throws: JSONSlicer.Error.self) {
            try Data(text.utf8).withUnsafeBytes { raw in try JSONSlicer.identityAndReferences(ofRaw: raw) }
        }
    }

    /// Strings are skipped 8 bytes at a time: quotes, escapes and control bytes are found at
    /// every place around those boundaries.
    @Test func stringsAreSkippedRightAtEveryOffset() throws {
        func scan(_ text: String) throws(JSONSlicer.Error) -> String? {
            let data = Data(text.utf8)
            return try data.withUnsafeBytes { raw in
                Result { () throws(JSONSlicer.Error) in try JSONSlicer.identityAndReferences(ofRaw: raw) }
            }.get().id
        }
        for length in 0..<50 {
            for place in 0...length {
                let before = String(repeating: "a", count: place)
                let after = String(repeating: "b", count: length - place)
                #expect(try scan(#"{"note":"\#(before)\"\#(after)","id":"x"}"#) == "x")
                #expect(try scan(#"{"note":"\#(before)\\\#(after)","id":"x"}"#) == "x")
                #expect(try scan(#"{"note":"\#(before)é\#(after)","id":"x"}"#) == "x")
                #expect(throws: JSONSlicer.Error.self) { try scan("{\"note\":\"\(before)\n\(after)\",\"id\":\"x\"}") }
            }
            let filler = String(repeating: "c", count: length)
            #expect(throws: JSONSlicer.Error.self) { try scan(#"{"id":"x","note":"\#(filler)"#) }
            #expect(throws: JSONSlicer.Error.self) { try scan(#"{"id":"x","note":"\#(filler)\"}"#) }
        }
    }

    @Test func theScanFindsWhatTheTreeWalkFindsInEveryResourceOfSmall() throws {
        var checked = 0
        for line in try TestData.allLines("small") {
            let scan = try line.withUnsafeBytes { raw in try JSONSlicer.identityAndReferences(ofRaw: raw) }
            let value = try JSONValue(data: line)
            #expect(scan.id == value["id"]?.stringValue)
            #expect(scan.resourceType == value["resourceType"]?.stringValue)
            let fromScan = Set(scan.references.compactMap(ResourceReferences.key))
            #expect(fromScan == Set(ResourceReferences.collect(value)))
            checked += 1
        }
        #expect(checked == 5828)
    }

    @Test func theFastPathServesWhatTheOverlayPathServes() throws {
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        defer { replica.close() }
        let lines = try TestData.allLines("small")
        #expect(try replica.records.apply(lines).inserted == lines.count)
        let stored = Set(lines)
        let patients = try TestData.lines("small", type: "Patient").map {
            try #require(JSONValue(data: $0)["id"]?.stringValue)
        }
        #expect(patients.count == 20)
        #expect(try replica.openOverlayTypes().isEmpty)

        var total = 0
        for id in patients {
            let fast = try #require(try replica.everything(patientID: id))
            let slow = try #require(try replica.everythingOverlaid(patientID: id, types: nil, overlayTypes: []))
            // The same resources; the compartment in storage order (referenced resources come
            // in document order here, in key order there).
            func key(_ e: SearchBundle.Entry) -> String { "\(e.resourceType)/\(e.id)" }
            func compartment(_ list: [SearchBundle.Entry]) -> [String] {
                list.filter { !ServerCapabilities.referenceTypes.contains($0.resourceType) }.map(key)
            }
            #expect(fast.map(key).sorted() == slow.map(key).sorted())
            #expect(compartment(fast) == compartment(slow))
            let slowJSON = Dictionary(uniqueKeysWithValues: slow.map { (key($0), $0.json) })
            for entry in fast {
                #expect(try JSONValue(data: entry.json) == JSONValue(data: try #require(slowJSON[key(entry)])))
            }
            #expect(fast.first?.resourceType == "Patient" && fast.first?.id == id)
            // Served as stored: the bytes the server sent.
            #expect(fast.allSatisfy { stored.contains($0.json) })
            #expect(fast.contains { $0.resourceType == "Practitioner" || $0.resourceType == "Organization" })
            #expect(Set(fast.map { "\($0.resourceType)/\($0.id)" }).count == fast.count, "each resource once")

            // Only the types asked for (the Patient always), in the same order.
            let summary = try #require(try replica.everything(patientID: id, types: PatientSummary.resourceTypes))
            #expect(summary.first?.id == id)
            #expect(summary.allSatisfy { PatientSummary.resourceTypes.contains($0.resourceType) })
            #expect(
                summary.map(\.id) == fast.filter { PatientSummary.resourceTypes.contains($0.resourceType) }.map(\.id))
            total += fast.count
        }
        #expect(total > 5000)
        #expect(try replica.everything(patientID: "no-such-patient") == nil)
    }

    @Test func anOpenLocalChangeShowsInEverything() throws {
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        defer { replica.close() }
        #expect(try replica.records.apply(try TestData.allLines("small")).inserted == 5828)
        let first = try #require(try TestData.lines("small", type: "Patient").first)
        let patient = try #require(try JSONValue(data: first)["id"]?.stringValue)
        let before = try #require(try replica.everything(patientID: patient))
        let note =
            #"{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/\#(patient)"}}"#
        let queued = try replica.outbox.enqueue(
            LocalChange(
                operation: .create, resourceType: "Observation", id: nil, resource: Data(note.utf8), author: "alice"),
            isInFlight: { _ in false })
        let after = try #require(try replica.everything(patientID: patient))
        #expect(after.count == before.count + 1)
        let created = try #require(after.first { $0.id == queued.localID })
        let tag = try JSONValue(data: created.json)["meta"]?["tag"]?.arrayValue?.first
        #expect(tag?["system"]?.stringValue == PendingTag.system)
    }
}

/// The queries of patient-wide reads and of status counts use their indexes on a replica with
/// every index in place: a patient's records come from the patient index (an index ordered
/// by type once drew the planner to scanning every live row), counts never read the bodies.
@Suite struct ReplicaQueryPlanTests {
    func plan(_ sql: String, _ replica: Replica, path: String) throws -> String {
        try DatabaseQueue(path: path).read { db in
            // Any values for the placeholders: the plan does not depend on them here.
            let placeholders = sql.filter { $0 == "?" }.count
            return try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN " + sql,
                arguments: StatementArguments(Array(repeating: "x", count: placeholders))
            ).map { $0["detail"] as String }.joined(separator: "; ")
        }
    }

    @Test func patientReadsUseThePatientIndexAndCountsNeverScanBodies() throws {
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        defer { replica.close() }
        try replica.records.apply(try TestData.allLines("small"))
        let path = dir.file(Replica.fileName)
        for count in [nil, 1, 8] {
            let sql = Replica.compartmentSQL(typeCount: count)
            let detail = try plan(sql, replica, path: path)
            #expect(detail.contains("USING INDEX resource_by_patient"), "\(sql): \(detail)")
            #expect(!detail.contains("TEMP B-TREE"), "no sort: \(detail)")
        }
        for sql in [
            "SELECT type, COUNT(*) FROM resource GROUP BY type",
            "SELECT type, COUNT(*) FROM resource WHERE deleted = 1 GROUP BY type",
        ] {
            let detail = try plan(sql, replica, path: path)
            #expect(detail.contains("INDEX"), "\(sql): \(detail)")
        }
        #expect(try replica.records.count() == 5828)
        let before = try replica.records.counts()
        #expect(before.values.reduce(0, +) == 5828)
        // A tombstone leaves the counts (all rows minus tombstones).
        let line = try #require(try TestData.lines("small", type: "Condition").first)
        let condition = try #require(try JSONValue(data: line)["id"]?.stringValue)
        try replica.records.applyDeletion(type: "Condition", id: condition, versionId: "999")
        #expect(try replica.records.count() == 5827)
        #expect(try replica.records.count(type: "Condition") == before["Condition"]! - 1)
        #expect(try replica.records.counts()["Condition"] == before["Condition"]! - 1)
    }
}
