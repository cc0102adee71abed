/// What the replica does with a resource version the server sent.
///
/// A pure function of what the replica holds and what arrived: upserts are idempotent,
/// keyed by (type, id, versionId), and the replica never loses a version because the
/// server did (a server restored from an older backup sends lower versions: those are
/// held for an operator, never applied).
public enum UpsertDecision: Sendable, Equatable {
    case insert
    case update
    /// Same version and content already stored.
    case unchanged
    /// The incoming version is older than the stored one.
    case holdRegression

    /// Bookkeeping of a stored or incoming version.
    public struct Version: Sendable, Equatable {
        public var versionId: String?
        public var lastUpdated: String?
        public var contentHash: [UInt8]
        public var deleted: Bool

        public init(versionId: String?, lastUpdated: String?, contentHash: [UInt8], deleted: Bool = false) {
            self.versionId = versionId
            self.lastUpdated = lastUpdated
            self.contentHash = contentHash
            self.deleted = deleted
        }
    }

    public static func decide(stored: Version?, incoming: Version) -> UpsertDecision {
        guard let stored else { return .insert }
        switch VersionOrder.compare(stored, incoming) {
        case .newer: return .holdRegression
        case .same:
            return stored.contentHash == incoming.contentHash && stored.deleted == incoming.deleted
                ? .unchanged : .update
        case .older, .unknown: return .update
        }
    }
}

/// Orders two versions of one resource: by numeric `versionId` when both have one, else by
/// `lastUpdated` (ISO 8601 instants, compared as instants).
public enum VersionOrder: Sendable, Equatable {
    /// The stored version is newer than the incoming one.
    case newer
    case same
    /// The stored version is older (the incoming one is an update).
    case older
    case unknown

    public static func compare(_ stored: UpsertDecision.Version, _ incoming: UpsertDecision.Version) -> VersionOrder {
        if let a = stored.versionId, let b = incoming.versionId {
            if a == b { return .same }
            if let x = Int(a), let y = Int(b) { return x > y ? .newer : .older }
        }
        if let a = stored.lastUpdated.flatMap(FHIRInstant.parse),
            let b = incoming.lastUpdated.flatMap(FHIRInstant.parse)
        {
            if a == b { return stored.versionId == incoming.versionId ? .same : .unknown }
            return a > b ? .newer : .older
        }
        return .unknown
    }
}
