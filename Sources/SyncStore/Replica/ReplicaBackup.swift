import Foundation
import GRDB
public import SyncModel

/// What a backup (or a rebuild) carried.
public struct BackupSummary: Sendable, Equatable {
    public var outboxEntries = 0
    public var auditLines = 0
    public var accounts = 0
    public var heldChanges = 0
    /// Tables that could not be read whole (a damaged replica), by name.
    public var unreadable: [String] = []

    public init() {}
}

/// The part of the replica that cannot be fetched again from the EHR, in a file of its own:
/// queued local changes and their id map, the audit trail and its head, staff accounts,
/// held changes and the decisions on them, and the key slots and identity that open them.
/// Rows are copied as stored (sealed), so the file is as safe as the replica and small
/// enough to copy often (no mirrored record is in it).
///
/// Written by the daemon to `[backup] dir` (``Replica/writeBackup(to:)``), salvaged from a
/// damaged replica (``Replica/salvage(replica:to:)``), and brought back into a new replica
/// (``Replica/restore(backup:directory:kek:keySource:)``), which then copies the practice's
/// records from the EHR again.
extension Replica {
    /// The backup's file name inside `[backup] dir`.
    public static let backupFileName = "ehr-sync-backup.sqlite"

    /// Carried tables and their columns (the replica's own, in order).
    static let carriedTables: [(name: String, columns: [String], key: String)] = [
        ("outbox", ["seq", "type", "bid", "op", "state", "created_at", "updated_at", "body"], "seq"),
        ("local_id", ["type", "bid", "server_id"], "rowid"),
        ("audit_log", ["seq", "at", "body", "chain"], "seq"),
        ("staff_account", ["name", "body"], "rowid"),
        (
            "held_change",
            [
                "row", "type", "bid", "reason", "version_id", "last_updated", "size", "body", "held_at", "decision",
                "decided_at",
            ], "row"
        ),
    ]
    /// Bookkeeping that goes with them: the key slots and identity, the trail's head and how
    /// much of it the EHR holds, a re-key's cursor.
    static let carriedMeta = ["replica_id", "audit_head", "reseal"]
    static let carriedState = [SyncStateKey.auditExported.name]

    /// Writes the backup into `directory` (atomically: a new file renamed over the old one,
    /// which is kept as `….previous`), fsync'd. Returns what it holds.
    @discardableResult
    public func writeBackup(to directory: String) throws(ReplicaError) -> BackupSummary {
        let snapshot = try read { db in try Self.carried(from: db) }
        return try Self.writeBackupFile(directory: directory, snapshot.meta, snapshot.rows, unreadable: [])
    }

