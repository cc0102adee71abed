import Foundation

/// One line of `syncctl outbox`. Field names are an interface: extend, never rename.
public struct OutboxItem: Codable, Sendable, Equatable {
    public var seq: Int64
    /// `pending`, `waiting`, `parked`, `conflict`, `done` or `discarded`.
    public var state: String
    /// `create`, `update` or `delete`.
    public var operation: String
    public var resourceType: String
    /// When the change was made locally, and by whom.
    public var localTime: String
    public var author: String
    public var attempts: Int
    /// Why it waits, was parked, discarded or how it was resolved.
    public var reason: String?
    public var updatedAt: String

    public init(
        seq: Int64, state: String, operation: String, resourceType: String, localTime: String, author: String,
        attempts: Int, reason: String?, updatedAt: String
    ) {
        self.seq = seq
        self.state = state
        self.operation = operation
        self.resourceType = resourceType
        self.localTime = localTime
        self.author = author
        self.attempts = attempts
        self.reason = reason
        self.updatedAt = updatedAt
    }
}

/// `syncctl conflicts show ID`: the three versions and where they disagree. JSON texts are
/// compact with sorted keys.
public struct ConflictDetail: Codable, Sendable, Equatable {
    public var seq: Int64
    public var resourceType: String
    /// The record's id on the EHR (or the local id of a create).
    public var id: String
    public var operation: String
    public var author: String
    public var localTime: String
    public var remoteVersion: String?
    /// The EHR deleted the record while it was edited locally.
    public var remoteDeleted: Bool
    public var base: String?
    public var local: String?
    public var remote: String?
    public var places: [Place]

    public struct Place: Codable, Sendable, Equatable {
        /// e.g. `birthDate`, `name[use=official].family`; empty for the whole record.
        public var path: String
        public var base: String?
        public var local: String?
        public var remote: String?

        public init(path: String, base: String?, local: String?, remote: String?) {
            self.path = path
            self.base = base
            self.local = local
            self.remote = remote
        }
    }

    public init(
        seq: Int64, resourceType: String, id: String, operation: String, author: String, localTime: String,
        remoteVersion: String?, remoteDeleted: Bool, base: String?, local: String?, remote: String?, places: [Place]
    ) {
        self.seq = seq
        self.resourceType = resourceType
        self.id = id
        self.operation = operation
        self.author = author
        self.localTime = localTime
        self.remoteVersion = remoteVersion
        self.remoteDeleted = remoteDeleted
        self.base = base
        self.local = local
        self.remote = remote
        self.places = places
    }
}

extension OutboxItem {
    /// The list line of an entry; `waiting` gives the plan's reason for pending entries.
    public init(_ entry: OutboxEntry, waiting: ReplayPlan.Wait?) {
        self.init(
            seq: entry.seq, state: waiting != nil ? "waiting" : entry.state.rawValue,
            operation: entry.operation.rawValue, resourceType: entry.resourceType,
            localTime: entry.payload.localTime, author: entry.payload.authors.description,
            attempts: entry.payload.attempts,
            reason: waiting?.description ?? entry.payload.reason ?? entry.payload.resolution,
            updatedAt: entry.updatedAt)
    }
}

extension ConflictDetail {
    public init(_ entry: OutboxEntry) {
        func text(_ data: Data?) -> String? {
            guard let data, let value = try? JSONValue(data: data) else { return nil }
            return String(decoding: value.data(), as: UTF8.self)
        }
        func text(_ value: JSONValue?) -> String? {
            value.map { String(decoding: $0.data(), as: UTF8.self) }
        }
        self.init(
            seq: entry.seq, resourceType: entry.resourceType, id: entry.payload.serverID ?? entry.localID,
            operation: entry.operation.rawValue, author: entry.payload.authors.description,
            localTime: entry.payload.localTime,
            remoteVersion: entry.payload.remoteVersion, remoteDeleted: entry.payload.remoteDeleted ?? false,
            base: text(entry.payload.base), local: text(entry.payload.resource), remote: text(entry.payload.remote),
            places: (entry.payload.conflicts ?? []).map {
                Place(path: $0.path, base: text($0.base), local: text($0.local), remote: text($0.remote))
            })
    }
}
