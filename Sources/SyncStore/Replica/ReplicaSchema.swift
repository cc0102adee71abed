import Crypto
import Foundation
import GRDB
import SyncModel

/// The replica's schema: named, append-only migrations run on open.
///
/// In clear on disk: resource type, sizes, server versionId and lastUpdated, flags.
/// Everything that identifies a person or a record is sealed (bodies, sync state) or
/// blinded (ids and patient references, HMAC-SHA256 under a key derived from the DEK).
enum ReplicaSchema {
    /// A replica made from a backup keeps the backup's identity and key slots (so the carried
    /// rows open), instead of a new random data key.
    struct Identity {
        var replicaID: Data
        var wrappedDEK: Data
        var recoveryDEK: Data?
        var integrity: SymmetricKey
    }

    /// `integrityKey` holds the row-set key once the data key is known: set by ``Replica/open``
    /// before migrating an existing replica, and by the first migration for a new one.
    static func migrator(kek: KeyEncryptionKey, integrityKey: RowSet.KeyBox, identity: Identity? = nil)
        -> DatabaseMigrator
    {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-replica") { db in
            try db.execute(
                sql: """
                    CREATE TABLE replica_meta (
                        name TEXT PRIMARY KEY,
                        value BLOB NOT NULL
                    );
                    CREATE TABLE keyring (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        wrapped_dek BLOB NOT NULL,
                        rotated_at TEXT NOT NULL
                    );
                    CREATE TABLE resource (
                        row INTEGER PRIMARY KEY,
                        type TEXT NOT NULL,
                        bid BLOB NOT NULL,
                        version_id TEXT,
                        last_updated TEXT,
                        content_hash BLOB NOT NULL,
                        size INTEGER NOT NULL,
                        deleted INTEGER NOT NULL DEFAULT 0,
                        patient BLOB,
                        body BLOB NOT NULL,
                        UNIQUE (type, bid)
                    );
                    CREATE INDEX resource_by_patient ON resource (patient, type) WHERE patient IS NOT NULL;
                    CREATE TABLE held_change (
                        row INTEGER PRIMARY KEY,
                        type TEXT NOT NULL,
                        bid BLOB NOT NULL,
                        reason TEXT NOT NULL,
                        version_id TEXT,
                        last_updated TEXT,
                        size INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        held_at TEXT NOT NULL
                    );
                    CREATE TABLE sync_state (
                        name TEXT PRIMARY KEY,
                        value BLOB NOT NULL
                    );
                    """)
            let replicaID: Data
            let wrapped: Data
            if let identity {
                replicaID = identity.replicaID
                wrapped = identity.wrappedDEK
                integrityKey.set(identity.integrity)
            } else {
                replicaID = Data(SymmetricKey(size: .bits128).withUnsafeBytes { Data($0) })
                let dek = SymmetricKey(size: .bits256)
                wrapped = try KeyRing.wrap(dataKey: dek, with: kek, replicaID: replicaID)
                integrityKey.set(KeyRing(dataKey: dek, replicaID: replicaID).integrity)
            }
            try db.execute(
                sql: "INSERT INTO replica_meta (name, value) VALUES ('replica_id', ?)", arguments: [replicaID])
            try db.execute(
                sql: "INSERT INTO keyring (id, wrapped_dek, rotated_at) VALUES (1, ?, ?)",
                arguments: [wrapped, FHIRInstant.format(Date().timeIntervalSince1970)])
        }
        migrator.registerMigration("v2-attachments") { db in
            try db.execute(
                sql: """
                    CREATE TABLE attachment (
                        bid BLOB PRIMARY KEY,
                        size INTEGER NOT NULL,
                        body BLOB NOT NULL,
                        fetched_at TEXT NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v3-decisions-and-recovery") { db in
            try db.execute(
                sql: """
                    ALTER TABLE held_change ADD COLUMN decision TEXT;
                    ALTER TABLE held_change ADD COLUMN decided_at TEXT;
                    ALTER TABLE keyring ADD COLUMN recovery_dek BLOB;
                    """)
            if let recovery = identity?.recoveryDEK {
                try db.execute(sql: "UPDATE keyring SET recovery_dek = ? WHERE id = 1", arguments: [recovery])
            }
        }
        migrator.registerMigration("v4-outbox") { db in
            try db.execute(
                sql: """
                    CREATE TABLE outbox (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        type TEXT NOT NULL,
                        bid BLOB NOT NULL,
                        op TEXT NOT NULL,
                        state TEXT NOT NULL,
                        created_at TEXT NOT NULL,
                        updated_at TEXT NOT NULL,
                        body BLOB NOT NULL
                    );
                    CREATE INDEX outbox_by_target ON outbox (type, bid);
                    CREATE INDEX outbox_by_state ON outbox (state, seq);
                    CREATE TABLE local_id (
                        type TEXT NOT NULL,
                        bid BLOB NOT NULL,
                        server_id BLOB NOT NULL,
                        PRIMARY KEY (type, bid)
                    );
                    CREATE TABLE audit_log (
                        seq INTEGER PRIMARY KEY,
                        at TEXT NOT NULL,
                        body BLOB NOT NULL,
                        chain BLOB NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v5-staff") { db in
            try db.execute(
                sql: """
                    CREATE TABLE staff_account (
                        name TEXT PRIMARY KEY,
                        body BLOB NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v6-outlines") { db in
            // From v6 each body seals its JSON followed by its ResourceOutline; rows stored
            // before get theirs from `fillOutlines`, which starts at the first row (nowhere
            // for a new replica).
            let hasRows = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM resource)") ?? false
            try db.execute(
                sql: "INSERT INTO replica_meta (name, value) VALUES ('outline_fill', ?)",
                arguments: [Data((hasRows ? "0" : "done").utf8)])
        }
        migrator.registerMigration("v7-tombstone-index") { db in
            // Status counts live records per type (`syncctl status`, the systemd STATUS line
            // every 10 s) as all rows (the (type, bid) index) minus tombstones (this one):
            // filtering on `deleted` read every row, 2.6 GB at 750 000 records. A partial
            // index on tombstones only: an index over live rows ordered by type would tempt
            // the planner away from the patient index for a patient's records.
            try db.execute(sql: "CREATE INDEX resource_tombstones ON resource (type) WHERE deleted = 1;")
        }
        migrator.registerMigration("v8-audit-head") { db in
            // The trail's sealed head exists from now on, lines or not, so an emptied trail
            // (lines and head deleted) never verifies. It is sealed with the data key, which a
            // migration does not hold: `Replica.open` writes it right after.
            try db.execute(
                sql: "INSERT OR IGNORE INTO replica_meta (name, value) VALUES ('audit_head_pending', x'01')")
        }
        migrator.registerMigration("v9-row-set") { db in
            // Row-set digests (``RowSet``), kept by triggers from now on; those of the rows
            // already there are computed here, in the same transaction.
            try RowSet.install(db: db, key: try integrityKey.get())
        }
        return migrator
    }
}
