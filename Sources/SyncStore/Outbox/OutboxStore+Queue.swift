public import Foundation
import GRDB
public import SyncModel

/// The outbox: local changes queued durably until replay puts them on the server.
///
/// Rows keep in clear only the queue order, resource type, operation, state and times; the
/// target is a blind index and everything else (content, base, author, server replies) is
/// sealed, bound to its row's number, type, target, operation and state.
extension OutboxStore {
    static let openStates = "('pending','parked','conflict')"

    /// Queues a local change and returns once it is committed (fsync'd): the acknowledgement
    /// a client gets means the change survives a crash.
    ///
    /// Where the change goes (a new entry, squashed into the target's pending entry when that
    /// entry is not being sent, chained after it, or refused) is ``EnqueuePlan``'s decision.
    public func enqueue(_ change: LocalChange, now: Date = Date(), isInFlight: (Int64) -> Bool = { _ in false })
        throws(OutboxError) -> QueuedChange
    {
        let type = change.resourceType
        guard FHIRID.isValidType(type) else { throw .invalid("\(type) is not a FHIR resource type") }
        var content: JSONObject?
        if let data = change.resource {
            if data.count > sizeLimit { throw .invalid("the resource is larger than \(sizeLimit) bytes") }
            content = ResourceEdits.withoutServerMeta(try ResourceEdits.parse(data, resourceType: type))
        }
        let localTime = FHIRInstant.format(now.timeIntervalSince1970)
        return try outboxWrite { db throws -> QueuedChange in
            let clientIdentifier = "urn:uuid:" + UUID().uuidString.lowercased()
            guard change.operation != .create else {
                guard var object = content else { throw OutboxError.invalid("a create needs a resource") }
                let localID = UUID().uuidString.lowercased()
                object["id"] = .string(localID)
                let body = JSONValue.object(object).data()
                let references = try localReferences(in: object, db: db).filter { $0 != "\(type)/\(localID)" }
                let payload = OutboxPayload.create(
                    localID: localID, resource: body, references: references, clientIdentifier: clientIdentifier,
                    author: change.author, localTime: localTime)
                let seq = try insertEntry(type: type, operation: .create, payload: payload, at: localTime, db: db)
                return QueuedChange(seq: seq, localID: localID, resource: localViewBody(body, state: .pending))
            }
            guard let requestedID = change.id, FHIRID.isValid(requestedID) else {
                throw OutboxError.invalid("the URL has no valid resource id")
            }
            let id = try serverID(ofLocal: type, requestedID, db: db) ?? requestedID
            var body: Data?
            var references: [String] = []
            if var object = content {
                if let bodyID = object["id"], bodyID != .string(requestedID) {
                    throw OutboxError.invalid("the resource's id does not match the URL's id")
                }
                object["id"] = .string(id)
                references = try localReferences(in: object, db: db)
                body = JSONValue.object(object).data()
            }
            let open = try latestOpenEntry(type: type, id: id, db: db)
            let row = open == nil ? try fetchResourceRow(type: type, id: id, db: db) : nil
            let plan = EnqueuePlan.plan(
                change.operation,
                open: open.map {
                    EnqueuePlan.OpenEntry(
                        seq: $0.seq, operation: $0.operation, state: $0.state, inFlight: isInFlight($0.seq))
                },
                stored: row.map { $0.deleted ? .deleted : .live } ?? .absent)
            let queued = { (seq: Int64) in
                QueuedChange(
                    seq: seq, localID: requestedID, resource: body.map { self.localViewBody($0, state: .pending) })
            }
            switch plan {
            case .refuse(.gone):
                throw OutboxError.gone(resourceType: type)
            case .refuse(.notFound):
                throw OutboxError.notFound(resourceType: type)
            case .create:
                throw OutboxError.invalid("a create needs no id")  // unreachable: creates return above
            case .squash(let seq, let operation):
                guard let open else { throw OutboxError.noSuchEntry(seq) }
                let payload = open.payload.squashing(
                    resource: body, references: references, author: change.author, localTime: localTime)
                try rewriteEntry(
                    seq: seq, type: type, localID: id, operation: operation, state: .pending, payload: payload,
                    at: localTime, db: db)
                return queued(seq)
            case .drop(let seq):
                guard let open else { throw OutboxError.noSuchEntry(seq) }
                try rewriteEntry(
                    seq: seq, type: type, localID: id, operation: open.operation, state: .discarded,
                    payload: open.payload.dropped(), at: localTime, db: db)
                return QueuedChange(seq: seq, localID: requestedID, resource: nil)
            case .chain(let after):
                guard let open, open.seq == after else { throw OutboxError.noSuchEntry(after) }
                let payload = OutboxPayload.chained(
                    after: open, resource: body, references: references, clientIdentifier: clientIdentifier,
                    author: change.author, localTime: localTime)
                return queued(
                    try insertEntry(
                        type: type, operation: change.operation, payload: payload, at: localTime, db: db))
            case .newEntry:
                guard let row else { throw OutboxError.notFound(resourceType: type) }
                let payload = OutboxPayload.edit(
                    of: row, resource: body, references: references, clientIdentifier: clientIdentifier,
                    author: change.author, localTime: localTime)
                return queued(
                    try insertEntry(
                        type: type, operation: change.operation, payload: payload, at: localTime, db: db))
            }
        }
    }

