import Crypto
import Foundation
import GRDB
import Synchronization

/// Row-set integrity: a sealed ``RowSetDigest`` per protected table, all kept together in one
/// sealed ``RowSetState`` by SQLite triggers on every insert, update and delete.
///
/// Sealing each row (``KeyRing``) already stops a row from being edited, moved or flipped;
/// the digests stop the rest: a row deleted, an older sealed version of a row put back in
/// place of the current one, a disabled account revived from an old copy, a queued local
/// change deleted. Triggers, not the stores, keep the digests so no write path can forget
/// one; they call SQL functions registered only on the daemon's connections, so a write from
/// another SQLite client fails, or (triggers dropped first) leaves digests that no longer
/// match. One MAC over every table's digest means one table cannot be rolled back with its
/// digest alone. A rollback of the whole file is the audit witness's to catch
/// (``AuditExporter``).
///
/// A row's element covers every column; a sealed column enters as its nonce and tag (its
/// first 12 and last 16 bytes), which AES-GCM makes as binding as its whole ciphertext, so a
/// write hashes about a hundred bytes however large the record.
///
/// A new column on a protected table needs its triggers re-created (and the digests
/// recomputed) in the same migration.
enum RowSet {
    /// A protected table: every column in order, and which of them hold sealed values.
    struct Table: Sendable {
        let name: String
        let columns: [String]
        let sealed: Set<String>

        /// The element's arguments for a row (`NEW`, `OLD`, or the table itself when empty).
        func arguments(_ row: String) -> String {
            let prefix = row.isEmpty ? "" : row + "."
            return columns.map { column in
                sealed.contains(column)
                    ? "substr(\(prefix)\(column), 1, 12), substr(\(prefix)\(column), -16)" : prefix + column
            }.joined(separator: ", ")
        }
    }

    static let tables: [Table] = [
        Table(
            name: "resource",
            columns: [
                "row", "type", "bid", "version_id", "last_updated", "content_hash", "size", "deleted", "patient",
                "body",
            ], sealed: ["body"]),
        Table(
            name: "held_change",
            columns: [
                "row", "type", "bid", "reason", "version_id", "last_updated", "size", "body", "held_at", "decision",
                "decided_at",
            ], sealed: ["body"]),
        Table(
            name: "outbox", columns: ["seq", "type", "bid", "op", "state", "created_at", "updated_at", "body"],
            sealed: ["body"]),
        Table(name: "local_id", columns: ["type", "bid", "server_id"], sealed: ["server_id"]),
        Table(name: "staff_account", columns: ["name", "body"], sealed: ["body"]),
        Table(name: "attachment", columns: ["bid", "size", "body", "fetched_at"], sealed: ["body"]),
    ]
    /// Tables whose rows the check at start recomputes (small); the others are counted only.
    static let checkedInFullAtStart: Set<String> = ["held_change", "outbox", "local_id", "staff_account"]

    static let elementFunction = "ehr_rowset_element"
    static let addFunction = "ehr_rowset_add"

    /// The `row_set` row holding the sealed state.
    static let stateRow = "tables"
    /// The `row_set` row naming the key the state is sealed with (its generation, not
    /// secret): a check reads it from the same snapshot as the state, so a re-key committing
    /// meanwhile is never mistaken for tampering.
    static let generationRow = "#generation"

    // MARK: Schema

    /// Every trigger, as created and as SQLite keeps it in `sqlite_master` (the check compares
    /// the text: a trigger altered or added by hand is found).
    static var triggers: [(name: String, sql: String)] {
        tables.enumerated().flatMap { index, table -> [(name: String, sql: String)] in
            let name = table.name
            func element(_ row: String) -> String { "\(elementFunction)('\(name)', \(table.arguments(row)))" }
            let target = "WHERE name = '\(stateRow)'"
            return [
                (
                    "rowset_\(name)_insert",
                    "CREATE TRIGGER rowset_\(name)_insert AFTER INSERT ON \(name) BEGIN "
                        + "UPDATE row_set SET digest = \(addFunction)(digest, \(index), \(element("NEW")), 1) \(target); END"
                ),
                (
                    "rowset_\(name)_delete",
                    "CREATE TRIGGER rowset_\(name)_delete AFTER DELETE ON \(name) BEGIN "
                        + "UPDATE row_set SET digest = \(addFunction)(digest, \(index), \(element("OLD")), -1) \(target); END"
                ),
                (
                    "rowset_\(name)_update",
                    "CREATE TRIGGER rowset_\(name)_update AFTER UPDATE ON \(name) BEGIN "
                        + "UPDATE row_set SET digest = \(addFunction)(\(addFunction)(digest, \(index), \(element("OLD")), -1), "
                        + "\(index), \(element("NEW")), 1) \(target); END"
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
                    String(
                        String.UnicodeScalarView(name.unicodeScalars.filter { $0.isASCII && $0.value >= 32 }).prefix(64)
                    ))
            }
        }
        return (foreign.sorted(), expected.keys.filter { !seen.contains($0) }.sorted())
    }

    // MARK: SQL functions

    /// The integrity key's two MACs, keyed and with their prefixes absorbed once (copied per use).
    struct Keys: Sendable {
        let key: SymmetricKey
        let element: HMAC<SHA256>
        let state: HMAC<SHA256>

