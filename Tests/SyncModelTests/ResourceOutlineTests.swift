import Foundation
import GRDB
import SyncTestSupport
import Testing

@testable import SyncModel

/// Resource outlines (id and references, sealed beside each body at ingest): the encoding,
/// and on a real replica holding `small`: every stored row gets one, `$everything` serves
/// the same with or without them, the upgrade fills rows stored before them, and an outline
/// moved to another row is neither served nor passed by `verify`.
@Suite struct ResourceOutlineTests {
    // MARK: The value

    @Test(arguments: [
        ResourceOutline(id: "e1", references: []),
        ResourceOutline(id: "e1", references: ["Patient/p1", "Practitioner/x", "Patient/p1"]),
        ResourceOutline(id: "Hélène-1", references: ["", "urn:uuid:0b6f", "http://h/fhir/Location/l 9", "a\"b\\c\n"]),
    ])
    func encodingRoundTrips(_ outline: ResourceOutline) {
        #expect(ResourceOutline(encoded: outline.encoded()) == outline)
    }

    @Test func encodingRefusesWhatItDidNotWrite() {
        let good = ResourceOutline(id: "o1", references: ["Patient/p1"]).encoded()
        #expect(ResourceOutline(encoded: Data()) == nil)
        #expect(ResourceOutline(encoded: Data([1])) == nil, "no id")
        #expect(ResourceOutline(encoded: Data([2]) + good.dropFirst()) == nil, "another format")
        for cut in 1..<good.count {
            #expect(ResourceOutline(encoded: good.prefix(cut)) == nil || cut == 7, "truncated at \(cut)")
        }
        // A cut right after the id (1 + 4 + 2 bytes) is a whole outline without references.
        #expect(ResourceOutline(encoded: good.prefix(7)) == ResourceOutline(id: "o1", references: []))
    }

