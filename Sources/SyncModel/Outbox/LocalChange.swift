public import Foundation

/// A change made through the local API, before it is queued.
public struct LocalChange: Sendable {
    public var operation: OutboxOperation
    public var resourceType: String
    /// The target's id (nil for creates).
    public var id: String?
    /// The resource as sent by the client (nil for deletes).
    public var resource: Data?
    /// Who made it (from the local credential).
    public var author: String

    public init(operation: OutboxOperation, resourceType: String, id: String?, resource: Data?, author: String) {
        self.operation = operation
        self.resourceType = resourceType
        self.id = id
        self.resource = resource
        self.author = author
    }
}

/// The outcome of queuing a local change.
public struct QueuedChange: Sendable {
    /// The outbox entry holding the change (an earlier one when it was squashed into it).
    public var seq: Int64
    /// The id local clients use for the resource.
    public var localID: String
    /// The local view of the resource after the change (with the pending tag); nil for deletes.
    public var resource: Data?

    public init(seq: Int64, localID: String, resource: Data?) {
        self.seq = seq
        self.localID = localID
        self.resource = resource
    }
}

/// What the local view holds for a resource: the replica's server version overlaid with
/// queued local changes.
public enum LocalView: Sendable {
    /// A local change not yet on the server: the content carries a `meta.tag` saying so.
    case pending(Data, seq: Int64, state: OutboxState)
    /// Deleted locally, not yet on the server.
    case deletedLocally(seq: Int64)
    /// The server's version as mirrored.
    case server(StoredResource)
    case notFound
}

/// The `meta.tag` that marks local changes not yet on the EHR.
public enum PendingTag {
    public static let system = "https://ehr-sync.org/fhir/CodeSystem/sync-state"

    static func coding(_ state: OutboxState) -> JSONValue {
        let display =
            switch state {
            case .conflict: "Local change in conflict with the EHR, awaiting review"
            case .parked: "Local change rejected by the EHR, awaiting correction"
            default: "Entered locally, not yet sent to the EHR"
            }
        let code = state == .pending ? "pending" : state.rawValue
        return ["system": .string(system), "code": .string(code), "display": .string(display)]
    }
}
