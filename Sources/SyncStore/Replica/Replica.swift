import Crypto
import Foundation
import GRDB
public import SyncModel
import Synchronization

/// The encrypted local replica: one SQLite file (WAL mode, one writer, concurrent readers)
/// holding the latest server version of every mirrored resource, sealed with AES-256-GCM.
///
/// ```swift
/// let replica = try Replica.open(directory: "/var/lib/ehr-sync", kek: kek, keySource: "\(source)")
/// let outcome = try replica.apply(ndjsonLines)
/// let patient = try replica.resource(type: "Patient", id: "123")
/// ```
///
/// Every row's seal binds its type, blinded id, versionId and tombstone flag as associated
/// data, so a row cannot be swapped, moved or flipped without detection. Ids and patient
/// references are stored only as blind indexes. Patient demographics are searchable through
/// an index built in memory at open (``PatientIndex``), never written to disk.
public final class Replica: Sendable {
    /// File name of the replica database inside the state directory.
    public static let fileName = "replica.sqlite"

    /// The SQLite database every store of the replica shares.
    let database: ReplicaDatabase

    /// The mirrored records: the EHR's latest version of each, sealed; held server changes.
    public let records: ResourceStore
    /// Server changes held for an operator (rollbacks, mass deletions) and the decisions on them.
    public let held: HeldChangeStore
    /// Local changes queued for the EHR, and the review of those it could not take.
    public let outbox: OutboxStore
    /// The audit trail: who read or changed what, hash-chained.
    public let audit: AuditTrail
    /// Staff accounts (audited through ``audit``).
    public let accounts: AccountStore
    /// Sync bookkeeping: cursors and resume points, typed by ``SyncStateKey``.
    public let syncState: SyncStateStore
    /// DocumentReference attachments fetched from the EHR.
    public let attachments: AttachmentStore

    /// Path of the SQLite file.
    public var path: String { database.path }

    private init(path: String, pool: DatabasePool, keys: KeyRing, integrityKey: RowSet.KeyBox, sizeLimit: Int) {
        let database = ReplicaDatabase(
            path: path, pool: pool, keys: keys, integrityKey: integrityKey, sizeLimit: sizeLimit)
        self.database = database
        let audit = AuditTrail(database: database)
        let syncState = SyncStateStore(database: database)
        let records = ResourceStore(database: database, syncState: syncState)
        self.audit = audit
        self.syncState = syncState
        self.records = records
        self.held = HeldChangeStore(database: database, records: records)
        self.outbox = OutboxStore(database: database, records: records, audit: audit)
        self.accounts = AccountStore(database: database, audit: audit)
        self.attachments = AttachmentStore(database: database)
    }

    /// Opens (creating if needed) the replica in `directory`, checks the KEK, runs pending
    /// migrations and builds the in-memory patient index.
    ///
    /// - Parameters:
    ///   - keySource: describes where the KEK came from, for error messages (never the key).
    /// - Throws: ``ReplicaError/wrongKey(source:path:)`` without modifying the file when the
    ///   KEK does not match.
    public static func open(
        directory: String, kek: KeyEncryptionKey, keySource: String, sizeLimit: Int = 64 << 20
    ) throws(ReplicaError) -> Replica {
        try open(directory: directory, kek: kek, keySource: keySource, sizeLimit: sizeLimit, identity: nil)
    }

