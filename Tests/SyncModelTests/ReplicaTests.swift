import Foundation
import GRDB
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

func resourceJSON(_ type: String, _ id: String, version: String? = "1", extra: String = "") -> Data {
    let meta =
        version.map { #","meta":{"versionId":"\#($0)","lastUpdated":"2026-01-0\#(min(Int($0) ?? 1, 9))T10:00:00Z"}"# }
        ?? ""
    return Data(#"{"resourceType":"\#(type)","id":"\#(id)"\#(meta)\#(extra)}"#.utf8)
}

@Suite struct ReplicaTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()

    init() throws { dir = try TemporaryDirectory() }

    func open(_ key: KeyEncryptionKey? = nil) throws -> Replica {
        try Replica.open(directory: dir.path, kek: key ?? kek, keySource: "test key")
    }

    var dbPath: String { dir.file(Replica.fileName) }

    @Test func sealedResourcesRoundTrip() throws {
        let replica = try open()
        let patient = resourceJSON("Patient", "p1", extra: #","name":[{"family":"Durand","given":["Hélène"]}]"#)
        let outcome = try replica.records.apply([
            patient, resourceJSON("Observation", "o1", extra: #","subject":{"reference":"Patient/p1"}"#),
        ])
        #expect(outcome.inserted == 2)
        let read = try #require(try replica.records.resource(type: "Patient", id: "p1"))
        #expect(read.json == patient)
        #expect(read.versionId == "1")
        #expect(try replica.records.resource(type: "Patient", id: "nope") == nil)
        replica.close()
        let reopened = try open()
        #expect(try reopened.records.resource(type: "Patient", id: "p1")?.json == patient)
        #expect(try reopened.records.count() == 2)
    }

    @Test func wrongKeyIsRefusedAndLeavesTheFileUnchanged() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Patient", "p1")])
        replica.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: dbPath))
        let error = #expect(throws: ReplicaError.self) { try open(KeyEncryptionKey.generate()) }
        #expect(error == .wrongKey(source: "test key", path: dbPath))
        #expect(error?.description.contains("test key") == true)
        let after = try Data(contentsOf: URL(fileURLWithPath: dbPath))
        #expect(before == after)
        #expect(try open().records.count() == 1)
    }

    @Test func tamperedRowsAreIntegrityErrorsNotData() throws {
        let replica = try open()
        try replica.records.apply([
            resourceJSON("Patient", "p1"), resourceJSON("Patient", "p2"), resourceJSON("Condition", "c1"),
        ])
        replica.close()
        let rows = try OutsideWriter.write(dbPath) { db -> [Int64] in
            let rows = try Int64.fetchAll(db, sql: "SELECT row FROM resource WHERE type = 'Patient' ORDER BY row")
            // Swap the two patients' sealed bodies.
            let a = try Data.fetchOne(db, sql: "SELECT body FROM resource WHERE row = ?", arguments: [rows[0]])!
            let b = try Data.fetchOne(db, sql: "SELECT body FROM resource WHERE row = ?", arguments: [rows[1]])!
            try db.execute(sql: "UPDATE resource SET body = ? WHERE row = ?", arguments: [b, rows[0]])
            try db.execute(sql: "UPDATE resource SET body = ? WHERE row = ?", arguments: [a, rows[1]])
            // Flip one bit of the condition's body.
            var c = try Data.fetchOne(db, sql: "SELECT body FROM resource WHERE type = 'Condition'")!
            c[c.count - 20] ^= 0x01
            try db.execute(sql: "UPDATE resource SET body = ? WHERE type = 'Condition'", arguments: [c])
            return rows
        }
        let reopened = try? open()
        // The patient index is built at open; a tampered Patient makes open fail loudly.
        #expect(reopened == nil)
        let error = #expect(throws: ReplicaError.self) { try open() }
        // Both swapped rows fail; which is met first depends on SQLite's scan order.
        #expect(rows.map { ReplicaError.integrity(resourceType: "Patient", row: $0) }.contains(error))
    }

    @Test func flippedTombstoneAndMovedRowsAreDetected() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Condition", "c1"), resourceJSON("Condition", "c2")])
        try replica.records.applyDeletion(type: "Condition", id: "c1", versionId: "2")
        #expect(try replica.records.resource(type: "Condition", id: "c1") == nil)
        replica.close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "UPDATE resource SET deleted = 0 WHERE deleted = 1")
            // Move c2's body under a different versionId.
            try db.execute(sql: "UPDATE resource SET version_id = '7' WHERE deleted = 0 AND version_id = '1'")
        }
        let reopened = try open()
        #expect(throws: ReplicaError.self) { try reopened.records.resource(type: "Condition", id: "c1") }
        #expect(throws: ReplicaError.self) { try reopened.records.resource(type: "Condition", id: "c2") }
        let report = try reopened.records.verify()
        #expect(report.rowsChecked == 2)
        #expect(report.failures.count == 2)
        #expect(report.sqlite == "ok")
    }

    @Test func migratesAnEmptyFile() throws {
        #expect(FileManager.default.createFile(atPath: dbPath, contents: Data()))
        let replica = try open()
        #expect(try replica.records.count() == 0)
        let tables = try replica.records.verify()
        #expect(tables.ok)
        let journal = try DatabaseQueue(path: dbPath).read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
    }

    @Test func keyRotationRewrapsWithoutRewritingRecords() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Patient", "p1"), resourceJSON("Observation", "o1")])
        let bodiesBefore = try DatabaseQueue(path: dbPath).read { db in
            try Data.fetchAll(db, sql: "SELECT body FROM resource ORDER BY row")
        }
        let newKEK = KeyEncryptionKey.generate()
        try replica.rotateKey(to: newKEK)
        replica.close()
        #expect(throws: ReplicaError.self) { try open(kek) }
        let rotated = try open(newKEK)
        #expect(try rotated.records.resource(type: "Observation", id: "o1") != nil)
        rotated.close()
        let bodiesAfter = try DatabaseQueue(path: dbPath).read { db in
            try Data.fetchAll(db, sql: "SELECT body FROM resource ORDER BY row")
        }
        #expect(bodiesBefore == bodiesAfter)
    }

    @Test func blindIndexesFindAPatientsResourcesAndPatientSearchWorks() throws {
        let replica = try open()
        try replica.records.apply([
            resourceJSON(
                "Patient", "p1",
                extra:
                    #","name":[{"family":"Lefèvre","given":["Anne","Marie"]}],"birthDate":"1970-02-03","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"170022A"}]"#
            ),
            resourceJSON(
                "Patient", "p2", extra: #","name":[{"family":"Martin","given":["Paul"]}],"birthDate":"1980-01-01""#),
            resourceJSON("Observation", "o1", extra: #","subject":{"reference":"Patient/p1"}"#),
            resourceJSON("AllergyIntolerance", "a1", extra: #","patient":{"reference":"Patient/p1"}"#),
            resourceJSON("Observation", "o2", extra: #","subject":{"reference":"Patient/p2"}"#),
            resourceJSON(
                "Claim", "cl1", extra: #","patient":{"reference":"https://ehr.example/fhir/Patient/p1/_history/3"}"#),
        ])
        let p1 = try replica.records.resources(forPatient: "p1").map { "\($0.resourceType)/\($0.id)" }
        #expect(Set(p1) == ["Patient/p1", "Observation/o1", "AllergyIntolerance/a1", "Claim/cl1"])
        #expect(try replica.records.resources(forPatient: "p1", types: ["Observation"]).map(\.id) == ["o1"])
        #expect(try replica.records.searchPatients(PatientQuery(name: "lefe")).map(\.id) == ["p1"])
        #expect(try replica.records.searchPatients(PatientQuery(family: "LEFEVRE", given: "mar")).map(\.id) == ["p1"])
        #expect(
            try replica.records.searchPatients(PatientQuery(identifier: "urn:oid:1.2.250.1.213.1.4.8|170022A")).map(
                \.id) == [
                    "p1"
                ])
        #expect(try replica.records.searchPatients(PatientQuery(birthDate: "1980-01-01")).map(\.id) == ["p2"])
        #expect(try replica.records.searchPatients(PatientQuery(name: "zzz")).isEmpty)
        replica.close()
        // The index is rebuilt from the sealed rows at open.
        #expect(try open().records.searchPatients(PatientQuery(name: "paul")).map(\.id) == ["p2"])
    }

    @Test func upsertsAreIdempotentAndRegressionsAreHeld() throws {
        let replica = try open()
        let v2 = resourceJSON("Condition", "c1", version: "2", extra: #","note":[{"text":"v2"}]"#)
        #expect(try replica.records.apply([v2]).inserted == 1)
        #expect(try replica.records.apply([v2]).unchanged == 1)
        let v1 = resourceJSON("Condition", "c1", version: "1")
        let outcome = try replica.records.apply([v1])
        #expect(outcome.held == 1)
        #expect(try replica.records.resource(type: "Condition", id: "c1")?.json == v2)
        let v3 = resourceJSON("Condition", "c1", version: "3")
        #expect(try replica.records.apply([v3]).updated == 1)
        #expect(try replica.records.resource(type: "Condition", id: "c1")?.versionId == "3")
    }

    @Test func badDataIsCountedAndSkipped() throws {
        let replica = try open()
        let outcome = try replica.records.apply([
            Data("not json".utf8), Data(#"{"id":"x"}"#.utf8), Data(#"{"resourceType":"Patient"}"#.utf8),
            resourceJSON("Patient", "ok"),
        ])
        #expect(outcome.inserted == 1)
        #expect(outcome.rejected.values.reduce(0, +) == 3)
    }

    @Test func tombstonesKeepTheLastContentButAreHidden() throws {
        let replica = try open()
        let body = resourceJSON("Patient", "p9", extra: #","name":[{"family":"Gone"}]"#)
        try replica.records.apply([body])
        #expect(try replica.records.applyDeletion(type: "Patient", id: "p9", versionId: "2") == .tombstoned)
        #expect(try replica.records.applyDeletion(type: "Patient", id: "p9", versionId: "2") == .alreadyDeleted)
        #expect(try replica.records.resource(type: "Patient", id: "p9") == nil)
        #expect(try replica.records.resource(type: "Patient", id: "p9", includeDeleted: true)?.json == body)
        #expect(try replica.records.searchPatients(PatientQuery(name: "gone")).isEmpty)
        #expect(try replica.records.count() == 0)
    }

    @Test func syncStateIsSealedAndAtomicWithPages() throws {
        let replica = try open()
        try replica.records.apply(
            [resourceJSON("Patient", "p1")], state: [.cursor: "https://ehr.example/fhir/Patient?page=Patient/p1"])
        #expect(try replica.syncState.value(.cursor) == "https://ehr.example/fhir/Patient?page=Patient/p1")
        try replica.syncState.set([.cursor: nil])
        #expect(try replica.syncState.value(.cursor) == nil)
    }
}
