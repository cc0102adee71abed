import Foundation
import GRDB
public import SyncModel

/// Re-keying (`syncctl key rotate --reencrypt NEWFILE`): after a KEK leak, rewrapping the
/// same data key is not enough, since whoever read the KEK could unwrap the DEK from any copy
/// of the file. A re-key makes a new DEK and seals every value with it:
///
/// 1. At once, in one transaction (``beginReencryption(newKEK:)``): the new DEK is wrapped
///    under the new KEK and under a new recovery key (returned, to be printed: the old one
///    stops working), the audit trail is re-sealed and re-chained (checked as it goes), the
///    row-set digests are recomputed under the new integrity key, and a cursor is stored.
/// 2. In the background, in batches (``resealBatch(limit:)``): every other sealed value is
///    opened with the previous DEK and sealed with the new one. Reads are served meanwhile
///    (the ring opens with either key); the cursor makes it resumable across restarts.
/// 3. A last pass that finds nothing left under the old key ends it; the previous DEK is then
///    no longer used (it stays inside the wrapped slots, useless without rows sealed by it).
///
/// Blind indexes and keyed hashes keep the index key (see ``KeyRing``).
extension Replica {
    /// The stored cursor: pass, table index, last key visited, rows re-sealed this pass.
    struct ResealCursor: Equatable {
        var pass = 1
        var table = 0
        var last: Int64 = 0
        var resealed = 0

        init(pass: Int = 1, table: Int = 0, last: Int64 = 0, resealed: Int = 0) {
            self.pass = pass
            self.table = table
            self.last = last
            self.resealed = resealed
        }

        init?(_ data: Data) {
            let parts = String(decoding: data, as: UTF8.self).split(separator: " ")
            guard parts.count == 4, let pass = Int(parts[0]), let table = Int(parts[1]), let last = Int64(parts[2]),
                let resealed = Int(parts[3])
            else { return nil }
            self.init(pass: pass, table: table, last: last, resealed: resealed)
        }

        var encoded: Data { Data("\(pass) \(table) \(last) \(resealed)".utf8) }
    }

