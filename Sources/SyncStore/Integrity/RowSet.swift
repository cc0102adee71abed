import Crypto
import Foundation
import GRDB
import Synchronization

/// Row-set integrity: a sealed ``RowSetDigest`` per protected table, kept by SQLite triggers on
/// every insert, update and delete, plus one overall digest of all of them (`*`).
///
/// Sealing each row (``KeyRing``) already stops a row from being edited, moved or flipped;
/// the digests stop the rest: a row deleted, an older sealed version of a row put back in
/// place of the current one, a disabled account revived from an old copy, a queued local
/// change deleted. Triggers, not the stores, keep the digests so no write path can forget
/// one; they call SQL functions registered only on the daemon's connections, so a write from
/// another SQLite client fails, or (triggers dropped first) leaves digests that no longer
/// match. The overall digest catches one table's rows and digest rolled back together from
/// an older copy. A whole-file rollback is the audit witness's to catch (``AuditExporter``).
///
/// A new column on a protected table needs its triggers re-created (and the digests
/// recomputed) in the same migration.
enum RowSet {
    /// Each protected table with every one of its columns, in order.
    static let tables: [(name: String, columns: [String])] = [
        (
            "resource",
            ["row", "type", "bid", "version_id", "last_updated", "content_hash", "size", "deleted", "patient", "body"]
        ),
        (
            "held_change",
            [
                "row", "type", "bid", "reason", "version_id", "last_updated", "size", "body", "held_at", "decision",
                "decided_at",
            ]
        ),
        ("outbox", ["seq", "type", "bid", "op", "state", "created_at", "updated_at", "body"]),
        ("local_id", ["type", "bid", "server_id"]),
        ("staff_account", ["name", "body"]),
        ("attachment", ["bid", "size", "body", "fetched_at"]),
    ]
    /// The overall digest's name in `row_set`.
    static let overall = "*"
    /// Tables whose rows the check at start recomputes (small); the others are counted only.
    static let checkedInFullAtStart: Set<String> = ["held_change", "outbox", "local_id", "staff_account"]

    static let elementFunction = "ehr_rowset_element"
    static let addFunction = "ehr_rowset_add"

    // MARK: Schema

    /// The name of the `row_set` row naming the key the digests are sealed with (its
    /// generation, not secret): a check reads it from the same snapshot as the digests, so a
    /// re-key committing meanwhile is never mistaken for tampering.
    static let generationRow = "#generation"

    /// Every trigger, as created and as SQLite keeps it in `sqlite_master` (the check compares
    /// the text: a trigger altered or added by hand is found).
    static var triggers: [(name: String, sql: String)] {
        tables.flatMap { table, columns -> [(name: String, sql: String)] in
            func element(_ row: String) -> String {
                "\(elementFunction)('\(table)', " + columns.map { "\(row).\($0)" }.joined(separator: ", ") + ")"
            }
            let target = "WHERE name IN ('\(table)', '\(overall)')"
            return [
                (
                    "rowset_\(table)_insert",
                    "CREATE TRIGGER rowset_\(table)_insert AFTER INSERT ON \(table) BEGIN "
                        + "UPDATE row_set SET digest = \(addFunction)(digest, name, \(element("NEW")), 1) \(target); END"
                ),
                (
                    "rowset_\(table)_delete",
                    "CREATE TRIGGER rowset_\(table)_delete AFTER DELETE ON \(table) BEGIN "
                        + "UPDATE row_set SET digest = \(addFunction)(digest, name, \(element("OLD")), -1) \(target); END"
                ),
                (
                    "rowset_\(table)_update",
                    "CREATE TRIGGER rowset_\(table)_update AFTER UPDATE ON \(table) BEGIN "
                        + "UPDATE row_set SET digest = \(addFunction)(\(addFunction)(digest, name, \(element("OLD")), -1), "
                        + "name, \(element("NEW")), 1) \(target); END"
                ),
            ]
        }
    }

