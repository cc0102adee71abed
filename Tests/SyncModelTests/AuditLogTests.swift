import Foundation
import GRDB
import SyncModel
import SyncStore
import SyncTestSupport
import Testing

/// The audit trail: sealed lines chained with an HMAC, so any edit, removal or reordering
/// of a line is found by `verifyAudit()`.
@Suite struct AuditLogTests {
    let dir: TemporaryDirectory
    let kek = KeyEncryptionKey.generate()

    init() throws { dir = try TemporaryDirectory() }

    func open() throws -> Replica {
        try Replica.open(directory: dir.path, kek: kek, keySource: "test key")
    }

    static let records = (1...5).map { i in
        AuditRecord(
            at: "2026-03-0\(i)T10:00:00.000Z", actor: "uid 100\(i)",
            action: i % 2 == 0 ? "outbox-retry" : "local-write",
            target: "Patient/p\(i)", detail: "entry #\(i)")
    }

    /// A replica with the five records, closed so that its file can be edited.
    func writeRecords() throws {
        let replica = try open()
        for record in Self.records { try replica.audit.append(record) }
        #expect(try replica.audit.verify() == .success(Self.records.count))
        replica.close()
    }

    /// The break a verification reports, or nil (with an issue) when it passed.
    func brokenLine(_ result: Result<Int, AuditBreak>) throws -> AuditBreak? {
        switch result {
        case .success(let count):
            Issue.record("the chain verified (\(count) lines)")
            return nil
        case .failure(let broken):
            return broken
        }
    }

    @Test func anEmptyTrailVerifies() throws {
        #expect(try open().audit.verify() == .success(0))
    }

    /// The head exists from creation: a trail emptied of its lines and its head never verifies,
    /// and reopening does not write a new head.
    @Test func anEmptiedTrailNeverVerifies() throws {
        try writeRecords()
        try DatabaseQueue(path: dir.file(Replica.fileName)).write { db in
            try db.execute(sql: "DELETE FROM audit_log")
            try db.execute(sql: "DELETE FROM replica_meta WHERE name = 'audit_head'")
        }
        let reopened = try open()
        #expect(try reopened.audit.verify() == .failure(AuditBreak(seq: 1, reason: "head missing")))
        reopened.close()
        // Not even on a second opening: the head is never made again.
        #expect(try open().audit.verify() == .failure(AuditBreak(seq: 1, reason: "head missing")))
    }

