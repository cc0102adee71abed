/// Why a server change waits for an operator instead of being applied.
public enum HoldReason: String, Sendable, CaseIterable {
    /// The server sent a version older than the replica's (restored from a backup?).
    case regression
    /// The cycle deleted more than the configured threshold.
    case massDelete = "mass-delete"
}

/// The newest change seen for each resource in one incremental cycle, in the order the
/// resources were first seen. History lists newest first and an overlap re-reads versions,
/// so one resource can appear several times in a cycle.
///
/// | versions seen (in order)   | kept                              |
/// |----------------------------|-----------------------------------|
/// | 3, then 2                  | 3 (the first seen)                |
/// | 2, then 3                  | 3 (a higher numeric version)      |
/// | "a", then "b" (not numbers)| "a" (the first seen)              |
/// | 2, then none               | 2                                 |
public struct NewestChanges<Change: Sendable>: Sendable {
    private var changes: [String: (version: String?, change: Change)] = [:]
    private var order: [String] = []

    public init() {}

    /// Records a change of the resource `key` (`Type/id`) at `version`.
    public mutating func record(_ key: String, version: String?, _ change: Change) {
        guard let existing = changes[key] else {
            changes[key] = (version, change)
            order.append(key)
            return
        }
        if Self.isNewer(version, than: existing.version) { changes[key] = (version, change) }
    }

    /// One change per resource, newest version, in first-seen order.
    public var inOrder: [Change] { order.compactMap { changes[$0]?.change } }

    public var count: Int { order.count }

    /// True when `candidate` is a higher numeric version than `existing`; versions that are
    /// not numbers never replace the first seen.
    public static func isNewer(_ candidate: String?, than existing: String?) -> Bool {
        guard let a = existing.flatMap({ Int($0) }), let b = candidate.flatMap({ Int($0) }) else { return false }
        return b > a
    }
}

/// What an incremental cycle does with the deletions it found (history entries and ids a
/// sweep no longer finds on the server).
///
/// | server went back in time (sweep or upserts) | deletions vs ``MassDeleteGuard`` | verdict                  |
/// |---------------------------------------------|----------------------------------|--------------------------|
/// | yes                                         | any                              | hold, `regression`       |
/// | no                                          | above the limit                  | hold, `massDelete`       |
/// | no                                          | within the limit                 | apply                    |
///
/// A server restored from a backup also "deletes" what it no longer has: its deletions are
/// held with its older versions, never applied.
public enum DeletionVerdict: Equatable, Sendable {
    case apply
    case hold(HoldReason)

    /// - Parameters:
    ///   - deletions: deletions found this cycle (history and sweep together).
    ///   - regressions: versions older than the replica's, found this cycle (sweep and upserts).
    ///   - liveRecords: live records in the replica before the cycle's deletions.
    public static func decide(deletions: Int, regressions: Int, liveRecords: Int, guard limits: MassDeleteGuard)
        -> DeletionVerdict
    {
        if regressions > 0 { return .hold(.regression) }
        if limits.shouldHold(deletions: deletions, replicaSize: liveRecords) { return .hold(.massDelete) }
        return .apply
    }
}

/// A server change held for an operator, as `syncctl held` lists it: no content, no id.
public struct HeldChange: Sendable, Equatable, Codable {
    /// Row number, used to approve or reject it.
    public var row: Int64
    public var resourceType: String
    /// `regression` or `mass-delete`.
    public var reason: String
    /// True for a held deletion, false for a held (older) version.
    public var deletion: Bool
    public var versionId: String?
    public var lastUpdated: String?
    public var heldAt: String

    public init(
        row: Int64, resourceType: String, reason: String, deletion: Bool, versionId: String?, lastUpdated: String?,
        heldAt: String
    ) {
        self.row = row
        self.resourceType = resourceType
        self.reason = reason
        self.deletion = deletion
        self.versionId = versionId
        self.lastUpdated = lastUpdated
        self.heldAt = heldAt
    }
}

/// What an operator decides about held changes.
public enum HeldDecision: String, Sendable, Codable {
    /// Apply the server's change (its older version, or its deletion).
    case approve
    /// Keep the replica as it is; the same change is not held again.
    case reject
}

/// Server changes held for an operator (regressions, mass deletions), by reason.
public struct HeldSummary: Sendable, Equatable {
    public var regressions = 0
    public var massDeletions = 0
    public var total: Int { regressions + massDeletions }

    public init(regressions: Int = 0, massDeletions: Int = 0) {
        self.regressions = regressions
        self.massDeletions = massDeletions
    }
}
