import Foundation
import GRDB
import SyncModel

/// The outbox: local changes queued durably until replay puts them on the server, and the
/// review of those it could not take. Its concerns are in `OutboxStore+Queue.swift` (queue,
/// local view, replay results) and `OutboxStore+Review.swift` (conflicts, retries).
///
/// Rows keep in clear only the queue order, resource type, operation, state and times; the
/// target is a blind index and everything else (content, base, authors, server replies) is
/// sealed, bound to its row's number, type, target, operation and state. A replayed change
/// is closed in the same transaction as the record it produced.
public struct OutboxStore: Sendable, ReplicaDatabaseUser {
    let database: ReplicaDatabase
    /// The mirrored records: an edit's base, a replayed change's result.
    let records: ResourceStore
    /// Review decisions are audited in their own transaction.
    let audit: AuditTrail
}