    @Test func recordsAreKeptInOrderAndVerify() throws {
        let replica = try open()
        for (n, record) in Self.records.enumerated() {
            try replica.audit.append(record)
            #expect(try replica.audit.verify() == .success(n + 1))
        }
        #expect(try replica.audit.records() == Self.records)
        #expect(try replica.audit.records(since: Self.records[3].at) == Array(Self.records[3...]))
        #expect(try replica.audit.records(since: "2027-01-01T00:00:00Z").isEmpty)
        // The newest matching lines, read from the end, in trail order.
        let writes = Self.records.filter { $0.action == "local-write" }
        for newest in 0...4 {
            #expect(
                try replica.audit.records(since: nil, newest: newest) { $0.action == "local-write" }
                    == Array(writes.suffix(newest)))
        }
        #expect(
            try replica.audit.records(since: Self.records[1].at, newest: 10) { $0.action == "local-write" }
                == Array(writes.dropFirst()))
        replica.close()
        let reopened = try open()
        #expect(try reopened.audit.verify() == .success(Self.records.count))
        #expect(try reopened.audit.records() == Self.records)
        // The chain goes on after a reopen.
        try reopened.audit.append(AuditRecord(at: "2026-04-01T00:00:00.000Z", actor: "uid 0", action: "key-rotate"))
        #expect(try reopened.audit.verify() == .success(Self.records.count + 1))
    }

    @Test func aBatchChainsLikeSingleAppends() throws {
        let replica = try open()
        try replica.audit.append(Array(Self.records.prefix(2)))
        try replica.audit.append(Array(Self.records.dropFirst(2)))
        #expect(try replica.audit.verify() == .success(Self.records.count))
        #expect(try replica.audit.records() == Self.records)
        try replica.audit.append([])
        #expect(try replica.audit.verify() == .success(Self.records.count))
    }

    @Test func linesAreSealedOnDisk() throws {
        try writeRecords()
        let bodies = try DatabaseQueue(path: dir.file(Replica.fileName)).read { db in
            try Data.fetchAll(db, sql: "SELECT body FROM audit_log ORDER BY seq")
        }
        #expect(bodies.count == Self.records.count)
        for body in bodies {
            #expect(
                PHINeedles.find(["uid 100", "Patient/p", "outbox-retry", "local-write"], in: [UInt8](body)).isEmpty)
        }
    }

    enum Tamper: String, CaseIterable, Sendable {
        case editTime, editBody, bodyOfAnotherLine, deleteMiddle, deleteFirst, swapLines, moveLastLine

        /// The line reported, and why.
        var expected: (seq: Int64, reason: String) {
            switch self {
            case .editTime, .editBody, .bodyOfAnotherLine, .swapLines: (3, "line altered")
            case .deleteMiddle: (3, "line missing")
            case .deleteFirst: (1, "line missing")
            case .moveLastLine: (5, "line missing")
            }
        }

        func apply(_ db: Database) throws {
            switch self {
            case .editTime:
                try db.execute(sql: "UPDATE audit_log SET at = '2026-03-09T10:00:00.000Z' WHERE seq = 3")
            case .editBody:
                var body = try #require(try Data.fetchOne(db, sql: "SELECT body FROM audit_log WHERE seq = 3"))
                body[body.count / 2] ^= 0x01
                try db.execute(sql: "UPDATE audit_log SET body = ? WHERE seq = 3", arguments: [body])
            case .bodyOfAnotherLine:
                try db.execute(
                    sql: "UPDATE audit_log SET body = (SELECT body FROM audit_log WHERE seq = 4) WHERE seq = 3")
            case .deleteMiddle:
                try db.execute(sql: "DELETE FROM audit_log WHERE seq = 3")
            case .deleteFirst:
                try db.execute(sql: "DELETE FROM audit_log WHERE seq = 1")
            case .swapLines:
                try db.execute(sql: "UPDATE audit_log SET seq = -1 WHERE seq = 3")
                try db.execute(sql: "UPDATE audit_log SET seq = 3 WHERE seq = 4")
                try db.execute(sql: "UPDATE audit_log SET seq = 4 WHERE seq = -1")
                // Keep the times in order, as a careful forger would.
                try db.execute(
                    sql: """
                        UPDATE audit_log SET at = CASE seq WHEN 3 THEN '2026-03-03T10:00:00.000Z'
                            ELSE '2026-03-04T10:00:00.000Z' END WHERE seq IN (3, 4)
                        """)
            case .moveLastLine:
                // The last line replaced by a copy of line 4 numbered 6.
                try db.execute(sql: "DELETE FROM audit_log WHERE seq = 5")
                try db.execute(
                    sql:
                        "INSERT INTO audit_log (seq, at, body, chain) SELECT 6, at, body, chain FROM audit_log WHERE seq = 4"
                )
            }
        }
    }

    @Test(arguments: Tamper.allCases)
    func tamperingIsFoundAtTheLineItTouched(tamper: Tamper) throws {
        try writeRecords()
        try DatabaseQueue(path: dir.file(Replica.fileName)).write { db in try tamper.apply(db) }
        let broken = try brokenLine(try open().audit.verify())
        #expect(broken?.seq == tamper.expected.seq)
        #expect(broken?.reason == tamper.expected.reason)
    }

    @Test func anotherReplicasKeyDoesNotVerifyTheTrail() throws {
        try writeRecords()
        // Same records in another replica: its chain differs, so lines cannot be transplanted.
        let other = try TemporaryDirectory()
        let replica = try Replica.open(directory: other.path, kek: .generate(), keySource: "other key")
        for record in Self.records { try replica.audit.append(record) }
        replica.close()
        let theirs = try DatabaseQueue(path: other.file(Replica.fileName)).read { db in
            try Row.fetchAll(db, sql: "SELECT seq, at, body, chain FROM audit_log WHERE seq = 2")
        }
        try DatabaseQueue(path: dir.file(Replica.fileName)).write { db in
            let row = try #require(theirs.first)
            try db.execute(
                sql: "UPDATE audit_log SET at = ?, body = ?, chain = ? WHERE seq = 2",
                arguments: [row["at"], row["body"], row["chain"]])
        }
        let broken = try brokenLine(try open().audit.verify())
        #expect(broken?.seq == 2)
        #expect(broken?.reason == "line altered")
    }
}