    /// Copies what can be read of the carried tables out of a damaged replica file into a
    /// backup file in `directory` (a table that cannot be read whole is named in the summary;
    /// its readable rows are kept).
    public static func salvage(replica path: String, to directory: String) throws(ReplicaError) -> BackupSummary {
        var configuration = Configuration()
        configuration.readonly = true
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw ReplicaError.from(error)
        }
        var meta: [String: Data] = [:]
        var rows: [String: [[DatabaseValue]]] = [:]
        var unreadable: [String] = []
        do {
            try queue.read { db in
                for name in carriedMeta {
                    if let value = try? Data.fetchOne(
                        db, sql: "SELECT value FROM replica_meta WHERE name = ?", arguments: [name])
                    {
                        meta[name] = value
                    }
                }
                if let keyring = try? Row.fetchOne(db, sql: "SELECT wrapped_dek, recovery_dek FROM keyring") {
                    meta["wrapped_dek"] = keyring["wrapped_dek"]
                    meta["recovery_dek"] = keyring["recovery_dek"]
                }
                for table in carriedTables {
                    var kept: [[DatabaseValue]] = []
                    do {
                        let cursor = try Row.fetchCursor(
                            db, sql: "SELECT \(table.columns.joined(separator: ", ")) FROM \(table.name)")
                        while let row = try cursor.next() { kept.append(Array(row.databaseValues)) }
                    } catch {
                        unreadable.append(table.name)
                    }
                    rows[table.name] = kept
                }
                rows["sync_state"] =
                    (try? Row.fetchAll(
                        db,
                        sql:
                            "SELECT name, value FROM sync_state WHERE name IN ('\(carriedState.joined(separator: "','"))')"
                    ).map { Array($0.databaseValues) }) ?? []
            }
        } catch {
            throw ReplicaError.from(error)
        }
        try? queue.close()
        guard meta["replica_id"] != nil, meta["wrapped_dek"] != nil else {
            throw .refused(
                "the replica \(path) is too damaged to find its key slots: nothing can be carried over. Restore a "
                    + "backup ([backup] dir) with `syncctl backup restore DIR` instead")
        }
        return try writeBackupFile(directory: directory, meta, rows, unreadable: unreadable)
    }

    /// Makes a replica in `directory` (which must hold none) from a backup: the backup's
    /// identity and key slots, its rows, then nothing else: the daemon copies the practice's
    /// records from the EHR again, and replays the carried changes.
    ///
    /// - Throws: ``ReplicaError/wrongKey(source:path:)`` when `kek` (or a recovery key given as
    ///   `kek`) does not open the backup; nothing is written then.
    @discardableResult
    public static func restore(backup path: String, directory: String, kek: KeyEncryptionKey, keySource: String)
        throws(ReplicaError) -> BackupSummary
    {
        guard !FileManager.default.fileExists(atPath: directory + "/" + fileName) else {
            throw .refused("\(directory) already holds a replica: move it aside first")
        }
        let (meta, rows) = try readBackupFile(path)
        guard let rid = meta["replica_id"], let wrapped = meta["wrapped_dek"] else {
            throw .corruptState("backup \(path)")
        }
        let bundle =
            KeyRing.unwrap(wrapped, with: kek, replicaID: rid)
            ?? meta["recovery_dek"].flatMap { KeyRing.unwrap($0, with: kek, replicaID: rid) }
        guard let bundle, let ring = KeyRing(bundle: bundle, replicaID: rid, resealing: meta["reseal"] != nil) else {
            throw .wrongKey(source: keySource, path: path)
        }
        let identity = ReplicaSchema.Identity(
            replicaID: rid, wrappedDEK: wrapped, recoveryDEK: meta["recovery_dek"], integrity: ring.integrity)
        let replica = try open(directory: directory, kek: kek, keySource: keySource, identity: identity)
        defer { replica.close() }
        var summary = BackupSummary()
        try replica.durableWrite { db in
            for table in carriedTables + [("sync_state", ["name", "value"], "name")] {
                let values = rows[table.name] ?? []
                let insert = try db.makeStatement(
                    sql: "INSERT INTO \(table.name) (\(table.columns.joined(separator: ", "))) VALUES ("
                        + Array(repeating: "?", count: table.columns.count).joined(separator: ", ") + ")")
                for row in values { try insert.execute(arguments: StatementArguments(row)) }
            }
            for name in ["audit_head", "reseal"] {
                if let value = meta[name] {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO replica_meta (name, value) VALUES (?, ?)",
                        arguments: [name, value])
                }
            }
        }
        summary.outboxEntries = rows["outbox"]?.count ?? 0
        summary.auditLines = rows["audit_log"]?.count ?? 0
        summary.accounts = rows["staff_account"]?.count ?? 0
        summary.heldChanges = rows["held_change"]?.count ?? 0
        // The carried trail must still verify against its carried head.
        if case .failure(let broken) = try replica.audit.verify() {
            throw .corruptState("the backup's audit trail (line \(broken.seq): \(broken.reason))")
        }
        return summary
    }

    // MARK: The file

    static func carried(from db: Database) throws -> (meta: [String: Data], rows: [String: [[DatabaseValue]]]) {
        var meta: [String: Data] = [:]
        for name in carriedMeta {
            if let value = try Data.fetchOne(
                db, sql: "SELECT value FROM replica_meta WHERE name = ?", arguments: [name])
            {
                meta[name] = value
            }
        }
        if let keyring = try Row.fetchOne(db, sql: "SELECT wrapped_dek, recovery_dek FROM keyring WHERE id = 1") {
            meta["wrapped_dek"] = keyring["wrapped_dek"]
            meta["recovery_dek"] = keyring["recovery_dek"]
        }
        var rows: [String: [[DatabaseValue]]] = [:]
        for table in carriedTables {
            rows[table.name] = try Row.fetchAll(
                db, sql: "SELECT \(table.columns.joined(separator: ", ")) FROM \(table.name) ORDER BY \(table.key)"
            ).map { Array($0.databaseValues) }
        }
        rows["sync_state"] = try Row.fetchAll(
            db, sql: "SELECT name, value FROM sync_state WHERE name IN ('\(carriedState.joined(separator: "','"))')"
        ).map { Array($0.databaseValues) }
        return (meta, rows)
    }

    static func writeBackupFile(
        directory: String, _ meta: [String: Data], _ rows: [String: [[DatabaseValue]]], unreadable: [String]
    ) throws(ReplicaError) -> BackupSummary {
        let path = directory + "/" + backupFileName
        let temporary = path + ".tmp"
        do {
            try? FileManager.default.removeItem(atPath: temporary)
            var configuration = Configuration()
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            let queue = try DatabaseQueue(path: temporary, configuration: configuration)
            try queue.write { db in
                try db.execute(sql: "CREATE TABLE backup_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
                for (name, value) in meta.sorted(by: { $0.key < $1.key }) {
                    try db.execute(
                        sql: "INSERT INTO backup_meta (name, value) VALUES (?, ?)", arguments: [name, value])
                }
                try db.execute(
                    sql: "INSERT INTO backup_meta (name, value) VALUES ('format', ?), ('written_at', ?)",
                    arguments: [Data("1".utf8), Data(FHIRInstant.format(Date().timeIntervalSince1970).utf8)])
                for table in carriedTables + [("sync_state", ["name", "value"], "name")] {
                    try db.execute(sql: "CREATE TABLE \(table.name) (\(table.columns.joined(separator: ", ")))")
                    let insert = try db.makeStatement(
                        sql: "INSERT INTO \(table.name) VALUES ("
                            + Array(repeating: "?", count: table.columns.count).joined(separator: ", ") + ")")
                    for row in rows[table.name] ?? [] { try insert.execute(arguments: StatementArguments(row)) }
                }
            }
            try queue.close()
            try fsync(path: temporary)
            if FileManager.default.fileExists(atPath: path) {
                try? FileManager.default.removeItem(atPath: path + ".previous")
                try FileManager.default.moveItem(atPath: path, toPath: path + ".previous")
            }
            guard rename(temporary, path) == 0 else {
                throw ReplicaError.database("cannot move the backup into place in \(directory)")
            }
            try fsync(path: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw ReplicaError.from(error)
        }
        var summary = BackupSummary()
        summary.outboxEntries = rows["outbox"]?.count ?? 0
        summary.auditLines = rows["audit_log"]?.count ?? 0
        summary.accounts = rows["staff_account"]?.count ?? 0
        summary.heldChanges = rows["held_change"]?.count ?? 0
        summary.unreadable = unreadable
        return summary
    }

    static func readBackupFile(_ path: String) throws(ReplicaError) -> (
        meta: [String: Data], rows: [String: [[DatabaseValue]]]
    ) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .refused("no backup at \(path)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in
                var meta: [String: Data] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT name, value FROM backup_meta") {
                    meta[row["name"]] = row["value"]
                }
                var rows: [String: [[DatabaseValue]]] = [:]
                for table in carriedTables + [("sync_state", ["name", "value"], "name")] {
                    rows[table.name] = try Row.fetchAll(
                        db, sql: "SELECT \(table.columns.joined(separator: ", ")) FROM \(table.name)"
                    ).map { Array($0.databaseValues) }
                }
                return (meta, rows)
            }
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw .corruptState("backup \(path) (\(error))")
        }
    }

    static func fsync(path: String) throws {
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else { throw ReplicaError.database("cannot open \(path) to sync it") }
        defer { Foundation.close(fd) }
        guard Foundation.fsync(fd) == 0 else { throw ReplicaError.database("cannot sync \(path) to disk") }
    }
}

extension Replica {
    /// Changes whenever what a backup holds changes: the outbox's last entry and last update,
    /// the trail's last line (every account change and decision writes one).
    public func backupFingerprint() throws(ReplicaError) -> [String] {
        try read { db in
            [
                String(try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM outbox") ?? 0),
                try String.fetchOne(db, sql: "SELECT COALESCE(MAX(updated_at), '') FROM outbox") ?? "",
                String(try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM audit_log") ?? 0),
            ]
        }
    }
}
