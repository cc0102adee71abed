import Foundation
import GRDB
public import SyncModel

/// Staff accounts, kept in the replica (sealed, bound to the account name); every change is
/// written with its audit line in one transaction.
public struct AccountStore: Sendable {
    let database: ReplicaDatabase
    let audit: AuditTrail
    var keys: KeyRing { database.keys }

    public func account(named name: String) throws(ReplicaError) -> StaffAccount? {
        try database.read { db in try fetchAccount(name, db: db) }
    }

    public func all() throws(ReplicaError) -> [StaffAccount] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM staff_account ORDER BY name").compactMap {
                try fetchAccount($0, db: db)
            }
        }
    }

    /// Creates or replaces an account; audited with `actor`.
    public func save(_ account: StaffAccount, actor: String, action: String) throws(ReplicaError) {
        try database.durableWrite { db in
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let sealed = try keys.seal(try encoder.encode(account), context: Data("s1|\(account.name)".utf8))
            try db.execute(
                sql: "INSERT OR REPLACE INTO staff_account (name, body) VALUES (?, ?)",
                arguments: [account.name, sealed])
            try audit.append(
                AuditRecord(
                    at: FHIRInstant.format(Date().timeIntervalSince1970), actor: actor, action: action,
                    target: "account \(account.name)"), db: db)
        }
    }

    func fetchAccount(_ name: String, db: Database) throws -> StaffAccount? {
        guard
            let sealed = try Data.fetchOne(db, sql: "SELECT body FROM staff_account WHERE name = ?", arguments: [name])
        else { return nil }
        guard let plain = keys.open(sealed, context: Data("s1|\(name)".utf8)),
            let account = try? JSONDecoder().decode(StaffAccount.self, from: plain), account.name == name
        else { throw ReplicaError.corruptState("staff account") }
        return account
    }
}