    /// The local view of one resource: queued local changes over the mirrored version.
    public func localView(type: String, id: String) throws(ReplicaError) -> LocalView {
        try read { db in
            let target = try serverID(ofLocal: type, id, db: db) ?? id
            if let open = try latestOpenEntry(type: type, id: target, db: db) {
                if open.operation == .delete { return .deletedLocally(seq: open.seq) }
                if let body = open.payload.resource {
                    return .pending(localViewBody(body, state: open.state), seq: open.seq, state: open.state)
                }
            }
            guard let row = try fetchResourceRow(type: type, id: target, db: db), !row.deleted else {
                return .notFound
            }
            return .server(row)
        }
    }

    /// Outbox entries, in queue order, optionally of some states only.
    public func entries(states: Set<OutboxState>? = nil) throws(ReplicaError) -> [OutboxEntry] {
        try read { db in
            var sql = "SELECT seq, type, bid, op, state, updated_at, body FROM outbox"
            if let states {
                sql += " WHERE state IN (\(states.map { "'\($0.rawValue)'" }.sorted().joined(separator: ",")))"
            }
            sql += " ORDER BY seq"
            return try Row.fetchAll(db, sql: sql).map(decodeEntry)
        }
    }

    /// One outbox entry.
    public func entry(seq: Int64) throws(ReplicaError) -> OutboxEntry? {
        try read { db in try entry(seq: seq, db: db) }
    }

