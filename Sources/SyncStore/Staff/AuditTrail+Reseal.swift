import Crypto
import Foundation
import GRDB
import SyncModel

extension AuditTrail {
    /// Re-seals every line and the head from `old` to `new` inside the caller's transaction,
    /// checking the chain as it goes: a trail that does not verify is left as it is and the
    /// re-key refused, so a re-key never launders a tampered trail. The chain's key (the index
    /// key's `hashing`) does not change; its links do, since they cover the sealed bodies.
    func reseal(from old: KeyRing, to new: KeyRing, db: Database) throws {
        var oldLink = Data(repeating: 0, count: 32)
        var newLink = oldLink
        var expected: Int64 = 1
        let rows = try Row.fetchAll(db, sql: "SELECT seq, at, body, chain FROM audit_log ORDER BY seq")
        let update = try db.makeStatement(sql: "UPDATE audit_log SET body = ?, chain = ? WHERE seq = ?")
        for row in rows {
            let seq: Int64 = row[0]
            let at: String = row[1]
            let body: Data = row[2]
            let context = Data("a1|\(seq)".utf8)
            guard seq == expected, chainLink(previous: oldLink, seq: seq, at: at, body: body, keys: old) == row[3],
                let plain = old.open(body, context: context)
            else { throw ReplicaError.corruptState("audit trail at line \(expected) (syncctl audit verify)") }
            let sealed = try new.seal(plain, context: context)
            oldLink = row[3]
            newLink = chainLink(previous: newLink, seq: seq, at: at, body: sealed, keys: new)
            try update.execute(arguments: [sealed, newLink, seq])
            expected += 1
        }
        guard let head = try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'audit_head'"),
            let plain = old.open(head, context: Data("audit-head".utf8)),
            plain == Data("\(expected - 1)|".utf8) + oldLink
        else { throw ReplicaError.corruptState("audit trail head (syncctl audit verify)") }
        try db.execute(
            sql: "UPDATE replica_meta SET value = ? WHERE name = 'audit_head'",
            arguments: [try new.seal(Data("\(expected - 1)|".utf8) + newLink, context: Data("audit-head".utf8))])
    }
}
