import Foundation
import GRDB
public import SyncModel

extension Replica {
    /// Computes the row-set digests once, when the replica is created or first opened by a
    /// version that keeps them (``RowSet``); from then on the triggers keep them.
    func establishRowSet() throws(ReplicaError) {
        try durableWrite { db in
            guard
                try Bool.fetchOne(
                    db, sql: "SELECT EXISTS (SELECT 1 FROM replica_meta WHERE name = 'row_set_pending')") ?? false
            else { return }
            try RowSet.establish(db: db, key: keys.integrity)
            try db.execute(sql: "DELETE FROM replica_meta WHERE name = 'row_set_pending'")
        }
    }

    /// What is wrong with the replica's rows as a whole (a row deleted, an older sealed version
    /// put back, an account revived, a queued change removed outside ehr-syncd), in words
    /// without content; empty when nothing is. `full` recomputes every table (`syncctl
    /// verify`); otherwise the large ones are only counted (the check at start, in
    /// milliseconds).
    public func rowSetProblems(full: Bool) throws(ReplicaError) -> [String] {
        try read { db in try RowSet.problems(db: db, key: keys.integrity, full: full) }
    }
}
