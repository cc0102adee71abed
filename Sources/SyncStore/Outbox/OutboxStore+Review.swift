import Foundation
import GRDB
public import SyncModel

extension OutboxStore {
    /// Settles a conflict; audited. The chosen version is queued again (pending) with the
    /// server's version at the time as its base, or the entry is closed when the server's
    /// version is kept.
    public func resolveConflict(seq: Int64, choice: ConflictChoice, actor: String) throws(OutboxError) {
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        try outboxWrite { db in
            guard let entry = try entry(seq: seq, db: db) else { throw OutboxError.noSuchEntry(seq) }
            let resolution = try ConflictResolution.resolve(entry, choice: choice, actor: actor, now: now)
            let payload = resolution.payload
            try rewriteEntry(
                seq: seq, type: entry.resourceType, localID: entry.localID, operation: resolution.operation,
                state: resolution.state, payload: payload, at: now, db: db)
            try audit.append(
                AuditRecord(
                    at: now, actor: actor, action: "conflict-resolve",
                    target: "\(entry.resourceType)/\(payload.serverID ?? entry.localID)",
                    detail: "entry #\(seq), kept \(resolution.kept)"), db: db)
        }
    }

    /// Sends a parked entry again (after the cause was fixed on the server); audited.
    public func retryParked(seq: Int64, actor: String) throws(OutboxError) {
        try restate(seq: seq, actor: actor, action: "outbox-retry") { entry in
            (.pending, try ConflictResolution.retry(entry))
        }
    }

    /// Holds a pending entry for an administrator: parked with `reason`, in the trail.
    public func hold(seq: Int64, reason: String, actor: String) throws(OutboxError) {
        try restate(seq: seq, actor: actor, action: "outbox-hold") { entry in
            guard entry.state == .pending else { return nil }
            var payload = entry.payload
            payload.reason = reason
            return (.parked, payload)
        }
    }

    /// Gives one entry the state and payload `change` returns (nil: left as it is), with its
    /// trail line, in one durable transaction.
    func restate(
        seq: Int64, actor: String, action: String,
        _ change: (OutboxEntry) throws -> (state: OutboxState, payload: OutboxPayload)?
    ) throws(OutboxError) {
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        try outboxWrite { db in
            guard let entry = try entry(seq: seq, db: db) else { throw OutboxError.noSuchEntry(seq) }
            guard let (state, payload) = try change(entry) else { return }
            try rewriteEntry(
                seq: seq, type: entry.resourceType, localID: entry.localID, operation: entry.operation,
                state: state, payload: payload, at: now, db: db)
            try audit.append(
                AuditRecord(
                    at: now, actor: actor, action: action,
                    target: "\(entry.resourceType)/\(payload.serverID ?? entry.localID)", detail: "entry #\(seq)"),
                db: db)
        }
    }

    /// A durable (fsync'd) transaction whose errors are outbox errors.
    func outboxWrite<T>(_ body: (Database) throws -> T) throws(OutboxError) -> T {
        do {
            return try durablePoolWrite(body)
        } catch let error as OutboxError {
            throw error
        } catch let error as ReplicaError {
            throw .replica(error)
        } catch {
            throw .replica(ReplicaError.from(error))
        }
    }
}
