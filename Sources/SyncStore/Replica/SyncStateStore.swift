import Foundation
import GRDB
public import SyncModel

/// Sync bookkeeping (cursors, resume points), sealed like records: a next-page link or a
/// cursor may carry ids.
public struct SyncStateStore: Sendable {
    let database: ReplicaDatabase
    var keys: KeyRing { database.keys }

    /// A sync-state value, or nil when unset.
    public func value(_ key: SyncStateKey) throws(ReplicaError) -> String? {
        let name = key.name
        return try database.read { db in
            guard
                let sealed = try Data.fetchOne(
                    try db.cachedStatement(sql: "SELECT value FROM sync_state WHERE name = ?"), arguments: [name])
            else { return nil }
            guard let plain = keys.open(sealed, context: Self.stateContext(name)) else {
                throw ReplicaError.corruptState(name)
            }
            return String(decoding: plain, as: UTF8.self)
        }
    }

    /// Sets or clears sync-state values in one transaction.
    public func set(_ values: [SyncStateKey: String?]) throws(ReplicaError) {
        try database.write { db in try write(values, db: db) }
    }

    func write(_ values: [SyncStateKey: String?], db: Database) throws {
        for (key, value) in values {
            let name = key.name
            if let value {
                let sealed = try keys.seal(Data(value.utf8), context: Self.stateContext(name))
                try db.execute(
                    sql:
                        "INSERT INTO sync_state (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    arguments: [name, sealed])
            } else {
                try db.execute(sql: "DELETE FROM sync_state WHERE name = ?", arguments: [name])
            }
        }
    }

    static func stateContext(_ name: String) -> Data { Data("s1|\(name)".utf8) }
}
