import Foundation
import GRDB
public import SyncModel

extension ResourceStore {
    /// The current version of a resource, or nil when absent or deleted (unless
    /// `includeDeleted`).
    ///
    /// - Throws: ``ReplicaError/integrity(resourceType:row:)`` when the row was tampered with.
    public func resource(type: String, id: String, includeDeleted: Bool = false) throws(ReplicaError)
        -> StoredResource?
    {
        let bid = blind(type: type, id: id)
        return try read { db in
            guard
                let row = try Row.fetchOne(
                    try db.cachedStatement(sql: "SELECT \(Self.columns) FROM resource WHERE type = ? AND bid = ?"),
                    arguments: [type, bid])
            else { return nil }
            let stored = try decode(row, id: id)
            return stored.deleted && !includeDeleted ? nil : stored
        }
    }

    /// Every live resource in a patient's compartment (the Patient included), optionally of
    /// some types only.
    public func resources(forPatient patientID: String, types: [String]? = nil) throws(ReplicaError) -> [StoredResource]
    {
        let pbid = blind(type: "Patient", id: patientID)
        return try read { db in
            var sql = "SELECT \(Self.columns) FROM resource WHERE patient = ? AND deleted = 0"
            var args: [any DatabaseValueConvertible] = [pbid]
            if let types, !types.isEmpty {
                sql += " AND type IN (\(types.map { _ in "?" }.joined(separator: ",")))"
                args += types.map { $0 as any DatabaseValueConvertible }
            }
            sql += " ORDER BY type, row"  // the index's order: no sort
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { try decode($0, id: nil) }
        }
    }

    /// The ids of the live Patients, sorted (from memory: no scan).
    public func patientIDs() -> [String] { patients.withLock { $0.ids } }

    /// Calls `body` for every stored resource (of one type, if given), tombstones included
    /// when asked, in storage order. Memory stays bounded: rows are decrypted one at a time.
    public func forEachResource(
        type: String? = nil, includeDeleted: Bool = false, _ body: (StoredResource) throws -> Void
    ) throws(ReplicaError) {
        try read { db in
            var sql = "SELECT \(Self.columns) FROM resource"
            var conditions: [String] = []
            var args: [any DatabaseValueConvertible] = []
            if let type {
                conditions.append("type = ?")
                args.append(type)
            }
            if !includeDeleted { conditions.append("deleted = 0") }
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            let cursor = try Row.fetchCursor(db, sql: sql, arguments: StatementArguments(args))
            while let row = try cursor.next() {
                try body(try decode(row, id: nil))
            }
        }
    }

    /// Number of live (not deleted) resources, of one type or all: all rows (counted on the
    /// (type, bid) index) minus tombstones (on their own index), never a scan of the bodies.
    public func count(type: String? = nil) throws(ReplicaError) -> Int {
        try read { db in
            if let type {
                return try Int.fetchOne(
                    db,
                    sql: """
                        SELECT (SELECT COUNT(*) FROM resource WHERE type = ?)
                             - (SELECT COUNT(*) FROM resource WHERE deleted = 1 AND type = ?)
                        """,
                    arguments: [type, type]) ?? 0
            }
            return try Int.fetchOne(
                db,
                sql: "SELECT (SELECT COUNT(*) FROM resource) - (SELECT COUNT(*) FROM resource WHERE deleted = 1)") ?? 0
        }
    }

    /// Live resources per type (types with none left out).
    public func counts() throws(ReplicaError) -> [String: Int] {
        try read { db in
            var result: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT type, COUNT(*) FROM resource GROUP BY type") {
                result[row[0]] = row[1]
            }
            for row in try Row.fetchAll(
                db, sql: "SELECT type, COUNT(*) FROM resource WHERE deleted = 1 GROUP BY type")
            {
                result[row[0], default: 0] -= row[1] as Int
            }
            return result.filter { $0.value > 0 }
        }
    }

    /// Bookkeeping of a stored version without decrypting it (for sync decisions).
    public func storedVersion(type: String, id: String) throws(ReplicaError) -> UpsertDecision.Version? {
        let bid = blind(type: type, id: id)
        return try read { db in
            try Row.fetchOne(
                db,
                sql: "SELECT version_id, last_updated, content_hash, deleted FROM resource WHERE type = ? AND bid = ?",
                arguments: [type, bid]
            ).map { row in
                UpsertDecision.Version(
                    versionId: row[0], lastUpdated: row[1], contentHash: Array(row[2] as Data),
                    deleted: (row[3] as Int64) != 0)
            }
        }
    }

    static let columns = "row, type, bid, version_id, last_updated, content_hash, deleted, body"

    /// Opens one row. The id is checked against the blind index, so a body moved to another
    /// row fails even if its seal were somehow valid there.
    func decode(_ row: Row, id: String?) throws -> StoredResource {
        try decodeWithOutline(row, id: id).resource
    }

    /// ``decode(_:id:)``, and the encoded ``ResourceOutline`` sealed with the body (nil for a
    /// body stored before outlines).
    func decodeWithOutline(_ row: Row, id: String?) throws -> (resource: StoredResource, outline: Data?) {
        let rowID: Int64 = row[0]
        let type: String = row[1]
        let bid: Data = row[2]
        let versionId: String? = row[3]
        let deleted = (row[6] as Int64) != 0
        let context = ResourceStore.context(type: type, bid: bid, versionId: versionId, deleted: deleted)
        guard let body = keys.open(row[7], context: context), let parts = ResourceOutline.split(body) else {
            throw ReplicaError.integrity(resourceType: type, row: rowID)
        }
        let (json, outline) = parts
        let resolvedID: String
        if let id {
            resolvedID = id
        } else {
            // The outline's id (sealed with the body) spares a parse of the JSON.
            guard
                let found = outline.flatMap({ ResourceOutline.id(encoded: $0) })
                    ?? (try? ResourceEnvelope.parse(json))?.id,
                blind(type: type, id: found) == bid
            else { throw ReplicaError.integrity(resourceType: type, row: rowID) }
            resolvedID = found
        }
        let resource = StoredResource(
            resourceType: type, id: resolvedID, versionId: versionId, lastUpdated: row[4], json: json,
            deleted: deleted, contentHash: row[5])
        return (resource, outline)
    }
}
