import Foundation
import GRDB
public import SyncModel

extension HeldChangeStore {
    /// Held changes still waiting for a decision, oldest first.
    public func list() throws(ReplicaError) -> [HeldChange] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT row, type, reason, version_id, last_updated, held_at, size FROM held_change
                    WHERE decision IS NULL ORDER BY row
                    """
            ).map { row in
                HeldChange(
                    row: row[0], resourceType: row[1], reason: row[2], deletion: (row[6] as Int) == 0 && row[3] == nil,
                    versionId: row[3], lastUpdated: row[4], heldAt: row[5])
            }
        }
    }

    /// Applies or discards held changes (`rows` nil: all pending). Returns how many.
    @discardableResult
    public func decide(_ decision: HeldDecision, rows: [Int64]?) throws(ReplicaError) -> Int {
        let pending = try list().filter { rows?.contains($0.row) ?? true }
        if let rows, pending.count != Set(rows).count {
            throw .database("no pending held change with row \(Set(rows).subtracting(pending.map(\.row)).sorted())")
        }
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        for held in pending {
            if decision == .approve { try applyHeld(row: held.row) }
            try durableWrite { db in
                try db.execute(
                    sql: "UPDATE held_change SET decision = ?, decided_at = ? WHERE row = ?",
                    arguments: [decision.rawValue, now, held.row])
            }
        }
        return pending.count
    }

    private func applyHeld(row: Int64) throws(ReplicaError) {
        let loaded = try read { db -> (type: String, bid: Data, version: String?, body: Data)? in
            try Row.fetchOne(
                db, sql: "SELECT type, bid, version_id, body FROM held_change WHERE row = ?", arguments: [row]
            )
            .map { ($0[0], $0[1], $0[2], $0[3]) }
        }
        guard let held = loaded else { return }
        guard
            let plain = keys.open(
                held.body, context: ResourceStore.heldContext(type: held.type, bid: held.bid, versionId: held.version))
        else { throw .integrity(resourceType: held.type, row: row) }
        if plain.starts(with: Data(#"{"deletion":true"#.utf8)) {
            let outcome = try records.tombstone(type: held.type, bid: held.bid, versionId: nil, lastUpdated: nil)
            if held.type == "Patient", outcome == .tombstoned { records.patients.withLock { $0.remove(bid: held.bid) } }
            return
        }
        // The operator accepts the server's older version: store it as the current one.
        let prepared: PreparedVersion
        do {
            prepared = try records.prepare(plain)
        } catch {
            throw .corruptState("held change \(row)")
        }
        try durableWrite { db in
            // Prepared outside the writer: sealed again if a re-key started meanwhile.
            let keys = self.keys
            let prepared = prepared.generation == keys.generation ? prepared : try records.prepare(plain, keys: keys)
            try db.execute(
                sql: """
                    UPDATE resource SET version_id = ?, last_updated = ?, content_hash = ?, size = ?, deleted = 0,
                    patient = ?, body = ? WHERE type = ? AND bid = ?
                    """,
                arguments: [
                    prepared.envelope.versionId, prepared.envelope.lastUpdated, prepared.hash, plain.count,
                    prepared.patient, prepared.sealed, held.type, held.bid,
                ])
        }
        if held.type == "Patient" { records.patients.withLock { $0.upsert(bid: held.bid, json: plain) } }
    }
}
