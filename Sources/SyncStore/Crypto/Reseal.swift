import Foundation
import GRDB
import SyncModel

/// Where sealed values live, for a re-key's background pass (``Replica/resealBatch(limit:)``):
/// each table with a sealed column, how its rows are walked, and the associated data its
/// store seals that column with. A store that seals a new column adds it here.
struct SealedColumn: Sendable {
    let table: String
    /// The column rows are walked by (an integer key, ascending).
    let key: String
    /// The sealed column.
    let column: String
    /// The columns the context is made of.
    let contextColumns: [String]
    /// The associated data of a row, from `contextColumns`; nil when the row cannot have one
    /// (it is then left as it is, and `syncctl verify` reports it).
    let context: @Sendable (Row) -> Data?

    /// Every sealed column but the audit trail's (re-sealed at once when a re-key starts, since
    /// its chain covers the sealed bodies), in the order the pass takes them.
    static let all: [SealedColumn] = [
        SealedColumn(
            table: "resource", key: "row", column: "body", contextColumns: ["type", "bid", "version_id", "deleted"]
        ) {
            ResourceStore.context(
                type: $0["type"], bid: $0["bid"], versionId: $0["version_id"], deleted: ($0["deleted"] as Int64) != 0)
        },
        SealedColumn(table: "held_change", key: "row", column: "body", contextColumns: ["type", "bid", "version_id"]) {
            ResourceStore.heldContext(type: $0["type"], bid: $0["bid"], versionId: $0["version_id"])
        },
        SealedColumn(
            table: "outbox", key: "seq", column: "body", contextColumns: ["seq", "type", "bid", "op", "state"]
        ) { row in
            guard let operation = OutboxOperation(rawValue: row["op"]), let state = OutboxState(rawValue: row["state"])
            else { return nil }
            return OutboxStore.outboxContext(
                seq: row["seq"], type: row["type"], bid: row["bid"], operation: operation, state: state)
        },
        SealedColumn(table: "local_id", key: "rowid", column: "server_id", contextColumns: ["type", "bid"]) {
            OutboxStore.localIDContext($0["type"], $0["bid"])
        },
        SealedColumn(table: "staff_account", key: "rowid", column: "body", contextColumns: ["name"]) {
            Data("s1|\($0["name"] as String)".utf8)
        },
        SealedColumn(table: "attachment", key: "rowid", column: "body", contextColumns: ["bid"]) {
            AttachmentStore.attachmentContext($0["bid"])
        },
        SealedColumn(table: "sync_state", key: "rowid", column: "value", contextColumns: ["name"]) {
            SyncStateStore.stateContext($0["name"])
        },
    ]

    /// Re-seals up to `limit` rows after `after` with the current DEK, inside the caller's
    /// transaction. Returns the last key visited (nil when none was left), the rows re-sealed
    /// and those neither key opens (left as they are).
    func reseal(after: Int64, limit: Int, keys: KeyRing, db: Database) throws -> (
        last: Int64?, resealed: Int, unreadable: Int
    ) {
        let columns = (["\(key) AS reseal_key", "\(column) AS reseal_value"] + contextColumns).joined(separator: ", ")
        let rows = try Row.fetchAll(
            db, sql: "SELECT \(columns) FROM \(table) WHERE \(key) > ? ORDER BY \(key) LIMIT ?",
            arguments: [after, limit])
        let update = try db.cachedStatement(sql: "UPDATE \(table) SET \(column) = ? WHERE \(key) = ?")
        var resealed = 0
        var unreadable = 0
        for row in rows {
            guard let context = context(row) else {
                unreadable += 1
                continue
            }
            let sealed: Data = row["reseal_value"]
            guard let plain = keys.openPrevious(sealed, context: context) else {
                // Already under the current key (written since the re-key started), or altered.
                if keys.open(sealed, context: context) == nil { unreadable += 1 }
                continue
            }
            try update.execute(arguments: [try keys.seal(plain, context: context), row["reseal_key"] as Int64])
            resealed += 1
        }
        return (rows.last.map { $0["reseal_key"] as Int64 }, resealed, unreadable)
    }
}
