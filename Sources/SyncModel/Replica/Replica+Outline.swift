import Foundation
import GRDB

extension Replica {
    /// Opens a row's sealed ``ResourceOutline``; nil when the row has none (a tombstone, or a
    /// row stored before schema v6 that ``fillOutlines(batch:)`` has not reached) or when it
    /// does not open beside this body.
    func openOutline(_ sealed: Data?, type: String, bid: Data, versionId: String?, contentHash: Data) -> Data? {
        guard let sealed else { return nil }
        return keys.openOutline(
            sealed,
            context: Replica.outlineContext(type: type, bid: bid, versionId: versionId, contentHash: contentHash))
    }

    /// Adds outlines to live rows stored before schema v6, in row order, `batch` rows at a
    /// time; returns how many rows it looked at (0 once there are none left, which it
    /// remembers). The daemon runs it in the background after an upgrade; reads do not wait
    /// for it (a row without an outline is scanned instead).
    public func fillOutlines(batch: Int = 256) throws(ReplicaError) -> Int {
        let cursor: Int64? = try read { db in
            guard let value = try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'outline_fill'")
            else { return 0 }
            return Int64(String(decoding: value, as: UTF8.self))
        }
        guard let cursor else { return 0 }  // "done"
        let rows = try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT row, type, bid, version_id, content_hash, body FROM resource
                    WHERE row > ? AND deleted = 0 AND outline IS NULL ORDER BY row LIMIT ?
                    """,
                arguments: [cursor, batch])
        }
        var outlines: [(row: Int64, versionId: String?, hash: Data, sealed: Data)] = []
        for row in rows {
            let type: String = row[1]
            let bid: Data = row[2]
            let versionId: String? = row[3]
            let hash: Data = row[4]
            // A body that does not open is left as it is: reads and `verify` report it.
            guard
                let json = keys.open(
                    row[5], context: Replica.context(type: type, bid: bid, versionId: versionId, deleted: false)),
                let outline = try? json.withUnsafeBytes({ raw throws(JSONSlicer.Error) in
                    try ResourceOutline(json: raw)
                }),
                blind(type: type, id: outline.id) == bid,
                let sealed = try? keys.sealOutline(
                    outline.encoded(),
                    context: Replica.outlineContext(type: type, bid: bid, versionId: versionId, contentHash: hash))
            else { continue }
            outlines.append((row[0], versionId, hash, sealed))
        }
        let last: Int64? = rows.last?[0]
        try write { db in
            // Only beside the body it was computed from: a row updated meanwhile has its own.
            let update = try db.cachedStatement(
                sql: """
                    UPDATE resource SET outline = ?
                    WHERE row = ? AND outline IS NULL AND deleted = 0 AND version_id IS ? AND content_hash = ?
                    """)
            for o in outlines {
                try update.execute(arguments: [o.sealed, o.row, o.versionId, o.hash])
            }
            try db.execute(
                sql: "INSERT OR REPLACE INTO replica_meta (name, value) VALUES ('outline_fill', ?)",
                arguments: [Data((last.map { "\($0)" } ?? "done").utf8)])
        }
        return rows.count
    }
}
