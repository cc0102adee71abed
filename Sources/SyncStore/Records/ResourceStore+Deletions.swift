import Foundation
import GRDB
public import SyncModel

/// A resource the replica holds that the server no longer lists (found by a sweep). Opaque:
/// it names the row by its blind index only.
public struct MissingResource: Sendable, Hashable {
    public let resourceType: String
    let bid: Data
}

extension ResourceStore {
    /// Live rows of `type` whose ids are not in `serverIDs`.
    public func missing(type: String, serverIDs: Set<String>) throws(ReplicaError) -> [MissingResource] {
        let present = Set(serverIDs.map { blind(type: type, id: $0) })
        return try read { db in
            let cursor = try Data.fetchCursor(
                db, sql: "SELECT bid FROM resource WHERE type = ? AND deleted = 0", arguments: [type])
            var result: [MissingResource] = []
            while let bid = try cursor.next() {
                if !present.contains(bid) { result.append(MissingResource(resourceType: type, bid: bid)) }
            }
            return result
        }
    }

    /// Tombstones resources found missing by a sweep.
    public func applyDeletions(_ missing: [MissingResource]) throws(ReplicaError) {
        for m in missing {
            let outcome = try tombstone(type: m.resourceType, bid: m.bid, versionId: nil, lastUpdated: nil)
            if m.resourceType == "Patient", outcome == .tombstoned { patients.withLock { $0.remove(bid: m.bid) } }
        }
    }

    func tombstone(type: String, bid: Data, versionId: String?, lastUpdated: String?) throws(ReplicaError)
        -> DeletionOutcome
    {
        try write { db in try tombstone(type: type, bid: bid, versionId: versionId, lastUpdated: lastUpdated, db: db) }
    }

    func tombstone(type: String, bid: Data, versionId: String?, lastUpdated: String?, db: Database) throws
        -> DeletionOutcome
    {
        do {
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT row, version_id, deleted, body FROM resource WHERE type = ? AND bid = ?",
                    arguments: [type, bid])
            else { return .unknown }
            let rowID: Int64 = row[0]
            let oldVersion: String? = row[1]
            if (row[2] as Int64) != 0 { return .alreadyDeleted }
            if let v = versionId, let old = oldVersion, let a = Int(v), let b = Int(old), a < b { return .held }
            guard
                let plain = keys.open(
                    row[3], context: ResourceStore.context(type: type, bid: bid, versionId: oldVersion, deleted: false))
            else { throw ReplicaError.integrity(resourceType: type, row: rowID) }
            let newVersion = versionId ?? oldVersion
            let sealed = try keys.seal(
                plain, context: ResourceStore.context(type: type, bid: bid, versionId: newVersion, deleted: true))
            try db.execute(
                sql:
                    """
                    UPDATE resource SET deleted = 1, version_id = ?, last_updated = COALESCE(?, last_updated), body = ?
                    WHERE row = ?
                    """,
                arguments: [newVersion, lastUpdated, sealed, rowID])
            return .tombstoned
        }
    }
}
