public import Foundation

/// One resource version as the replica holds it, decrypted.
public struct StoredResource: Sendable, Equatable {
    public var resourceType: String
    public var id: String
    public var versionId: String?
    public var lastUpdated: String?
    /// The resource's JSON, as the server sent it.
    public var json: Data
    /// A tombstone: the server deleted the resource; `json` is its last known content.
    public var deleted: Bool
    /// Keyed hash of `json`.
    public var contentHash: Data

    public init(
        resourceType: String, id: String, versionId: String?, lastUpdated: String?, json: Data, deleted: Bool,
        contentHash: Data
    ) {
        self.resourceType = resourceType
        self.id = id
        self.versionId = versionId
        self.lastUpdated = lastUpdated
        self.json = json
        self.deleted = deleted
        self.contentHash = contentHash
    }
}

/// What one ``ResourceStore/apply(_:state:)`` did.
public struct ApplyOutcome: Sendable, Equatable {
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    /// Versions older than the replica's, held for an operator instead of applied.
    public var held = 0
    /// Resources refused as bad data, by reason.
    public var rejected: [String: Int] = [:]

    public init() {}

    public var applied: Int { inserted + updated }

    public static func += (lhs: inout ApplyOutcome, rhs: ApplyOutcome) {
        lhs.inserted += rhs.inserted
        lhs.updated += rhs.updated
        lhs.unchanged += rhs.unchanged
        lhs.held += rhs.held
        lhs.rejected.merge(rhs.rejected, uniquingKeysWith: +)
    }
}
