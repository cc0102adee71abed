import Foundation
import GRDB
public import SyncModel

/// Server changes held for an operator instead of applied: versions older than the
/// replica's (a server restored from a backup) and deletions beyond the mass-delete guard.
/// `syncctl held` lists them; `approve` applies the server's change, `reject` keeps the
/// replica's (``HeldDecision``, in `HeldChangeStore+Decisions.swift`).
public struct HeldChangeStore: Sendable, ReplicaDatabaseUser {
    let database: ReplicaDatabase
    /// Where an approved change is applied.
    let records: ResourceStore

    /// Records deletions as held (mass-delete guard) instead of applying them.
    public func holdDeletions(
        _ deletions: [(type: String, id: String)], missing: [MissingResource], reason: HoldReason = .massDelete
    ) throws(ReplicaError) {
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        let all =
            deletions.map { (type: $0.type, bid: blind(type: $0.type, id: $0.id), id: Optional($0.id)) }
            + missing.map { (type: $0.resourceType, bid: $0.bid, id: String?.none) }
        try write { db in
            for d in all {
                let already =
                    try Bool.fetchOne(
                        db,
                        sql:
                            "SELECT EXISTS (SELECT 1 FROM held_change WHERE type = ? AND bid = ? AND version_id IS NULL)",
                        arguments: [d.type, d.bid]) ?? false
                if already { continue }
                let body = Data(#"{"deletion":true,"id":"\#(d.id ?? "")"}"#.utf8)
                try db.execute(
                    sql: """
                        INSERT INTO held_change (type, bid, reason, version_id, last_updated, size, body, held_at)
                        VALUES (?, ?, ?, NULL, NULL, 0, ?, ?)
                        """,
                    arguments: [
                        d.type, d.bid, reason.rawValue,
                        try keys.seal(
                            body, context: ResourceStore.heldContext(type: d.type, bid: d.bid, versionId: nil)),
                        now,
                    ])
            }
        }
    }

    /// Counts of held server changes.
    public func summary() throws(ReplicaError) -> HeldSummary {
        try read { db in
            var summary = HeldSummary()
            for row in try Row.fetchAll(
                db, sql: "SELECT reason, COUNT(*) FROM held_change WHERE decision IS NULL GROUP BY reason")
            {
                let reason: String = row[0]
                let count: Int = row[1]
                if reason == HoldReason.regression.rawValue {
                    summary.regressions += count
                } else {
                    summary.massDeletions += count
                }
            }
            return summary
        }
    }

    /// Holds one server version as a regression (found by a sweep: the server's version is
    /// older than the replica's).
    public func holdRegression(_ prepared: PreparedVersion) throws(ReplicaError) {
        try write { db in try records.hold(prepared, reason: .regression, db: db) }
    }
}
