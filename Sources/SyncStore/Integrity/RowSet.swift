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

    /// The `row_set` table and the triggers (created by a migration).
    static var schemaSQL: String {
        var sql = "CREATE TABLE row_set (name TEXT PRIMARY KEY, digest BLOB NOT NULL);\n"
        for (table, columns) in tables {
            func element(_ row: String) -> String {
                "\(elementFunction)('\(table)', " + columns.map { "\(row).\($0)" }.joined(separator: ", ") + ")"
            }
            let target = "WHERE name IN ('\(table)', '\(overall)')"
            sql += """
                CREATE TRIGGER rowset_\(table)_insert AFTER INSERT ON \(table) BEGIN
                  UPDATE row_set SET digest = \(addFunction)(digest, name, \(element("NEW")), 1) \(target);
                END;
                CREATE TRIGGER rowset_\(table)_delete AFTER DELETE ON \(table) BEGIN
                  UPDATE row_set SET digest = \(addFunction)(digest, name, \(element("OLD")), -1) \(target);
                END;
                CREATE TRIGGER rowset_\(table)_update AFTER UPDATE ON \(table) BEGIN
                  UPDATE row_set SET digest =
                    \(addFunction)(\(addFunction)(digest, name, \(element("OLD")), -1), name, \(element("NEW")), 1)
                    \(target);
                END;

                """
        }
        return sql
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

    /// Writes every digest from the rows as they are (a new replica, an upgraded one, a re-key).
    static func establish(db: Database, key: SymmetricKey) throws {
        var digests: [RowSetDigest] = []
        for (table, _) in tables {
            let digest = try compute(table, db: db)
            digests.append(digest)
            try store(digest, name: table, key: key, db: db)
        }
        try store(.sum(digests), name: overall, key: key, db: db)
    }

    private static func store(_ digest: RowSetDigest, name: String, key: SymmetricKey, db: Database) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO row_set (name, digest) VALUES (?, ?)",
            arguments: [name, digest.encoded(name: name, key: key)])
    }

    /// What is wrong with the rows, in words without content: empty when every table matches
    /// its sealed digest. `full` recomputes every table; otherwise the large ones (records,
    /// attachments) are only counted, which is what the check at start does.
    static func problems(db: Database, key: SymmetricKey, full: Bool) throws -> [String] {
        var problems: [String] = []
        let triggers =
            try Int.fetchOne(
                db,
                sql: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rowset\\_%' ESCAPE '\\'")
            ?? 0
        if triggers != tables.count * 3 {
            problems.append(
                "integrity triggers missing (\(triggers) of \(tables.count * 3)): the database was changed outside ehr-syncd"
            )
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
