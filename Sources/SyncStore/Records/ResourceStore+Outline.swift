import Foundation
import GRDB
public import SyncModel

extension ResourceStore {
    /// Re-seals live rows stored before schema v6 with their ``ResourceOutline``, in row
    /// order, `batch` rows at a time; returns how many rows it looked at (0 once there are
    /// none left, which it remembers). The daemon runs it in the background after an upgrade;
    /// reads do not wait for it (a row without an outline is scanned instead).
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
                    SELECT row, type, bid, version_id, body FROM resource
                    WHERE row > ? AND deleted = 0 ORDER BY row LIMIT ?
                    """,
                arguments: [cursor, batch])
        }
        var resealed: [(row: Int64, old: Data, new: Data)] = []
        for row in rows {
            let type: String = row[1]
            let bid: Data = row[2]
            let old: Data = row[4]
            let context = ResourceStore.context(type: type, bid: bid, versionId: row[3], deleted: false)
            // A body that does not open is left as it is: reads and `verify` report it.
            guard let body = keys.open(old, context: context), let parts = ResourceOutline.split(body),
                parts.outline == nil,
                let outline = try? body.withUnsafeBytes({ raw throws(JSONSlicer.Error) in
                    try ResourceOutline(json: raw)
                }),
                blind(type: type, id: outline.id) == bid,
                let new = try? keys.seal(outline.appended(to: body), context: context)
            else { continue }
            resealed.append((row[0], old, new))
        }
        let last: Int64? = rows.last?[0]
        try write { db in
            // Only over the body it was computed from: a row updated meanwhile has its own.
            let update = try db.cachedStatement(sql: "UPDATE resource SET body = ? WHERE row = ? AND body = ?")
            for r in resealed {
                try update.execute(arguments: [r.new, r.row, r.old])
            }
            try db.execute(
                sql: "INSERT OR REPLACE INTO replica_meta (name, value) VALUES ('outline_fill', ?)",
                arguments: [Data((last.map { "\($0)" } ?? "done").utf8)])
        }
        return rows.count
    }
}
