import Crypto
public import Foundation
import GRDB
public import SyncModel

/// The audit trail: append-only, each line sealed and chained to the one before with an
/// HMAC (key derived from the DEK), so an edited, removed or reordered line breaks the chain.
public struct AuditTrail: Sendable {
    let database: ReplicaDatabase
    var keys: KeyRing { database.keys }

    func append(_ record: AuditRecord, db: Database) throws {
        try append([record], db: db)
    }

    /// Appends records in order within the caller's transaction; the sealed head (last number
    /// and link, kept apart from the lines so that removing the newest lines is detected too)
    /// is written once, after the last.
    func append(_ records: [AuditRecord], db: Database) throws {
        guard !records.isEmpty else { return }
        let last = try Row.fetchOne(
            try db.cachedStatement(sql: "SELECT seq, chain FROM audit_log ORDER BY seq DESC LIMIT 1"))
        var seq: Int64 = last?[0] ?? 0
        var link: Data = last?[1] ?? Data(repeating: 0, count: 32)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let insert = try db.cachedStatement(sql: "INSERT INTO audit_log (seq, at, body, chain) VALUES (?, ?, ?, ?)")
        for record in records {
            seq += 1
            let sealed = try keys.seal(try encoder.encode(record), context: Data("a1|\(seq)".utf8))
            link = chainLink(previous: link, seq: seq, at: record.at, body: sealed)
            try insert.execute(arguments: [seq, record.at, sealed, link])
        }
        try writeHead(seq: seq, link: link, db: db)
    }

    func writeHead(seq: Int64, link: Data, db: Database) throws {
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO replica_meta (name, value) VALUES ('audit_head', ?)")
            .execute(arguments: [try keys.seal(Data("\(seq)|".utf8) + link, context: Data("audit-head".utf8))])
    }