    func resealCursor(db: Database) throws -> ResealCursor? {
        try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'reseal'").map {
            guard let cursor = ResealCursor($0) else { throw ReplicaError.corruptState("re-encryption cursor") }
            return cursor
        }
    }

    /// Whether a re-key is still re-sealing rows.
    public func isReencrypting() throws(ReplicaError) -> Bool {
        try read { db in try resealCursor(db: db) != nil }
    }

    /// Starts a re-key: see the type's documentation. Returns the new recovery key, to be
    /// shown once and printed (the previous recovery key no longer opens the replica).
    ///
    /// - Throws: ``ReplicaError/refused(_:)`` while a re-key is still running, and
    ///   ``ReplicaError/corruptState(_:)`` when the audit trail does not verify (nothing is
    ///   changed then).
    public func beginReencryption(newKEK: KeyEncryptionKey) throws(ReplicaError) -> RecoveryKey {
        let recovery = RecoveryKey.generate()
        var restore: KeyRing?
        do {
            try durableWrite { db in
                // Inside the writer: no other write runs, so the ring read here is the one
                // every stored value was sealed with.
                let old = keys
                let new = old.rekeyed()
                if let cursor = try resealCursor(db: db) {
                    throw ReplicaError.refused(
                        "a re-encryption is still running (pass \(cursor.pass)); wait until `syncctl status` no "
                            + "longer shows it, then start another")
                }
                // The digests are about to be recomputed: rows changed outside ehr-syncd would be
                // taken in. Refuse then, and say so (the re-key waits for the investigation).
                let problems = try RowSet.problems(db: db, keys: [old.integrity], full: true)
                guard problems.isEmpty else {
                    throw ReplicaError.refused(
                        "the replica's rows do not match their sealed digests (\(problems.joined(separator: "; "))); "
                            + "a re-key would seal them as they are. See `syncctl verify`; restore a backup or let the "
                            + "daemon copy the practice again, then re-key")
                }
                try audit.reseal(from: old, to: new, db: db)
                try db.execute(
                    sql: "UPDATE keyring SET wrapped_dek = ?, recovery_dek = ?, rotated_at = ? WHERE id = 1",
                    arguments: [
                        try KeyRing.wrap(bundle: new.bundle, with: newKEK, replicaID: new.replicaID),
                        try KeyRing.wrap(bundle: new.bundle, with: recovery.keyEncryptionKey, replicaID: new.replicaID),
                        FHIRInstant.format(Date().timeIntervalSince1970),
                    ])
                try db.execute(
                    sql: "INSERT INTO replica_meta (name, value) VALUES ('reseal', ?)",
                    arguments: [ResealCursor().encoded])
                // From here on this transaction's writes use the new ring: the digests are
                // recomputed under its integrity key.
                database.replaceKeys(new)
                restore = old
                try RowSet.establish(db: db, key: new.integrity)
            }
        } catch {
            if let restore { database.replaceKeys(restore) }
            throw error
        }
        return recovery
    }

    /// One step of a re-key's background work, in its own transaction: up to `limit` rows
    /// re-sealed, or the move to the next table, pass or the end. Returns false once nothing
    /// is left (or no re-key runs).
    public func resealBatch(limit: Int = 500) throws(ReplicaError) -> ResealStep {
        try durableWrite { db in
            guard var cursor = try resealCursor(db: db) else { return ResealStep(more: false) }
            var step = ResealStep(more: true)
            if cursor.table >= SealedColumn.all.count {
                if cursor.resealed == 0 {
                    try db.execute(sql: "DELETE FROM replica_meta WHERE name = 'reseal'")
                    // Nothing is sealed with the previous DEK any more: the ring drops it, in
                    // this transaction (no re-key can start between the two).
                    let current = keys
                    database.replaceKeys(
                        KeyRing(dataKey: current.dataKey, indexKey: current.indexKey, replicaID: current.replicaID))
                    step.more = false
                    step.finished = true
                    return step
                }
                cursor = ResealCursor(pass: cursor.pass + 1)
            } else {
                let column = SealedColumn.all[cursor.table]
                let result = try column.reseal(after: cursor.last, limit: limit, keys: keys, db: db)
                step.resealed = result.resealed
                step.unreadable = result.unreadable
                if let last = result.last {
                    cursor.last = last
                    cursor.resealed += result.resealed
                } else {
                    cursor.table += 1
                    cursor.last = 0
                }
            }
            try db.execute(
                sql: "UPDATE replica_meta SET value = ? WHERE name = 'reseal'", arguments: [cursor.encoded])
            return step
        }
    }

    /// Where a running re-key stands; nil when none runs.
    public func reencryptionProgress() throws(ReplicaError) -> ReencryptionStatus? {
        try read { db in
            guard let cursor = try resealCursor(db: db) else { return nil }
            var total = 0
            var done = 0
            for (index, column) in SealedColumn.all.enumerated() {
                let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(column.table)") ?? 0
                total += count
                if index < cursor.table {
                    done += count
                } else if index == cursor.table {
                    done +=
                        try Int.fetchOne(
                            db, sql: "SELECT COUNT(*) FROM \(column.table) WHERE \(column.key) <= ?",
                            arguments: [cursor.last]) ?? 0
                }
            }
            return ReencryptionStatus(done: done, total: total, pass: cursor.pass)
        }
    }
}

/// What one ``Replica/resealBatch(limit:)`` did.
public struct ResealStep: Sendable, Equatable {
    /// Whether more steps remain.
    public var more: Bool
    /// The step that ended the re-key.
    public var finished = false
    public var resealed = 0
    /// Rows neither key opens (altered): left as they are, for `syncctl verify` to report.
    public var unreadable = 0
}