        init(_ key: SymmetricKey) {
            self.key = key
            var element = HMAC<SHA256>(key: key)
            element.update(data: Data("rowset-element/v1|".utf8))
            var state = HMAC<SHA256>(key: key)
            state.update(data: Data("rowset-state/v1|".utf8))
            self.element = element
            self.state = state
        }
    }

    /// The integrity key the SQL functions use: set once the data key is unwrapped, replaced
    /// by a re-key. Until it is set, a write to a protected table fails. It also remembers the
    /// state it last sealed, so the next write (almost always on the same connection, right
    /// after) need not check that state's MAC again.
    final class KeyBox: Sendable {
        private let state = Mutex<(keys: Keys?, lastSealed: Data?)>((nil, nil))
        func set(_ value: SymmetricKey?) { state.withLock { $0 = (value.map(Keys.init), nil) } }
        func get() throws -> SymmetricKey { try keys().key }
        func keys() throws -> Keys {
            guard let keys = state.withLock({ $0.keys }) else {
                throw DatabaseError(message: "the replica's integrity key is not loaded")
            }
            return keys
        }
        /// The keys, and whether `stored` is what this process last sealed.
        func keys(checking stored: Data) throws -> (Keys, trusted: Bool) {
            let (keys, last) = state.withLock { ($0.keys, $0.lastSealed) }
            guard let keys else { throw DatabaseError(message: "the replica's integrity key is not loaded") }
            return (keys, last == stored)
        }
        func sealed(_ value: Data) { state.withLock { $0.lastSealed = value } }
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
                return RowSetDigest.element(table: table, values: values.dropFirst(), mac: try keys.keys().element)
            })
        db.add(
            function: DatabaseFunction(addFunction, argumentCount: 4, pure: true) { values in
                guard case .blob(let stored) = values[0].storage, case .int64(let index) = values[1].storage,
                    index >= 0, index < tables.count, case .blob(let element) = values[2].storage, element.count == 32,
                    case .int64(let sign) = values[3].storage
                else { throw DatabaseError(message: "\(addFunction): bad arguments") }
                let (sealing, trusted) = try keys.keys(checking: stored)
                let (encoded, valid) = RowSetState.adding(
                    element, sign: sign, to: stored, index: Int(index), tables: tables.count, mac: sealing.state,
                    trusted: trusted)
                if valid { keys.sealed(encoded) }
                return encoded
            })
    }

    // MARK: Computing and checking

    /// The digest of a table's rows as they are now.
    static func compute(_ table: Table, db: Database) throws -> RowSetDigest {
        let sql = "SELECT \(elementFunction)('\(table.name)', \(table.arguments(""))) FROM \(table.name)"
        var digest = RowSetDigest.empty
        let cursor = try Data.fetchCursor(db, sql: sql)
        while let element = try cursor.next() { digest = digest.adding(element, sign: 1) }
        return digest
    }

    /// Writes the state from the rows as they are (a new replica, an upgraded one, a re-key
    /// after the rows were checked).
    static func establish(db: Database, key: SymmetricKey) throws {
        let state = RowSetState(digests: try tables.map { try compute($0, db: db) })
        try db.execute(
            sql: "INSERT OR REPLACE INTO row_set (name, digest) VALUES (?, ?), (?, ?)",
            arguments: [stateRow, state.encoded(mac: Keys(key).state), generationRow, generation(of: key)])
    }

    /// Names an integrity key without revealing it: 8 bytes of an HMAC under it.
    static func generation(of key: SymmetricKey) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data("generation".utf8), using: key).prefix(8))
    }

    /// What is wrong with the rows, in words without content: empty when every table matches
    /// its sealed digest. `full` recomputes every table; otherwise the large ones (records,
    /// attachments) are only counted, which is what the check at start does. `keys` are the
    /// integrity keys the state may be sealed with (current first, then the previous one
    /// during a re-key); the snapshot's generation row picks one.
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
                "triggers added or altered outside ehr-syncd: \(foreign.prefix(5).joined(separator: ", ")): the database "
                    + "was changed outside ehr-syncd")
        }
        let sealedWith = try Data.fetchOne(
            db, sql: "SELECT digest FROM row_set WHERE name = ?", arguments: [generationRow])
        guard let key = keys.first(where: { generation(of: $0) == sealedWith }),
            let encoded = try Data.fetchOne(db, sql: "SELECT digest FROM row_set WHERE name = ?", arguments: [stateRow])
        else {
            problems.append("the digests are missing or not sealed with this replica's key (altered or replaced)")
            return problems
        }
        let state = RowSetState(encoded: encoded, tables: tables.count, mac: Keys(key).state)
        guard state.valid else {
            problems.append("the sealed digests were altered")
            return problems
        }
        for (table, sealed) in zip(tables, state.digests) {
            if full || checkedInFullAtStart.contains(table.name) {
                let actual = try compute(table, db: db)
                if let problem = difference(table.name, sealed: sealed, actual: actual) { problems.append(problem) }
            } else {
                let count = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table.name)") ?? 0
                if count != sealed.count {
                    problems.append(difference(table.name, sealed: sealed, actual: RowSetDigest(count: count))!)
                }
            }
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
