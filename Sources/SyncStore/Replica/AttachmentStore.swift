public import Foundation
import GRDB
public import SyncModel

/// Attachments the server serves by URL (e.g. a DocumentReference's scanned letter),
/// sealed like records and found by the blind index of their absolute URL.
public struct AttachmentStore: Sendable {
    let database: ReplicaDatabase
    var keys: KeyRing { database.keys }

    func attachmentBID(_ url: String) -> Data { database.blind(type: "Attachment", id: url) }

    static func attachmentContext(_ bid: Data) -> Data { Data("a1|".utf8) + bid }

    public func contains(url: String) throws(ReplicaError) -> Bool {
        let bid = attachmentBID(url)
        return try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM attachment WHERE bid = ?)", arguments: [bid])
                ?? false
        }
    }

    public func store(url: String, data: Data) throws(ReplicaError) {
        let bid = attachmentBID(url)
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO attachment (bid, size, body, fetched_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT(bid) DO UPDATE SET size = excluded.size, body = excluded.body, fetched_at = excluded.fetched_at
                    """,
                arguments: [
                    bid, data.count, try keys.seal(data, context: Self.attachmentContext(bid)),
                    FHIRInstant.format(Date().timeIntervalSince1970),
                ])
        }
    }

    /// The stored attachment, or nil; an altered one is an integrity error.
    public func data(url: String) throws(ReplicaError) -> Data? {
        let bid = attachmentBID(url)
        return try database.read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT rowid, body FROM attachment WHERE bid = ?", arguments: [bid])
            else { return nil }
            guard let plain = keys.open(row[1], context: Self.attachmentContext(bid)) else {
                throw ReplicaError.integrity(resourceType: "Attachment", row: row[0])
            }
            return plain
        }
    }
}