    @Test func theReadPathKeepsOnlyRelativeReferencesToTheTypesAsked() throws {
        let outline = ResourceOutline(
            id: "e1",
            references: [
                "Patient/p1", "Practitioner/x", "http://ehr/fhir/Practitioner/y", "#contained", "Location/l9",
                "Practitioner", String(repeating: "P", count: 70) + "/z",
            ])
        let read = try #require(
            outline.encoded().withUnsafeBytes {
                ResourceOutline.idAndReferences(encoded: $0, to: ["Practitioner", "Location"])
            })
        #expect(read.id == "e1")
        #expect(read.references == ["Practitioner/x", "Location/l9"])
    }

    @Test func theOutlineOfAResourceIsWhatTheScanFinds() throws {
        let outline = try Data(EverythingTests.encounter.utf8).withUnsafeBytes { raw in try ResourceOutline(json: raw) }
        #expect(outline == ResourceOutline(id: "e1", references: ["Location/l9", "Patient/p1", "Practitioner/x"]))
        #expect(throws: JSONSlicer.Error.self) {
            try Data(#"{"resourceType":"Basic"}"#.utf8).withUnsafeBytes { raw in try ResourceOutline(json: raw) }
        }
    }

    // MARK: On a replica

    static func replicaWithSmall(_ dir: TemporaryDirectory, kek: KeyEncryptionKey = .generate()) throws -> (
        Replica, [String]
    ) {
        let replica = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        let lines = try TestData.allLines("small")
        #expect(try replica.apply(lines).inserted == lines.count)
        let patients = try TestData.lines("small", type: "Patient").map {
            try #require(JSONValue(data: $0)["id"]?.stringValue)
        }
        return (replica, patients)
    }

    static func withoutOutlines(_ path: String) throws -> Int {
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "UPDATE resource SET outline = NULL")
            try db.execute(sql: "UPDATE replica_meta SET value = CAST('0' AS BLOB) WHERE name = 'outline_fill'")
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM resource WHERE deleted = 0")!
        }
    }

    static func missingOutlines(_ path: String) throws -> Int {
        try DatabaseQueue(path: path).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM resource WHERE deleted = 0 AND outline IS NULL")!
        }
    }

    @Test func everyStoredRowGetsAnOutlineAndANewReplicaHasNothingToFill() throws {
        let dir = try TemporaryDirectory()
        let (replica, _) = try Self.replicaWithSmall(dir)
        defer { replica.close() }
        #expect(try Self.missingOutlines(dir.file(Replica.fileName)) == 0)
        #expect(try replica.fillOutlines() == 0)
        let report = try replica.verify()
        #expect(report.ok)
        #expect(report.rowsChecked == 5828)
    }

    @Test func rowsStoredBeforeOutlinesAreServedAlikeAndFilledByTheUpgrade() throws {
        let dir = try TemporaryDirectory()
        let (replica, patients) = try Self.replicaWithSmall(dir)
        defer { replica.close() }
        let path = dir.file(Replica.fileName)
        let before = try patients.map { try #require(try replica.everything(patientID: $0)) }

        let live = try Self.withoutOutlines(path)
        // Without outlines each row is scanned: the same answer.
        #expect(try patients.map { try #require(try replica.everything(patientID: $0)) } == before)

        var batches = 0
        var looked = 0
        while true {
            let n = try replica.fillOutlines(batch: 1000)
            if n == 0 { break }
            looked += n
            batches += 1
        }
        #expect(looked == live)
        #expect(batches == (live + 999) / 1000)
        #expect(try Self.missingOutlines(path) == 0)
        #expect(try replica.fillOutlines() == 0, "done is remembered")
        #expect(try patients.map { try #require(try replica.everything(patientID: $0)) } == before)
        #expect(try replica.verify().ok)
    }

    @Test func anOutlineMovedToAnotherRowIsNotServedAndVerifyNamesTheRow() throws {
        let dir = try TemporaryDirectory()
        let kek = KeyEncryptionKey.generate()
        let (replica, patients) = try Self.replicaWithSmall(dir, kek: kek)
        let before = try #require(try replica.everything(patientID: patients[0]))
        let patient = replica.blind(type: "Patient", id: patients[0])
        replica.close()
        let path = dir.file(Replica.fileName)
        // Give one of the patient's Observations the outline of another Observation.
        let target = try DatabaseQueue(path: path).write { db -> Int64 in
            let rows = try Int64.fetchAll(
                db, sql: "SELECT row FROM resource WHERE type = 'Observation' AND deleted = 0 ORDER BY row")
            let target = try #require(
                try Int64.fetchOne(
                    db, sql: "SELECT row FROM resource WHERE type = 'Observation' AND patient = ? ORDER BY row LIMIT 1",
                    arguments: [patient]))
            let other = try #require(rows.first { $0 != target })
            try db.execute(
                sql: "UPDATE resource SET outline = (SELECT outline FROM resource WHERE row = ?) WHERE row = ?",
                arguments: [other, target])
            return target
        }
        let reopened = try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
        defer { reopened.close() }
        // The moved outline does not open there: the row is read from its own body.
        #expect(try reopened.everything(patientID: patients[0]) == before)
        let report = try reopened.verify()
        #expect(report.failures == [ReplicaError.integrity(resourceType: "Observation", row: target).description])
    }

    @Test func aTombstoneHasNoOutlineAndARevivalGetsOneAgain() throws {
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        defer { replica.close() }
        let path = dir.file(Replica.fileName)
        try replica.apply([resourceJSON("Condition", "c1")])
        try replica.applyDeletion(type: "Condition", id: "c1", versionId: "2")
        let outlines = { () throws -> [Data?] in
            try DatabaseQueue(path: path).read { db in try Data?.fetchAll(db, sql: "SELECT outline FROM resource") }
        }
        #expect(try outlines() == [nil])
        try replica.apply([resourceJSON("Condition", "c1", version: "3")])
        #expect(try outlines().allSatisfy { $0 != nil })
        #expect(try replica.verify().ok)
    }
}
