import Foundation
import GRDB
public import SyncModel

extension Replica {
    /// What is wrong with the replica's rows as a whole (a row deleted, an older sealed version
    /// put back, an account revived, a queued change removed outside ehr-syncd), in words
    /// without content; empty when nothing is. `full` recomputes every table (`syncctl
    /// verify`); otherwise the large ones are only counted (the check at start, in
    /// milliseconds).
    public func rowSetProblems(full: Bool) throws(ReplicaError) -> [String] {
        // The ring is read before the snapshot: during a re-key's first transaction it may be
        // newer than the digests the snapshot holds, which the previous key then opens.
        let keys = self.keys
        return try read { db in
            try RowSet.problems(
                db: db, keys: [keys.integrity] + (keys.previousIntegrity.map { [$0] } ?? []), full: full)
        }
    }
}