    /// Creates the `row_set` table and the triggers, and computes the digests of the rows
    /// already there, in the migration's transaction (so no state exists where a table is
    /// protected without its digest, and nothing outside can ask for digests to be redone).
    static func install(db: Database, key: SymmetricKey) throws {
        try db.execute(sql: "CREATE TABLE row_set (name TEXT PRIMARY KEY, digest BLOB NOT NULL)")
        for trigger in triggers { try db.execute(sql: trigger.sql) }
        try establish(db: db, key: key)
    }

    /// Triggers that are not exactly the ones ehr-syncd creates: added (which would run inside
    /// the daemon's own writes, with its key), altered or missing. Names only, bounded.
    static func foreignTriggers(db: Database) throws -> (foreign: [String], missing: [String]) {
        let expected = Dictionary(uniqueKeysWithValues: triggers.map { ($0.name, $0.sql) })
        var foreign: [String] = []
        var seen: Set<String> = []
        for row in try Row.fetchAll(db, sql: "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'") {
            let name: String = row["name"]
            let sql: String? = row["sql"]
            seen.insert(name)
            if expected[name] != sql {
                foreign.append(
                    String(name.unicodeScalars.filter { $0.isASCII && $0.value >= 32 }.map(Character.init).prefix(64)))
            }
        }
        return (foreign.sorted(), expected.keys.filter { !seen.contains($0) }.sorted())
    }

    // MARK: SQL functions

    /// The integrity key the SQL functions use: set once the data key is unwrapped, replaced
    /// by a re-key. Until it is set, a write to a protected table fails.
    final class KeyBox: Sendable {
        private let key = Mutex<SymmetricKey?>(nil)
        func set(_ value: SymmetricKey?) { key.withLock { $0 = value } }
        func get() throws -> SymmetricKey {
            guard let value = key.withLock({ $0 }) else {
                throw DatabaseError(message: "the replica's integrity key is not loaded")
            }
            return value
        }
    }

    /// Registers the two functions on a connection (every connection of the pool, and
    /// `recursive_triggers` on so the rows `INSERT OR REPLACE` deletes fire their triggers).
    static func register(on db: Database, keys: KeyBox) throws {
        try db.execute(sql: "PRAGMA recursive_triggers = ON")
        db.add(
            function: DatabaseFunction(elementFunction, argumentCount: nil, pure: true) { values in
                guard case .string(let table)? = values.first?.storage else {
                    throw DatabaseError(message: "\(elementFunction) needs a table name")
                }
                return RowSetDigest.element(table: table, values: values.dropFirst().map(value), key: try keys.get())
            })
        db.add(
            function: DatabaseFunction(addFunction, argumentCount: 4, pure: true) { values in
                guard case .blob(let stored) = values[0].storage, case .string(let name) = values[1].storage,
                    case .blob(let element) = values[2].storage, element.count == 32,
                    case .int64(let sign) = values[3].storage
                else { throw DatabaseError(message: "\(addFunction): bad arguments") }
                let key = try keys.get()
                return RowSetDigest(encoded: stored, name: name, key: key).adding(element, sign: sign)
                    .encoded(name: name, key: key)
            })
    }

    static func value(_ value: DatabaseValue) -> RowSetValue {
        switch value.storage {
        case .null: .null
        case .int64(let n): .integer(n)
        case .double(let d): .real(d)
        case .string(let s): .text(s)
        case .blob(let b): .blob(b)
        }
    }

    // MARK: Computing and checking

    /// The digest of a table's rows as they are now.
    static func compute(_ table: String, db: Database) throws -> RowSetDigest {
        guard let columns = tables.first(where: { $0.name == table })?.columns else { return .empty }
        let sql = "SELECT \(elementFunction)('\(table)', \(columns.joined(separator: ", "))) FROM \(table)"
        var digest = RowSetDigest.empty
        let cursor = try Data.fetchCursor(db, sql: sql)
        while let element = try cursor.next() { digest = digest.adding(element, sign: 1) }
        return digest
    }

