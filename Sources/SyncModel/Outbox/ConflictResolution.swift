public import Foundation

/// How a reviewer settles a conflict.
public enum ConflictChoice: Sendable, Equatable {
    /// The practice's version goes to the server, over the server's.
    case local
    /// The server's version stays; the local change is closed.
    case remote
    /// A merged resource written by the reviewer goes to the server.
    case content(Data)
}

/// What a review decision does to an outbox entry. The outbox store writes the result and
/// its audit line in one commit; nothing here reads or writes.
///
/// | entry    | action                | result                                                          |
/// |----------|-----------------------|-----------------------------------------------------------------|
/// | conflict | resolve, keep remote  | discarded, reason "the EHR's version kept"                      |
/// | conflict | resolve, keep local   | pending, forced over the server, base = the remote at the time  |
/// | conflict | resolve, with content | pending update of that content, forced, base = the remote       |
/// | parked   | retry                 | pending, reason and OperationOutcome cleared                    |
/// | other    | either                | refused: `wrongState` (nothing changes)                         |
public struct ConflictResolution: Equatable, Sendable {
    public var operation: OutboxOperation
    public var state: OutboxState
    public var payload: OutboxPayload
    /// `local`, `remote` or `file`, for the audit trail.
    public var kept: String

    public static func resolve(_ entry: OutboxEntry, choice: ConflictChoice, actor: String, now: String)
        throws(OutboxError) -> ConflictResolution
    {
        guard entry.state == .conflict else {
            throw OutboxError.wrongState(seq: entry.seq, state: entry.state, expected: "conflict")
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
            let id = payload.serverID ?? entry.localID
            var object = ResourceEdits.withoutServerMeta(
                try ResourceEdits.parse(data, resourceType: entry.resourceType))
            if let given = object["id"], given != .string(id) {
                throw OutboxError.invalid("the merged resource's id is not the conflicting record's id")
            }
            object["id"] = .string(id)
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
        return ConflictResolution(operation: operation, state: state, payload: payload, kept: kept)
    }

    /// A parked entry sent again once the cause was fixed on the server.
    public static func retry(_ entry: OutboxEntry) throws(OutboxError) -> OutboxPayload {
        guard entry.state == .parked else {
            throw OutboxError.wrongState(seq: entry.seq, state: entry.state, expected: "parked")
        }
        var payload = entry.payload
        payload.reason = nil
        payload.outcome = nil
        return payload
    }
}