    /// Entries per state.
    public func counts() throws(ReplicaError) -> [OutboxState: Int] {
        try read { db in
            var counts: [OutboxState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) FROM outbox GROUP BY state") {
                if let state = OutboxState(rawValue: row[0]) { counts[state] = row[1] }
            }
            return counts
        }
    }

    /// The server id a local create received, once replayed.
    public func serverID(ofLocal type: String, _ localID: String) throws(ReplicaError) -> String? {
        try read { db in try serverID(ofLocal: type, localID, db: db) }
    }

    // MARK: Replay results

    /// Records a replayed change: the entry is done, a create's id is mapped, and the
    /// server's result (when it sent one) replaces the replica's version, all in one commit.
    /// `restore` (a create sent without its references into a cycle) is queued in the same
    /// commit as an update of the new record (``OutboxPayload/restoring(_:serverID:resource:base:baseVersion:clientIdentifier:)``),
    /// unless a later local edit of it is already queued (that edit carries the full content).
    public func complete(
        _ entry: OutboxEntry, serverID: String, resultVersion: String?, result: PreparedVersion?, deleted: Bool,
        restore: (resource: Data, base: Data?)? = nil
    ) throws(ReplicaError) {
        let changed = try write { db -> [PreparedVersion] in
            var payload = entry.payload
            payload.serverID = serverID
            payload.resultVersion = resultVersion
            try rewriteEntry(
                seq: entry.seq, type: entry.resourceType, localID: entry.localID, operation: entry.operation,
                state: .done, payload: payload, at: FHIRInstant.format(Date().timeIntervalSince1970), db: db)
            if entry.operation == .create {
                let bid = blind(type: entry.resourceType, id: entry.localID)
                let sealed = try keys.seal(Data(serverID.utf8), context: Self.localIDContext(entry.resourceType, bid))
                try db.execute(
                    sql: "INSERT OR REPLACE INTO local_id (type, bid, server_id) VALUES (?, ?, ?)",
                    arguments: [entry.resourceType, bid, sealed])
                // Changes chained behind the create (made while it was being sent) now target the
                // server id, like every later change of this record.
                try rekeyOpenEntries(type: entry.resourceType, from: entry.localID, to: serverID, db: db)
                if let restore, try latestOpenEntry(type: entry.resourceType, id: serverID, db: db) == nil {
                    let now = FHIRInstant.format(Date().timeIntervalSince1970)
                    let update = OutboxPayload.restoring(
                        payload, serverID: serverID, resource: restore.resource, base: restore.base,
                        baseVersion: resultVersion, clientIdentifier: "urn:uuid:" + UUID().uuidString.lowercased())
                    _ = try insertEntry(type: entry.resourceType, operation: .update, payload: update, at: now, db: db)
                }
            }
            if deleted {
                _ = try records.tombstone(
                    type: entry.resourceType, bid: blind(type: entry.resourceType, id: serverID),
                    versionId: resultVersion, lastUpdated: nil, db: db)
                if entry.resourceType == "Patient" {
                    let bid = blind(type: "Patient", id: serverID)
                    records.patients.withLock { $0.remove(bid: bid) }
                }
                return []
            }
            if let result { return try records.store([result], db: db).1 }
            return []
        }
        records.indexPatients(changed)
    }

    /// Moves an entry to another state with its payload updated (parked, conflict,
    /// discarded, pending again).
    public func update(_ entry: OutboxEntry, state: OutboxState, payload: OutboxPayload) throws(ReplicaError) {
        try write { db in
            try rewriteEntry(
                seq: entry.seq, type: entry.resourceType, localID: entry.localID, operation: entry.operation,
                state: state, payload: payload, at: FHIRInstant.format(Date().timeIntervalSince1970), db: db)
        }
    }

    /// Counts a replay attempt that reached the server.
    public func recordAttempt(_ entry: OutboxEntry) throws(ReplicaError) {
        var payload = entry.payload
        payload.attempts += 1
        try update(entry, state: entry.state, payload: payload)
    }

    // MARK: Rows

    func fetchResourceRow(type: String, id: String, db: Database) throws -> StoredResource? {
        let bid = blind(type: type, id: id)
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT \(ResourceStore.columns) FROM resource WHERE type = ? AND bid = ?",
                arguments: [type, bid])
        else { return nil }
        return try records.decode(row, id: id)
    }

    func serverID(ofLocal type: String, _ localID: String, db: Database) throws -> String? {
        let bid = blind(type: type, id: localID)
        guard
            let sealed = try Data.fetchOne(
                db, sql: "SELECT server_id FROM local_id WHERE type = ? AND bid = ?", arguments: [type, bid])
        else { return nil }
        guard let plain = keys.open(sealed, context: Self.localIDContext(type, bid)) else {
            throw ReplicaError.corruptState("local id map")
        }
        return String(decoding: plain, as: UTF8.self)
    }

    static func localIDContext(_ type: String, _ bid: Data) -> Data {
        Data("l1|\(type)|".utf8) + bid
    }

    /// `Type/localID` of the local creates an object references (open in the outbox or
    /// already replayed).
    func localReferences(in object: JSONObject, db: Database) throws -> [String] {
        try ResourceReferences.collect(.object(object)).filter { key in
            let parts = key.split(separator: "/")
            let type = String(parts[0])
            let bid = blind(type: type, id: String(parts[1]))
            return try Bool.fetchOne(
                db,
                sql: """
                    SELECT EXISTS (SELECT 1 FROM outbox WHERE type = ? AND bid = ? AND op = 'create')
                        OR EXISTS (SELECT 1 FROM local_id WHERE type = ? AND bid = ?)
                    """, arguments: [type, bid, type, bid]) ?? false
        }
    }

    /// Moves the open entries filed under a local id to the server id it was given.
    func rekeyOpenEntries(type: String, from localID: String, to serverID: String, db: Database) throws {
        guard localID != serverID else { return }
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT seq, type, bid, op, state, updated_at, body FROM outbox
                WHERE type = ? AND bid = ? AND state IN \(Self.openStates) ORDER BY seq
                """, arguments: [type, blind(type: type, id: localID)])
        for entry in try rows.map(decodeEntry) {
            var payload = entry.payload
            payload.localID = serverID
            payload.serverID = serverID
            let bid = blind(type: type, id: serverID)
            let sealed = try sealEntry(
                payload, seq: entry.seq, type: type, bid: bid, operation: entry.operation, state: entry.state)
            try db.execute(
                sql: "UPDATE outbox SET bid = ?, body = ? WHERE seq = ?", arguments: [bid, sealed, entry.seq])
        }
    }

    func latestOpenEntry(type: String, id: String, db: Database) throws -> OutboxEntry? {
        let bid = blind(type: type, id: id)
        return try Row.fetchOne(
            db,
            sql: """
                SELECT seq, type, bid, op, state, updated_at, body FROM outbox
                WHERE type = ? AND bid = ? AND state IN \(Self.openStates) ORDER BY seq DESC LIMIT 1
                """, arguments: [type, bid]
        ).map(decodeEntry)
    }

    func entry(seq: Int64, db: Database) throws -> OutboxEntry? {
        try Row.fetchOne(
            db, sql: "SELECT seq, type, bid, op, state, updated_at, body FROM outbox WHERE seq = ?", arguments: [seq]
        ).map(decodeEntry)
    }

    func insertEntry(type: String, operation: OutboxOperation, payload: OutboxPayload, at: String, db: Database)
        throws -> Int64
    {
        let seq =
            (try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'") ?? 0) + 1
        let bid = blind(type: type, id: payload.localID)
        let sealed = try sealEntry(payload, seq: seq, type: type, bid: bid, operation: operation, state: .pending)
        try db.execute(
            sql: """
                INSERT INTO outbox (seq, type, bid, op, state, created_at, updated_at, body)
                VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)
                """, arguments: [seq, type, bid, operation.rawValue, at, at, sealed])
        return seq
    }

    func rewriteEntry(
        seq: Int64, type: String, localID: String, operation: OutboxOperation, state: OutboxState,
        payload: OutboxPayload, at: String, db: Database
    ) throws {
        let bid = blind(type: type, id: localID)
        let sealed = try sealEntry(payload, seq: seq, type: type, bid: bid, operation: operation, state: state)
        try db.execute(
            sql: "UPDATE outbox SET op = ?, state = ?, updated_at = ?, body = ? WHERE seq = ?",
            arguments: [operation.rawValue, state.rawValue, at, sealed, seq])
    }

    func sealEntry(
        _ payload: OutboxPayload, seq: Int64, type: String, bid: Data, operation: OutboxOperation, state: OutboxState
    ) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try keys.seal(
            try encoder.encode(payload),
            context: Self.outboxContext(seq: seq, type: type, bid: bid, operation: operation, state: state))
    }

    static func outboxContext(seq: Int64, type: String, bid: Data, operation: OutboxOperation, state: OutboxState)
        -> Data
    {
        Data("o1|\(seq)|\(type)|".utf8) + bid + Data("|\(operation.rawValue)|\(state.rawValue)".utf8)
    }

    func decodeEntry(_ row: Row) throws -> OutboxEntry {
        let seq: Int64 = row[0]
        let type: String = row[1]
        let bid: Data = row[2]
        guard let operation = OutboxOperation(rawValue: row[3]), let state = OutboxState(rawValue: row[4]) else {
            throw ReplicaError.corruptState("outbox entry #\(seq)")
        }
        guard
            let plain = keys.open(
                row[6], context: Self.outboxContext(seq: seq, type: type, bid: bid, operation: operation, state: state)),
            let payload = try? JSONDecoder().decode(OutboxPayload.self, from: plain),
            blind(type: type, id: payload.localID) == bid
        else { throw ReplicaError.corruptState("outbox entry #\(seq)") }
        return OutboxEntry(
            seq: seq, operation: operation, state: state, resourceType: type, payload: payload, updatedAt: row[5])
    }

    func localViewBody(_ body: Data, state: OutboxState) -> Data {
        guard case .object(let object)? = try? JSONValue(data: body) else { return body }
        return JSONValue.object(ResourceEdits.tagged(object, state: state)).data()
    }
}
