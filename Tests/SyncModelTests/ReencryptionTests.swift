import Crypto
import Foundation
import GRDB
import SyncTestSupport
import Testing

@testable import SyncModel
@testable import SyncStore

/// Re-keying (#13 item 8): a new data key, every sealed value re-sealed with it in batches,
/// reads served meanwhile, resumable, a new recovery key; afterwards the old key opens
/// nothing in the file.
@Suite struct ReencryptionTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()
    let newKEK = KeyEncryptionKey.generate()

    init() throws { dir = try TemporaryDirectory() }

    var dbPath: String { dir.file(Replica.fileName) }

    func open(_ key: KeyEncryptionKey) throws -> Replica {
        try Replica.open(directory: dir.path, kek: key, keySource: "test key")
    }

    /// A replica with a value in every sealed column, and what the tests read back.
    func filledReplica() throws -> Replica {
        let replica = try open(kek)
        try replica.records.apply(
            (1...40).map { resourceJSON("Observation", "o\($0)", extra: #","subject":{"reference":"Patient/p1"}"#) }
                + [resourceJSON("Patient", "p1", extra: #","name":[{"family":"Durand"}]"#)],
            state: [.cursor: "2026-12-01T00:00:00Z"])
        try replica.records.applyDeletion(type: "Observation", id: "o40", versionId: "2")
        _ = try replica.outbox.enqueue(
            LocalChange(
                operation: .create, resourceType: "Observation", id: nil,
                resource: Data(#"{"resourceType":"Observation","status":"final"}"#.utf8), author: "dr"))
        try replica.accounts.save(
            StaffAccount(
                name: "amartin", displayName: "Dr A. Martin", language: "fr", passwordHash: "x",
                createdAt: "2026-12-01T00:00:00.000Z", passwordChangedAt: "2026-12-01T00:00:00.000Z"),
            actor: "test", action: "user-add")
        try replica.attachments.store(url: "http://ehr/Binary/1", data: Data("scanned letter".utf8))
        try replica.audit.append(AuditRecord(at: "2026-12-01T00:00:00.000Z", actor: "dr", action: "view-summary"))
        return replica
    }

    /// Everything the tests read back, the same before, during and after a re-key.
    func readBack(_ replica: Replica) throws -> [String] {
        var seen: [String] = []
        seen.append(
            String(decoding: try #require(try replica.records.resource(type: "Patient", id: "p1")).json, as: UTF8.self))
        seen.append(
            String(
                decoding: try #require(try replica.records.resource(type: "Observation", id: "o7")).json, as: UTF8.self)
        )
        seen.append(try #require(try replica.accounts.account(named: "amartin")).displayName)
        seen.append(
            String(decoding: try #require(try replica.attachments.data(url: "http://ehr/Binary/1")), as: UTF8.self))
        seen.append("\(try replica.outbox.entries().count) queued")
        seen.append(try replica.syncState.value(.cursor) ?? "no cursor")
        seen.append("\(try replica.everything(patientID: "p1")?.count ?? 0) in the compartment")
        return seen
    }

    func finish(_ replica: Replica, limit: Int = 500) throws -> Int {
        var steps = 0
        while try replica.resealBatch(limit: limit).more { steps += 1 }
        return steps
    }

    /// Every sealed value of the file that `ring` opens (none, for a key that was replaced).
    func valuesOpened(by ring: KeyRing) throws -> Int {
        try DatabaseQueue(path: dbPath).read { db in
            var opened = 0
            for column in SealedColumn.all {
                let columns = (["\(column.column) AS reseal_value"] + column.contextColumns).joined(separator: ", ")
                for row in try Row.fetchAll(db, sql: "SELECT \(columns) FROM \(column.table)") {
                    if let context = column.context(row), ring.open(row["reseal_value"], context: context) != nil {
                        opened += 1
                    }
                }
            }
            for row in try Row.fetchAll(db, sql: "SELECT seq, body FROM audit_log") {
                if ring.open(row["body"], context: Data("a1|\(row["seq"] as Int64)".utf8)) != nil { opened += 1 }
            }
            return opened
        }
    }

    func ring(unwrapping column: String, with key: KeyEncryptionKey) throws -> KeyRing {
        try DatabaseQueue(path: dbPath).read { db in
            let wrapped = try #require(try Data.fetchOne(db, sql: "SELECT \(column) FROM keyring"))
            let rid = try #require(
                try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'replica_id'"))
            let bundle = try #require(KeyRing.unwrap(wrapped, with: key, replicaID: rid))
            return try #require(KeyRing(bundle: bundle, replicaID: rid, resealing: false))
        }
    }

    @Test func aRekeyResealsEverythingWhileReadsAreServed() throws {
        let replica = try filledReplica()
        let before = try readBack(replica)
        let lines = try replica.audit.verify()
        #expect(lines == .success(2))
        let oldRing = try ring(unwrapping: "wrapped_dek", with: kek)
        #expect(try valuesOpened(by: oldRing) > 40)

        let recovery = try replica.beginReencryption(newKEK: newKEK)
        #expect(try replica.isReencrypting())
        // Nothing re-sealed yet but the trail: every read is served, and verifies.
        #expect(try readBack(replica) == before)
        #expect(try replica.audit.verify() == lines)
        #expect(try replica.rowSetProblems(full: true) == [])
        let progress = try #require(try replica.reencryptionProgress())
        #expect(progress.done == 0 && progress.total > 40 && progress.pass == 1)

        // Writes meanwhile are sealed with the new key.
        try replica.records.apply([resourceJSON("Observation", "o7", version: "3")])
        let after = try readBack(replica)
        #expect(after[1] == String(decoding: resourceJSON("Observation", "o7", version: "3"), as: UTF8.self))
        #expect(try finish(replica, limit: 7) > 6)
        #expect(try replica.isReencrypting() == false)
        #expect(try replica.reencryptionProgress() == nil)
        #expect(try readBack(replica) == after)
        #expect(try replica.records.verify().ok)
        #expect(try replica.rowSetProblems(full: true) == [])
        #expect(try replica.audit.verify() == lines)
        replica.close()

        // The old key opens neither the replica nor any value in it.
        #expect(throws: ReplicaError.self) { try open(kek) }
        #expect(try valuesOpened(by: oldRing) == 0)
        #expect(try readBack(try open(newKEK)) == after)
        #expect(try readBack(try open(recovery.keyEncryptionKey)) == after)
    }

    @Test func aRekeyResumesAfterARestart() throws {
        let replica = try filledReplica()
        let before = try readBack(replica)
        _ = try replica.beginReencryption(newKEK: newKEK)
        #expect(try replica.resealBatch(limit: 10).resealed == 10)
        replica.close()
        // Stopped half-way: opened with the new key, half the rows still under the old one.
        let reopened = try open(newKEK)
        #expect(try reopened.isReencrypting())
        #expect(try readBack(reopened) == before)
        #expect(try reopened.reencryptionProgress()?.done == 10)
        let second = #expect(throws: ReplicaError.self) { _ = try reopened.beginReencryption(newKEK: kek) }
        #expect(second?.description.hasPrefix("a re-encryption is still running") == true)
        _ = try finish(reopened)
        #expect(try reopened.records.verify().ok)
        #expect(try reopened.rowSetProblems(full: true) == [])
        reopened.close()
        let oldRing = try ring(unwrapping: "wrapped_dek", with: newKEK)
        #expect(try valuesOpened(by: oldRing) > 40, "the current key opens everything")
        #expect(try readBack(try open(newKEK)) == before)
    }

    @Test func aVersionPreparedBeforeTheRekeyIsSealedWithTheNewKey() throws {
        let replica = try filledReplica()
        let prepared = try replica.records.prepare(resourceJSON("Observation", "late", version: "1"))
        _ = try replica.beginReencryption(newKEK: newKEK)
        try replica.records.apply(prepared: [prepared])
        _ = try finish(replica)
        #expect(try replica.records.resource(type: "Observation", id: "late") != nil)
        replica.close()
        #expect(try open(newKEK).records.verify().ok)
    }

    @Test func aBrokenTrailRefusesTheRekeyAndChangesNothing() throws {
        let replica = try filledReplica()
        try replica.audit.append(AuditRecord(at: "2026-12-01T00:00:01.000Z", actor: "dr", action: "view-summary"))
        replica.close()
        try DatabaseQueue(path: dbPath).write { db in try db.execute(sql: "DELETE FROM audit_log WHERE seq = 1") }
        let reopened = try open(kek)
        #expect(throws: ReplicaError.self) { _ = try reopened.beginReencryption(newKEK: newKEK) }
        #expect(try reopened.isReencrypting() == false)
        reopened.close()
        #expect(throws: ReplicaError.self) { try open(newKEK) }
        _ = try open(kek)
    }
}