    /// Writes every digest from the rows as they are (a new replica, an upgraded one, a re-key
    /// after the rows were checked).
    static func establish(db: Database, key: SymmetricKey) throws {
        var digests: [RowSetDigest] = []
        for (table, _) in tables {
            let digest = try compute(table, db: db)
            digests.append(digest)
            try store(digest, name: table, key: key, db: db)
        }
        try store(.sum(digests), name: overall, key: key, db: db)
        try db.execute(
            sql: "INSERT OR REPLACE INTO row_set (name, digest) VALUES (?, ?)",
            arguments: [generationRow, generation(of: key)])
    }

    /// Names an integrity key without revealing it: 8 bytes of an HMAC under it.
    static func generation(of key: SymmetricKey) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data("generation".utf8), using: key).prefix(8))
    }

    private static func store(_ digest: RowSetDigest, name: String, key: SymmetricKey, db: Database) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO row_set (name, digest) VALUES (?, ?)",
            arguments: [name, digest.encoded(name: name, key: key)])
    }

    /// What is wrong with the rows, in words without content: empty when every table matches
    /// its sealed digest. `full` recomputes every table; otherwise the large ones (records,
    /// attachments) are only counted, which is what the check at start does.
    /// `keys` are the integrity keys the digests may be sealed with (current first, then the
    /// previous one during a re-key); the snapshot's generation row picks one.
    static func problems(db: Database, keys: [SymmetricKey], full: Bool) throws -> [String] {
        var problems: [String] = []
        let (foreign, missing) = try foreignTriggers(db: db)
        if !missing.isEmpty {
            problems.append(
                "integrity triggers missing (\(missing.count) of \(tables.count * 3)): the database was changed outside ehr-syncd"
            )
        }
        if !foreign.isEmpty {
            problems.append(
                "triggers added or altered outside ehr-syncd: \(foreign.prefix(5).joined(separator: ", ")): the database was changed "
                    + "outside ehr-syncd")
        }
        let sealedWith = try Data.fetchOne(
            db, sql: "SELECT digest FROM row_set WHERE name = ?", arguments: [generationRow])
        guard let key = keys.first(where: { generation(of: $0) == sealedWith }) else {
            problems.append("the digests are not sealed with this replica's key (altered or replaced)")
            return problems
        }
        var stored: [RowSetDigest] = []
        for (table, _) in tables {
            guard
                let encoded = try Data.fetchOne(
                    db, sql: "SELECT digest FROM row_set WHERE name = ?", arguments: [table])
            else {
                problems.append("\(table): its sealed digest is missing")
                continue
            }
            let digest = RowSetDigest(encoded: encoded, name: table, key: key)
            stored.append(digest)
            guard digest.valid else {
                problems.append("\(table): its sealed digest was altered")
                continue
            }
            if full || checkedInFullAtStart.contains(table) {
                let actual = try compute(table, db: db)
                if let problem = difference(table, sealed: digest, actual: actual) { problems.append(problem) }
            } else {
                let count = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
                if count != digest.count {
                    problems.append(difference(table, sealed: digest, actual: RowSetDigest(count: count))!)
                }
            }
        }
        if let encoded = try Data.fetchOne(
            db, sql: "SELECT digest FROM row_set WHERE name = ?", arguments: [overall])
        {
            let digest = RowSetDigest(encoded: encoded, name: overall, key: key)
            if !digest.valid {
                problems.append("the overall digest was altered")
            } else if stored.count == tables.count, !digest.sameRows(as: .sum(stored)) {
                problems.append(
                    "the tables' digests disagree with the overall digest: a table was put back from an older copy")
            }
        } else {
            problems.append("the overall digest is missing")
        }
        return problems
    }

    /// The words for a table whose rows are not its sealed set; nil when they are.
    static func difference(_ table: String, sealed: RowSetDigest, actual: RowSetDigest) -> String? {
        if actual.count < sealed.count {
            return "\(table): \(sealed.count - actual.count) row(s) fewer than sealed (deleted outside ehr-syncd)"
        }
        if actual.count > sealed.count {
            return "\(table): \(actual.count - sealed.count) row(s) more than sealed (added outside ehr-syncd)"
        }
        if !actual.sameRows(as: sealed) {
            return "\(table): rows differ from the sealed set (changed, or an older copy put back)"
        }
        return nil
    }
}
