public import GRDB

/// Writes to a replica file as a tool outside ehr-syncd would (the `sqlite3` shell, an
/// attacker with the file): the row-set triggers call functions only ehr-syncd registers, so
/// a plain write fails; this sets them aside, runs `body`, and puts them back as they were.
public enum OutsideWriter {
    public static func write<T>(_ path: String, _ body: (Database) throws -> T) throws -> T {
        try DatabaseQueue(path: path).write { db in
            let triggers = try Row.fetchAll(
                db, sql: "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rowset%'")
            for trigger in triggers {
                let name: String = trigger["name"]
                try db.execute(sql: "DROP TRIGGER \(name)")
            }
            let result = try body(db)
            for trigger in triggers {
                let sql: String = trigger["sql"]
                try db.execute(sql: sql)
            }
            return result
        }
    }
}
