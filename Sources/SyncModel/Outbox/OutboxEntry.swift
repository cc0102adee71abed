public import Foundation

/// What a local change does to its target.
public enum OutboxOperation: String, Codable, Sendable, CaseIterable {
    case create, update, delete
}

/// Where a queued change stands.
///
/// `pending` entries are replayed when the EHR is reachable; `parked` ones were rejected by
/// the server (400/422) and wait for `syncctl outbox retry`; `conflict` ones wait in the
/// review queue; `done` and `discarded` are kept for the record.
public enum OutboxState: String, Codable, Sendable, CaseIterable {
    case pending, parked, conflict, done, discarded

    /// Still to be sent or decided.
    public var isOpen: Bool { self == .pending || self == .parked || self == .conflict }
}

/// One queued local change: a create, update or delete of one resource, with everything
/// replay and review need. Sealed as a whole in the outbox table.
public struct OutboxEntry: Sendable, Equatable {
    /// Order of entry; replay follows it where dependencies allow.
    public var seq: Int64
    public var operation: OutboxOperation
    public var state: OutboxState
    public var resourceType: String
    public var payload: OutboxPayload
    /// When the entry was last changed (UTC instant).
    public var updatedAt: String

    public init(
        seq: Int64, operation: OutboxOperation, state: OutboxState, resourceType: String, payload: OutboxPayload,
        updatedAt: String
    ) {
        self.seq = seq
        self.operation = operation
        self.state = state
        self.resourceType = resourceType
        self.payload = payload
        self.updatedAt = updatedAt
    }

    /// The id local clients know the target by.
    public var localID: String { payload.localID }
}

/// The sealed part of an outbox entry.
public struct OutboxPayload: Codable, Sendable, Equatable {
    /// The id local clients use: a local id for creates, the server's id otherwise.
    public var localID: String
    /// The server's id of the target, once known (always for updates and deletes of mirrored
    /// resources; after replay for creates).
    public var serverID: String?
    /// The local version (absent for deletes).
    public var resource: Data?
    /// The server version the local edit started from (the merge base), if any.
    public var base: Data?
    /// `meta.versionId` of ``base``; nil when the server gives none, or when the base is the
    /// result of an earlier queued change (``after``) not yet replayed.
    public var baseVersion: String?
    /// An earlier entry on the same target that must be replayed first; its result is this
    /// entry's base.
    public var after: Int64?
    /// Local creates this change references, as `Type/localID`: they must be replayed first
    /// and their ids rewritten.
    public var references: [String]
    /// `urn:uuid:…`: the client identifier that makes a create idempotent.
    public var clientIdentifier: String
    /// Who made the change (from the local credentials), every author of squashed edits.
    public var authors: Authors
    /// When it was made on the practice's side (UTC instant).
    public var localTime: String
    /// Replay attempts that reached the server.
    public var attempts: Int = 0
    /// After replay: the server's version of the result.
    public var resultVersion: String?
    /// Why the entry is parked, discarded or resolved (HTTP status, server diagnostics).
    public var reason: String?
    /// The server's OperationOutcome when it rejected the change.
    public var outcome: Data?
    /// For conflicts: the server's version at the time, and where the versions disagree.
    public var remote: Data?
    public var remoteVersion: String?
    /// True when the remote had deleted the resource.
    public var remoteDeleted: Bool?
    public var conflicts: [MergeConflict]?
    /// How a conflict was resolved, by whom and when.
    public var resolution: String?
    /// Set when a reviewer chose this version: it is written over the server's.
    public var force: Bool?

    /// Stored names (the sealed JSON of every entry since the first schema).
    enum CodingKeys: String, CodingKey {
        case localID, serverID, resource, base, baseVersion, after, references, clientIdentifier
        case authors = "author"
        case localTime, attempts, resultVersion, reason, outcome, remote, remoteVersion, remoteDeleted, conflicts
        case resolution, force
    }

    public init(
        localID: String, serverID: String?, resource: Data?, base: Data?, baseVersion: String?, after: Int64?,
        references: [String], clientIdentifier: String, authors: Authors, localTime: String
    ) {
        self.localID = localID
        self.serverID = serverID
        self.resource = resource
        self.base = base
        self.baseVersion = baseVersion
        self.after = after
        self.references = references
        self.clientIdentifier = clientIdentifier
        self.authors = authors
        self.localTime = localTime
    }
}

// MARK: Payloads of queued changes (pure; see ``EnqueuePlan``)

extension OutboxPayload {
    /// A local create: a fresh local id, a client identifier for idempotent replay.
    public static func create(
        localID: String, resource: Data, references: [String], clientIdentifier: String, author: String,
        localTime: String
    ) -> OutboxPayload {
        OutboxPayload(
            localID: localID, serverID: nil, resource: resource, base: nil, baseVersion: nil, after: nil,
            references: references, clientIdentifier: clientIdentifier, authors: Authors(author), localTime: localTime)
    }

    /// The update that gives a create sent without its references into a cycle of local
    /// creates (``ReplayPlan/Result/detached``) its full content back, queued with the create's
    /// result: `resource` is the create's content under its server id, `base` and
    /// `baseVersion` what the server made of the create; it waits for the referenced creates
    /// like any change, and keeps the create's authors and time.
    public static func restoring(
        _ create: OutboxPayload, serverID: String, resource: Data, base: Data?, baseVersion: String?,
        clientIdentifier: String
    ) -> OutboxPayload {
        OutboxPayload(
            localID: serverID, serverID: serverID, resource: resource, base: base, baseVersion: baseVersion,
            after: nil, references: create.references, clientIdentifier: clientIdentifier, authors: create.authors,
            localTime: create.localTime)
    }

    /// An edit of a mirrored resource: the replica's version is the merge base.
    public static func edit(
        of stored: StoredResource, resource: Data?, references: [String], clientIdentifier: String, author: String,
        localTime: String
    ) -> OutboxPayload {
        OutboxPayload(
            localID: stored.id, serverID: stored.id, resource: resource, base: stored.json,
            baseVersion: stored.versionId, after: nil, references: references, clientIdentifier: clientIdentifier,
            authors: Authors(author), localTime: localTime)
    }

    /// An edit chained after an entry being sent or in review: that entry's content is the
    /// base, its result (once replayed) the version to match.
    public static func chained(
        after open: OutboxEntry, resource: Data?, references: [String], clientIdentifier: String, author: String,
        localTime: String
    ) -> OutboxPayload {
        OutboxPayload(
            localID: open.localID, serverID: open.payload.serverID, resource: resource, base: open.payload.resource,
            baseVersion: nil, after: open.seq, references: references, clientIdentifier: clientIdentifier,
            authors: Authors(author), localTime: localTime)
    }

    /// This (pending or parked) entry absorbing a newer edit: the new content and references,
    /// the new author added, the time of the newest edit; base and identity kept, an earlier
    /// rejection or forced choice forgotten.
    public func squashing(resource: Data?, references: [String], author: String, localTime: String) -> OutboxPayload {
        var payload = self
        payload.resource = resource
        payload.references = references
        payload.authors.append(author)
        payload.localTime = localTime
        payload.force = nil
        payload.reason = nil
        payload.outcome = nil
        return payload
    }

    /// This local create, dropped because it was deleted before replay.
    public func dropped() -> OutboxPayload {
        var payload = self
        payload.reason = "created and deleted locally before replay"
        return payload
    }
}