    /// Writes the head once, when the replica is created (or first opened by a version that
    /// keeps one from the start): from then on a missing head is a broken trail, even with no
    /// line. Never re-creates a head that went missing later.
    func establishHead() throws(ReplicaError) {
        try database.durableWrite { db in
            guard
                try Bool.fetchOne(
                    db, sql: "SELECT EXISTS (SELECT 1 FROM replica_meta WHERE name = 'audit_head_pending')")
                    ?? false
            else { return }
            let hasHead =
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM replica_meta WHERE name = 'audit_head')")
                ?? false
            if !hasHead {
                let last = try Row.fetchOne(db, sql: "SELECT seq, chain FROM audit_log ORDER BY seq DESC LIMIT 1")
                try writeHead(seq: last?[0] ?? 0, link: last?[1] ?? Data(repeating: 0, count: 32), db: db)
            }
            try db.execute(sql: "DELETE FROM replica_meta WHERE name = 'audit_head_pending'")
        }
    }

    /// Appends one record in its own transaction.
    public func append(_ record: AuditRecord) throws(ReplicaError) {
        try append([record])
    }

    /// Appends records in order, in one transaction (one fsync).
    public func append(_ records: [AuditRecord]) throws(ReplicaError) {
        try database.durableWrite { db in try append(records, db: db) }
    }

    func chainLink(previous: Data, seq: Int64, at: String, body: Data) -> Data {
        chainLink(previous: previous, seq: seq, at: at, body: body, keys: keys)
    }

    func chainLink(previous: Data, seq: Int64, at: String, body: Data, keys: KeyRing) -> Data {
        var mac = HMAC<SHA256>(key: keys.hashing)
        mac.update(data: Data("audit|".utf8))
        mac.update(data: previous)
        mac.update(data: Data("|\(seq)|\(at)|".utf8))
        mac.update(data: body)
        return Data(mac.finalize())
    }

    /// Checks the whole chain; returns the number of records, or the first broken line.
    public func verify() throws(ReplicaError) -> Result<Int, AuditBreak> {
        try database.read { db in
            var previous = Data(repeating: 0, count: 32)
            var expected: Int64 = 1
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, at, body, chain FROM audit_log ORDER BY seq")
            while let row = try cursor.next() {
                let seq: Int64 = row[0]
                guard seq == expected else { return .failure(AuditBreak(seq: expected, reason: "line missing")) }
                let body: Data = row[2]
                let chain: Data = row[3]
                guard chainLink(previous: previous, seq: seq, at: row[1], body: body) == chain,
                    keys.open(body, context: Data("a1|\(seq)".utf8)) != nil
                else { return .failure(AuditBreak(seq: seq, reason: "line altered")) }
                previous = chain
                expected += 1
            }
            let count = expected - 1
            let head = try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'audit_head'")
            if let head {
                guard let plain = keys.open(head, context: Data("audit-head".utf8)),
                    let bar = plain.firstIndex(of: UInt8(ascii: "|")),
                    let last = Int64(String(decoding: plain[..<bar], as: UTF8.self))
                else { return .failure(AuditBreak(seq: count + 1, reason: "head altered")) }
                if last != count || plain[(bar + 1)...] != previous[...] {
                    return .failure(
                        AuditBreak(seq: min(last, count) + 1, reason: last > count ? "line missing" : "line altered"))
                }
            } else {
                // The head exists from the replica's creation: without it the trail was emptied or cut.
                return .failure(AuditBreak(seq: max(count, 1), reason: "head missing"))
            }
            return .success(Int(count))
        }
    }

    /// The number of the trail's last line (0 when empty).
    public func lastSeq() throws(ReplicaError) -> Int64 {
        try database.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_log") ?? 0 }
    }

    /// The replica's name towards the audit witness: the first 8 bytes of its random id, in hex.
    public func witnessName() throws(ReplicaError) -> String {
        try database.read { db in
            let id = try Data.fetchOne(db, sql: "SELECT value FROM replica_meta WHERE name = 'replica_id'") ?? Data()
            return AuditWitness.hex(id.prefix(8))
        }
    }

    /// Lines after `seq`, at most `limit`, in order, each with its chain link.
    public func lines(after seq: Int64, limit: Int) throws(ReplicaError) -> [(
        seq: Int64, record: AuditRecord, link: Data
    )] {
        try database.read { db in
            var result: [(seq: Int64, record: AuditRecord, link: Data)] = []
            let rows = try Row.fetchCursor(
                db, sql: "SELECT seq, body, chain FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                arguments: [seq, limit])
            while let row = try rows.next() {
                let seq: Int64 = row[0]
                guard let plain = keys.open(row[1], context: Data("a1|\(seq)".utf8)),
                    let record = try? JSONDecoder().decode(AuditRecord.self, from: plain)
                else { throw ReplicaError.corruptState("audit line \(seq)") }
                result.append((seq, record, row[2]))
            }
            return result
        }
    }

    /// The chain link of line `seq`, or nil when there is no such line.
    public func link(seq: Int64) throws(ReplicaError) -> Data? {
        try database.read { db in
            try Data.fetchOne(db, sql: "SELECT chain FROM audit_log WHERE seq = ?", arguments: [seq])
        }
    }

    /// Audit records in order (newest last), optionally since an instant.
    public func records(since: String? = nil) throws(ReplicaError) -> [AuditRecord] {
        try records(since: since, newest: nil) { _ in true }
    }

    /// The records from `since` that `matching` accepts, oldest first; with `newest`, only
    /// the newest that many, read from the end of the trail and stopping there (each line
    /// must be opened to be filtered: the patient and the account are sealed).
    public func records(since: String?, newest: Int?, matching: (AuditRecord) -> Bool) throws(ReplicaError)
        -> [AuditRecord]
    {
        try database.read { db in
            var result: [AuditRecord] = []
            let order = newest == nil ? "ASC" : "DESC"
            let rows = try Row.fetchCursor(
                db, sql: "SELECT seq, body FROM audit_log WHERE at >= ? ORDER BY seq \(order)", arguments: [since ?? ""]
            )
            while let row = try rows.next() {
                if let newest, result.count >= newest { break }
                let seq: Int64 = row[0]
                guard let plain = keys.open(row[1], context: Data("a1|\(seq)".utf8)),
                    let record = try? JSONDecoder().decode(AuditRecord.self, from: plain)
                else { throw ReplicaError.corruptState("audit line \(seq)") }
                if matching(record) { result.append(record) }
            }
            return newest == nil ? result : result.reversed()
        }
    }
}
