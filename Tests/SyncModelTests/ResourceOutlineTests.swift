import Foundation
import GRDB
import SyncTestSupport
import Testing

@testable import SyncModel
@testable import SyncStore

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

    @Test func aBodyCarriesItsOutlineAfterTheJSON() throws {
        let json = Data(EverythingTests.encounter.utf8)
        let outline = ResourceOutline(id: "e1", references: ["Patient/p1"])
        let body = outline.appended(to: json)
        let parts = try #require(ResourceOutline.split(body))
        #expect(parts.json == json)
        #expect(parts.outline.flatMap(ResourceOutline.init(encoded:)) == outline)
        #expect(parts.outline.flatMap(ResourceOutline.id(encoded:)) == "e1")
        // A body from before outlines is all JSON, whatever it ends with.
        for old in [json, json + Data(" \n".utf8), Data("{}".utf8), Data()] {
            let split = try #require(ResourceOutline.split(old))
            #expect(split.json == old && split.outline == nil)
        }
        // A trailer whose length does not fit is no body of ours.
        var broken = body
        broken[broken.count - 8] = 0xFF
        broken[broken.count - 5] = 0x7F
        #expect(ResourceOutline.split(broken) == nil)
    }

    // MARK: On a replica

    static func replicaWithSmall(_ dir: TemporaryDirectory) throws -> (Replica, [String]) {
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        let lines = try TestData.allLines("small")
        #expect(try replica.records.apply(lines).inserted == lines.count)
        let patients = try TestData.lines("small", type: "Patient").map {
            try #require(JSONValue(data: $0)["id"]?.stringValue)
        }
        return (replica, patients)
    }

    /// Re-seals every live body as a replica before v6 stored it (the JSON alone), or with
    /// `outline` instead of its own; returns how many rows it rewrote.
    static func reseal(_ replica: Replica, _ path: String, outline: ResourceOutline? = nil, onlyRow: Int64? = nil)
        throws -> Int
    {
        try OutsideWriter.write(path) { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT row, type, bid, version_id, body FROM resource WHERE deleted = 0 ORDER BY row")
            var count = 0
            for row in rows where onlyRow == nil || onlyRow == (row[0] as Int64) {
                let context = ResourceStore.context(type: row[1], bid: row[2], versionId: row[3], deleted: false)
                let body = try #require(replica.keys.open(row[4], context: context))
                let json = try #require(ResourceOutline.split(body)).json
                let sealed = try replica.keys.seal(outline?.appended(to: json) ?? json, context: context)
                try db.execute(sql: "UPDATE resource SET body = ? WHERE row = ?", arguments: [sealed, row[0]])
                count += 1
            }
            try db.execute(sql: "UPDATE replica_meta SET value = CAST('0' AS BLOB) WHERE name = 'outline_fill'")
            return count
        }
    }

    @Test func everyStoredRowCarriesAnOutlineAndANewReplicaHasNothingToFill() throws {
        let dir = try TemporaryDirectory()
        let (replica, _) = try Self.replicaWithSmall(dir)
        defer { replica.close() }
        #expect(try replica.records.fillOutlines() == 0)
        let report = try replica.records.verify()
        #expect(report.ok)
        #expect(report.rowsChecked == 5828)
        #expect(report.rowsWithoutOutline == 0)
        // What is read is the JSON the server sent, not the outline after it.
        for line in try TestData.lines("small", type: "Condition").prefix(50) {
            let id = try #require(JSONValue(data: line)["id"]?.stringValue)
            #expect(try replica.records.resource(type: "Condition", id: id)?.json == line)
        }
    }

    @Test func rowsStoredBeforeOutlinesAreServedAlikeAndFilledByTheUpgrade() throws {
        let dir = try TemporaryDirectory()
        let (replica, patients) = try Self.replicaWithSmall(dir)
        defer { replica.close() }
        let before = try patients.map { try #require(try replica.everything(patientID: $0)) }

        let live = try Self.reseal(replica, dir.file(Replica.fileName))
        #expect(try replica.records.verify().rowsWithoutOutline == live)
        // Without outlines each row is scanned: the same answer.
        #expect(try patients.map { try #require(try replica.everything(patientID: $0)) } == before)

        var batches = 0
        var looked = 0
        while true {
            let n = try replica.records.fillOutlines(batch: 1000)
            if n == 0 { break }
            looked += n
            batches += 1
        }
        #expect(looked == live)
        #expect(batches == (live + 999) / 1000)
        let report = try replica.records.verify()
        #expect(report.ok && report.rowsWithoutOutline == 0)
        #expect(try replica.records.fillOutlines() == 0, "done is remembered")
        #expect(try patients.map { try #require(try replica.everything(patientID: $0)) } == before)
    }

    @Test func verifyNamesABodyWhoseOutlineDisagreesWithItsJSON() throws {
        let dir = try TemporaryDirectory()
        let (replica, _) = try Self.replicaWithSmall(dir)
        defer { replica.close() }
        let path = dir.file(Replica.fileName)
        let row = try #require(
            try DatabaseQueue(path: path).read { db in
                try Int64.fetchOne(db, sql: "SELECT row FROM resource WHERE type = 'Observation' ORDER BY row LIMIT 1")
            })
        let wrong = ResourceOutline(id: "someone-else", references: ["Practitioner/x"])
        #expect(try Self.reseal(replica, path, outline: wrong, onlyRow: row) == 1)
        let report = try replica.records.verify()
        #expect(report.failures == [ReplicaError.integrity(resourceType: "Observation", row: row).description])
    }

    @Test func aTombstoneAndARevivalReadBackAsJSON() throws {
        let dir = try TemporaryDirectory()
        let replica = try Replica.open(directory: dir.path, kek: .generate(), keySource: "test key")
        defer { replica.close() }
        try replica.records.apply([resourceJSON("Condition", "c1")])
        try replica.records.applyDeletion(type: "Condition", id: "c1", versionId: "2")
        #expect(
            try replica.records.resource(type: "Condition", id: "c1", includeDeleted: true)?.json
                == resourceJSON("Condition", "c1"))
        try replica.records.apply([resourceJSON("Condition", "c1", version: "3")])
        #expect(
            try replica.records.resource(type: "Condition", id: "c1")?.json
                == resourceJSON("Condition", "c1", version: "3"))
        #expect(try replica.records.verify().ok)
    }
}
