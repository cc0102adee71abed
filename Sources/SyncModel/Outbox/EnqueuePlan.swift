/// Where a new local change goes in the outbox, decided from what is already queued for its
/// target and what the replica holds. The outbox store executes the plan in one fsync'd
/// transaction; nothing here reads or writes.
///
/// | queued for the target (latest open entry) | replica  | new change    | plan                          |
/// |-------------------------------------------|----------|---------------|-------------------------------|
/// | any                                       | any      | create        | `create` (a new local id)     |
/// | an open delete                            | any      | update/delete | `refuse(.gone)`               |
/// | pending or parked, not being sent         | any      | update/delete | ``OutboxSquash``: `squash` into it, `drop` it, or `refuse(.gone)` |
/// | being sent, or in conflict review         | any      | update/delete | `chain(after:)` it            |
/// | nothing open                              | live     | update/delete | `newEntry`, base = the replica's version |
/// | nothing open                              | deleted  | update/delete | `refuse(.gone)`               |
/// | nothing open                              | absent   | update/delete | `refuse(.notFound)`           |
///
/// A parked entry absorbs a new edit: the new edit is the correction of what the EHR refused.
public enum EnqueuePlan: Equatable, Sendable {
    /// A new entry for a local create.
    case create
    /// A new entry whose base is the replica's current version of the target.
    case newEntry
    /// The earlier entry `seq` takes the new content and, where it changes, the operation.
    case squash(seq: Int64, operation: OutboxOperation)
    /// The earlier entry `seq` (a local create) is discarded: created and deleted before replay.
    case drop(seq: Int64)
    /// A new entry replayed after `seq`, whose result is its base.
    case chain(after: Int64)
    /// The change is not queued.
    case refuse(Refusal)

    public enum Refusal: Equatable, Sendable {
        case notFound, gone
    }

    /// The latest open entry of the target, as the plan needs it.
    public struct OpenEntry: Equatable, Sendable {
        public var seq: Int64
        public var operation: OutboxOperation
        public var state: OutboxState
        /// True while replay is sending it: it can no longer absorb edits.
        public var inFlight: Bool

        public init(seq: Int64, operation: OutboxOperation, state: OutboxState, inFlight: Bool) {
            self.seq = seq
            self.operation = operation
            self.state = state
            self.inFlight = inFlight
        }
    }

    /// What the replica holds of the target.
    public enum Stored: Equatable, Sendable, CaseIterable {
        case absent, deleted, live
    }

    public static func plan(_ operation: OutboxOperation, open: OpenEntry?, stored: Stored) -> EnqueuePlan {
        if operation == .create { return .create }
        guard let open else {
            switch stored {
            case .live: return .newEntry
            case .deleted: return .refuse(.gone)
            case .absent: return .refuse(.notFound)
            }
        }
        if open.operation == .delete { return .refuse(.gone) }
        guard open.state == .pending || open.state == .parked, !open.inFlight else { return .chain(after: open.seq) }
        switch OutboxSquash.combine(earlier: open.operation, new: operation) {
        case .replace(let combined): return .squash(seq: open.seq, operation: combined)
        case .drop: return .drop(seq: open.seq)
        case .refuse: return .refuse(.gone)
        }
    }
}
