public import Foundation
import GRDB

/// How a reviewer settles a conflict.
public enum ConflictChoice: Sendable, Equatable {
    /// The practice's version goes to the server, over the server's.
    case local
    /// The server's version stays; the local change is closed.
    case remote
    /// A merged resource written by the reviewer goes to the server.
    case content(Data)
}

extension Replica {
    /// Settles a conflict; audited. The chosen version is queued again (pending) with the
    /// server's version at the time as its base, or the entry is closed when the server's
    /// version is kept.
    public func resolveConflict(seq: Int64, choice: ConflictChoice, actor: String) throws(OutboxError) {
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        try outboxWrite { db in
            guard let entry = try entry(seq: seq, db: db) else { throw OutboxError.noSuchEntry(seq) }
            guard entry.state == .conflict else {
                throw OutboxError.wrongState(seq: seq, state: entry.state, expected: "conflict")
            }
            var payload = entry.payload
            var state = OutboxState.pending
            var operation = entry.operation
            let kept: String
            switch choice {
            case .remote:
                state = .discarded
                kept = "remote"
                payload.reason = "conflict resolved: the EHR's version kept"
            case .local:
                kept = "local"
                payload.force = true
            case .content(let data):
                var object = ResourceEdits.withoutServerMeta(
                    try ResourceEdits.parse(data, resourceType: entry.resourceType))
                if let id = object["id"], id != .string(payload.serverID ?? entry.localID) {
                    throw OutboxError.invalid("the merged resource's id is not the conflicting record's id")
                }
                object["id"] = .string(payload.serverID ?? entry.localID)
                payload.resource = JSONValue.object(object).data()
                payload.force = true
                operation = .update
                kept = "file"
            }
            if state == .pending {
                // The server's version at the time of the conflict becomes the base.
                payload.base = payload.remote
                payload.baseVersion = payload.remoteVersion
                payload.after = nil
                payload.reason = nil
            }
            payload.resolution = "kept \(kept) by \(actor) at \(now)"
            try rewriteEntry(
                seq: seq, type: entry.resourceType, localID: entry.localID, operation: operation, state: state,
                payload: payload, at: now, db: db)
            try appendAudit(
                AuditRecord(
                    at: now, actor: actor, action: "conflict-resolve",
                    target: "\(entry.resourceType)/\(payload.serverID ?? entry.localID)",
                    detail: "entry #\(seq), kept \(kept)"), db: db)
        }
    }

    /// Sends a parked entry again (after the cause was fixed on the server); audited.
    public func retryParked(seq: Int64, actor: String) throws(OutboxError) {
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        try outboxWrite { db in
            guard let entry = try entry(seq: seq, db: db) else { throw OutboxError.noSuchEntry(seq) }
            guard entry.state == .parked else {
                throw OutboxError.wrongState(seq: seq, state: entry.state, expected: "parked")
            }
            var payload = entry.payload
            payload.reason = nil
            payload.outcome = nil
            try rewriteEntry(
                seq: seq, type: entry.resourceType, localID: entry.localID, operation: entry.operation,
                state: .pending, payload: payload, at: now, db: db)
            try appendAudit(
                AuditRecord(
                    at: now, actor: actor, action: "outbox-retry",
                    target: "\(entry.resourceType)/\(payload.serverID ?? entry.localID)", detail: "entry #\(seq)"),
                db: db)
        }
    }

    func outboxWrite(_ body: (Database) throws -> Void) throws(OutboxError) {
        do {
            try durablePoolWrite(body)
        } catch let error as OutboxError {
            throw error
        } catch let error as ReplicaError {
            throw .replica(error)
        } catch {
            throw .replica(.database(String(describing: error)))
        }
    }
}
