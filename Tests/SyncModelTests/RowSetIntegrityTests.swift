import Foundation
import GRDB
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// Row-set integrity (#13 item 7): the sealed digest of each table follows every write the
/// replica makes, and finds what sealing each row cannot: a row deleted, an older sealed
/// version put back, an account revived, a queued change removed, a table rolled back.
@Suite struct RowSetIntegrityTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()

    init() throws { dir = try TemporaryDirectory() }

    func open() throws -> Replica {
        try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
    }

    var dbPath: String { dir.file(Replica.fileName) }

    func account(_ name: String, disabled: Bool = false) -> StaffAccount {
        StaffAccount(
            name: name, displayName: name, language: "fr", disabled: disabled, passwordHash: "x",
            createdAt: "2026-12-01T00:00:00.000Z", passwordChangedAt: "2026-12-01T00:00:00.000Z")
    }

    /// A replica that went through every kind of write: inserts, updates, tombstones, queued
    /// changes sent and squashed, accounts replaced, attachments, held changes.
    func busyReplica() throws -> Replica {
        let replica = try open()
        try replica.records.apply([
            resourceJSON("Patient", "p1"), resourceJSON("Patient", "p2"),
            resourceJSON("Condition", "c1", extra: #","subject":{"reference":"Patient/p1"}"#),
        ])
        try replica.records.apply([resourceJSON("Patient", "p1", version: "2")])
        try replica.records.applyDeletion(type: "Condition", id: "c1", versionId: "2")
        let queued = try replica.outbox.enqueue(
            LocalChange(
                operation: .create, resourceType: "Observation", id: nil,
                resource: Data(#"{"resourceType":"Observation","status":"final"}"#.utf8), author: "dr"))
        _ = try replica.outbox.enqueue(
            LocalChange(operation: .delete, resourceType: "Patient", id: "p2", resource: nil, author: "dr"))
        #expect(queued.seq > 0)
        try replica.accounts.save(account("amartin"), actor: "test", action: "user-add")
        try replica.accounts.save(account("amartin", disabled: true), actor: "test", action: "user-disable")
        try replica.attachments.store(url: "http://ehr/Binary/1", data: Data("scan".utf8))
        return replica
    }

    @Test func everyWriteOfTheReplicaKeepsTheDigests() throws {
        let replica = try busyReplica()
        #expect(try replica.rowSetProblems(full: true) == [])
        #expect(try replica.rowSetProblems(full: false) == [])
        replica.close()
        #expect(try open().rowSetProblems(full: true) == [])
    }

    @Test func aPlainSQLiteClientCannotWriteProtectedRows() throws {
        try busyReplica().close()
        #expect(throws: DatabaseError.self) {
            try DatabaseQueue(path: dbPath).write { db in try db.execute(sql: "DELETE FROM outbox") }
        }
        #expect(try open().rowSetProblems(full: true) == [])
    }

    @Test func aDeletedRecordIsFoundAtStartAndByVerify() throws {
        try busyReplica().close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "DELETE FROM resource WHERE row = (SELECT MIN(row) FROM resource)")
        }
        let replica = try open()
        let quick = try replica.rowSetProblems(full: false)
        #expect(quick.count == 1 && quick[0].hasPrefix("resource: 1 row(s) fewer"))
        #expect(try replica.rowSetProblems(full: true) == quick)
    }

    @Test func anOlderSealedVersionPutBackIsFoundByVerify() throws {
        let replica = try open()
        try replica.records.apply([resourceJSON("Patient", "p1"), resourceJSON("Patient", "p2")])
        let columns = "version_id, last_updated, content_hash, size, body"
        let old = try DatabaseQueue(path: dbPath).read { db in
            try Row.fetchOne(db, sql: "SELECT row, \(columns) FROM resource ORDER BY row LIMIT 1")!
        }
        try replica.records.apply([resourceJSON("Patient", "p1", version: "2")])
        replica.close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(
                sql:
                    "UPDATE resource SET version_id = ?, last_updated = ?, content_hash = ?, size = ?, body = ? WHERE row = ?",
                arguments: [old[1], old[2], old[3], old[4], old[5], old[0]])
        }
        let reopened = try open()
        // The row opens (it is a genuine older seal): only the digest tells.
        #expect(try reopened.records.resource(type: "Patient", id: "p1")?.versionId == "1")
        #expect(try reopened.records.verify().failures == [])
        #expect(
            try reopened.rowSetProblems(full: true) == [
                "resource: rows differ from the sealed set (changed, or an older copy put back)"
            ])
    }

    @Test func aRevivedAccountIsFoundAtStart() throws {
        let replica = try open()
        try replica.accounts.save(account("drb"), actor: "test", action: "user-add")
        let enabled = try DatabaseQueue(path: dbPath).read { db in
            try Data.fetchOne(db, sql: "SELECT body FROM staff_account WHERE name = 'drb'")!
        }
        try replica.accounts.save(account("drb", disabled: true), actor: "test", action: "user-disable")
        replica.close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "UPDATE staff_account SET body = ? WHERE name = 'drb'", arguments: [enabled])
        }
        let reopened = try open()
        #expect(try reopened.accounts.account(named: "drb")?.disabled == false)
        #expect(
            try reopened.rowSetProblems(full: false) == [
                "staff_account: rows differ from the sealed set (changed, or an older copy put back)"
            ])
    }

    @Test func aDeletedQueuedChangeIsFoundAtStart() throws {
        try busyReplica().close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "DELETE FROM outbox WHERE seq = (SELECT MAX(seq) FROM outbox)")
        }
        let problems = try open().rowSetProblems(full: false)
        #expect(problems.count == 1 && problems[0].hasPrefix("outbox: 1 row(s) fewer"))
    }

    /// An account's row and the sealed state put back from an older copy: every table is
    /// rolled back with it, so whatever else changed since (a queued change here) is found.
    @Test func aTableRolledBackWithTheSealedStateIsFoundByTheOthers() throws {
        let replica = try open()
        try replica.accounts.save(account("drb"), actor: "test", action: "user-add")
        let (body, state) = try DatabaseQueue(path: dbPath).read { db in
            (
                try Data.fetchOne(db, sql: "SELECT body FROM staff_account WHERE name = 'drb'")!,
                try Data.fetchOne(db, sql: "SELECT digest FROM row_set WHERE name = 'tables'")!
            )
        }
        try replica.accounts.save(account("drb", disabled: true), actor: "test", action: "user-disable")
        _ = try replica.outbox.enqueue(
            LocalChange(
                operation: .create, resourceType: "Observation", id: nil,
                resource: Data(#"{"resourceType":"Observation","status":"final"}"#.utf8), author: "dr"))
        replica.close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "UPDATE staff_account SET body = ? WHERE name = 'drb'", arguments: [body])
            try db.execute(sql: "UPDATE row_set SET digest = ? WHERE name = 'tables'", arguments: [state])
        }
        #expect(
            try open().rowSetProblems(full: false) == [
                "outbox: 1 row(s) more than sealed (added outside ehr-syncd)"
            ])
    }

    @Test func anEditedCountIsFoundAndNotLaunderedByLaterWrites() throws {
        try busyReplica().close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "DELETE FROM outbox WHERE seq = (SELECT MAX(seq) FROM outbox)")
            // Count one fewer in the sealed state (the outbox is the third table: its count is the
            // 8 bytes after its 32 of sum, at 2 × 40 + 32).
            var state = try Data.fetchOne(db, sql: "SELECT digest FROM row_set WHERE name = 'tables'")!
            state[112] &-= 1
            try db.execute(sql: "UPDATE row_set SET digest = ? WHERE name = 'tables'", arguments: [state])
        }
        let replica = try open()
        #expect(try replica.rowSetProblems(full: false) == ["the sealed digests were altered"])
        _ = try replica.outbox.enqueue(
            LocalChange(operation: .delete, resourceType: "Patient", id: "p1", resource: nil, author: "dr"))
        #expect(try replica.rowSetProblems(full: false) == ["the sealed digests were altered"])
    }

    @Test func droppedOrAlteredTriggersAreFound() throws {
        try busyReplica().close()
        try DatabaseQueue(path: dbPath).write { db in
            try db.execute(sql: "DROP TRIGGER rowset_outbox_delete")
            try db.execute(sql: "DROP TRIGGER rowset_resource_delete")
            try db.execute(sql: "CREATE TRIGGER rowset_resource_delete AFTER DELETE ON resource BEGIN SELECT 1; END")
        }
        let problems = try open().rowSetProblems(full: false)
        #expect(
            problems == [
                "integrity triggers missing (1 of 18): the database was changed outside ehr-syncd",
                "triggers added or altered outside ehr-syncd: rowset_resource_delete: the database was changed outside ehr-syncd",
            ])
    }

    /// A trigger planted by hand would run inside the daemon's own writes, with its key (and
    /// keep the digests right while it deletes): the replica is not opened at all.
    @Test func aPlantedTriggerKeepsTheReplicaClosed() throws {
        try busyReplica().close()
        try DatabaseQueue(path: dbPath).write { db in
            try db.execute(sql: "CREATE TRIGGER wipe AFTER UPDATE ON sync_state BEGIN DELETE FROM outbox; END")
        }
        let error = #expect(throws: ReplicaError.self) { try open() }
        #expect(error?.description.contains("holds triggers ehr-syncd did not create (wipe)") == true)
    }

    @Test func deletedDigestsAreFoundAndNotRecomputed() throws {
        try busyReplica().close()
        try OutsideWriter.write(dbPath) { db in
            try db.execute(sql: "DELETE FROM outbox")
            try db.execute(sql: "DELETE FROM row_set")
        }
        let replica = try open()
        #expect(
            try replica.rowSetProblems(full: false) == [
                "the digests are missing or not sealed with this replica's key (altered or replaced)"
            ])
        replica.close()
        #expect(try open().rowSetProblems(full: true).isEmpty == false, "a reopen does not make new digests")
    }

    /// A re-key recomputes the digests: it refuses to when the rows do not match them, so it
    /// never seals tampered rows as they are.
    @Test func aRekeyRefusesTamperedRows() throws {
        try busyReplica().close()
        try OutsideWriter.write(dbPath) { db in try db.execute(sql: "DELETE FROM outbox") }
        let replica = try open()
        let error = #expect(throws: ReplicaError.self) {
            _ = try replica.beginReencryption(newKEK: KeyEncryptionKey.generate())
        }
        #expect(error?.description.contains("do not match their sealed digests (outbox: 2 row(s) fewer") == true)
        #expect(try replica.isReencrypting() == false)
    }
}