    /// ``open(directory:kek:keySource:sizeLimit:)``; a new replica takes `identity` when given
    /// (``restore(backup:directory:kek:keySource:)``).
    static func open(
        directory: String, kek: KeyEncryptionKey, keySource: String, sizeLimit: Int = 64 << 20,
        identity: ReplicaSchema.Identity?
    ) throws(ReplicaError) -> Replica {
        try ensureDirectory(directory)
        let path = directory + "/" + fileName
        var config = Configuration()
        config.label = "replica"
        // All writes share the pool's one writer, but under heavy reading (every read appends
        // an audit line) SQLite can still answer SQLITE_BUSY while a write transaction waits
        // for a WAL read slot; wait for it rather than fail the request.
        config.busyMode = .timeout(10)
        let integrityKey = RowSet.KeyBox()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA temp_store = MEMORY;")
            try RowSet.register(on: db, keys: integrityKey)
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw ReplicaError.from(error)
        }
        do {
            // Check the key before anything writes: a wrong KEK leaves the file untouched.
            let existing = try pool.read { db -> (wrapped: Data, replicaID: Data)? in
                guard try db.tableExists("keyring") else { return nil }
                guard let wrapped = try Data.fetchOne(db, sql: "SELECT wrapped_dek FROM keyring WHERE id = 1"),
                    let rid = try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'replica_id'")
                else { return nil }
                return (wrapped, rid)
            }
            if let existing {
                guard
                    let bundle = try unwrapDataKey(
                        pool: pool, kek: kek, wrapped: existing.wrapped, replicaID: existing.replicaID),
                    let ring = KeyRing(bundle: bundle, replicaID: existing.replicaID, resealing: false)
                else {
                    try? pool.close()
                    throw ReplicaError.wrongKey(source: keySource, path: path)
                }
                integrityKey.set(ring.integrity)
            }
            try refuseForeignTriggers(pool: pool, path: path)
            try ReplicaSchema.migrator(kek: kek, integrityKey: integrityKey, identity: existing == nil ? identity : nil)
                .migrate(pool)
            let (wrapped, rid, resealing) = try pool.read { db in
                (
                    try Data.fetchOne(db, sql: "SELECT wrapped_dek FROM keyring WHERE id = 1")!,
                    try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'replica_id'")!,
                    try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM replica_meta WHERE name = 'reseal')")
                        ?? false
                )
            }
            guard let bundle = try unwrapDataKey(pool: pool, kek: kek, wrapped: wrapped, replicaID: rid),
                let keys = KeyRing(bundle: bundle, replicaID: rid, resealing: resealing)
            else {
                throw ReplicaError.wrongKey(source: keySource, path: path)
            }
            let replica = Replica(
                path: path, pool: pool, keys: keys, integrityKey: integrityKey, sizeLimit: sizeLimit)
            try replica.audit.establishHead()
            try replica.records.buildPatientIndex()
            return replica
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw ReplicaError.from(error)
        }
    }

    /// Refuses to open a replica holding triggers ehr-syncd did not create: they would run
    /// inside the daemon's own writes, with its keys. (Missing or altered row-set triggers
    /// are reported by the integrity check instead; nothing runs that should not.)
    private static func refuseForeignTriggers(pool: DatabasePool, path: String) throws {
        let foreign = try pool.read { db -> [String] in
            let expected = Set(RowSet.triggers.map(\.name))
            return try RowSet.foreignTriggers(db: db).foreign.filter { !expected.contains($0) }
        }
        guard foreign.isEmpty else {
            try? pool.close()
            throw ReplicaError.refused(
                "the replica \(path) holds triggers ehr-syncd did not create (\(foreign.prefix(5).joined(separator: ", "))): "
                    + "it was changed outside ehr-syncd. Keep the file for investigation and restore a backup, or "
                    + "move it away and let the daemon copy the practice again")
        }
    }

    /// Unwraps the key bundle with the KEK, or with the same key taken as a recovery key.
    private static func unwrapDataKey(pool: DatabasePool, kek: KeyEncryptionKey, wrapped: Data, replicaID: Data) throws
        -> Data?
    {
        if let dek = KeyRing.unwrap(wrapped, with: kek, replicaID: replicaID) { return dek }
        let recovery = try pool.read { db -> Data? in
            guard try db.columns(in: "keyring").contains(where: { $0.name == "recovery_dek" }) else { return nil }
            return try Data.fetchOne(db, sql: "SELECT recovery_dek FROM keyring WHERE id = 1")
        }
        return recovery.flatMap { KeyRing.unwrap($0, with: kek, replicaID: replicaID) }
    }

    /// Creates the recovery key, once: the DEK wrapped under it is stored; the key itself is
    /// returned to be shown to the operator and never stored. `replace` makes a new one
    /// (the old printed key stops working).
    public func createRecoveryKey(replace: Bool = false) throws(ReplicaError) -> RecoveryKey? {
        let recovery = RecoveryKey.generate()
        let created: Bool = try durableWrite { db in
            let existing = try Data.fetchOne(db, sql: "SELECT recovery_dek FROM keyring WHERE id = 1")
            if existing != nil && !replace { return false }
            let rid = try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'replica_id'")!
            let wrapped = try KeyRing.wrap(bundle: keys.bundle, with: recovery.keyEncryptionKey, replicaID: rid)
            try db.execute(sql: "UPDATE keyring SET recovery_dek = ? WHERE id = 1", arguments: [wrapped])
            return true
        }
        return created ? recovery : nil
    }

    /// Closes the database; later calls fail.
    public func close() {
        try? pool.close()
    }

    private static func ensureDirectory(_ directory: String) throws(ReplicaError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw .unusableDirectory(path: directory, reason: "not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unusableDirectory(path: directory, reason: "cannot create it")
        }
    }

    // MARK: Keys

    /// Rewraps the data key under a new KEK. Records are not rewritten (for that, and a new
    /// data key, ``beginReencryption(newKEK:)``).
    public func rotateKey(to newKEK: KeyEncryptionKey) throws(ReplicaError) {
        try durableWrite { db in
            let wrapped = try KeyRing.wrap(bundle: keys.bundle, with: newKEK, replicaID: keys.replicaID)
            try db.execute(
                sql: "UPDATE keyring SET wrapped_dek = ?, rotated_at = ? WHERE id = 1",
                arguments: [wrapped, FHIRInstant.format(Date().timeIntervalSince1970)])
        }
    }
}

extension Replica: ReplicaDatabaseUser {}
