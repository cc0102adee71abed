/// Which queued changes can be sent now, and why the others wait: the causal order of
/// replay, as a pure function of the open outbox entries.
///
/// A change is ready when it is pending and everything it depends on is on the server:
/// the earlier change of the same resource (`after`) and the local creates it references.
/// A change whose dependency is parked or in conflict waits, with that as its reason, and
/// blocks nothing else.
public enum ReplayPlan {
    /// What the plan needs of an entry.
    public struct Item: Sendable, Equatable {
        public var seq: Int64
        public var state: OutboxState
        public var operation: OutboxOperation
        /// `Type/localID` of the target.
        public var target: String
        public var after: Int64?
        /// `Type/localID` of local creates referenced.
        public var references: [String]

        public init(
            seq: Int64, state: OutboxState, operation: OutboxOperation, target: String, after: Int64? = nil,
            references: [String] = []
        ) {
            self.seq = seq
            self.state = state
            self.operation = operation
            self.target = target
            self.after = after
            self.references = references
        }
    }

    /// Why a pending change is not sent yet.
    public enum Wait: Sendable, Equatable, CustomStringConvertible {
        /// The earlier change of the same resource is not on the server yet.
        case earlierChange(seq: Int64, state: OutboxState)
        /// A referenced local create is not on the server yet.
        case reference(target: String, seq: Int64, state: OutboxState)
        /// A referenced local record was created and deleted before replay.
        case droppedReference(target: String)

        public var description: String {
            switch self {
            case .earlierChange(let seq, let state):
                "waits for change #\(seq) of the same record (\(state.rawValue))"
            case .reference(let target, let seq, let state):
                "waits for #\(seq), the creation of the \(target.prefix { $0 != "/" }) it references (\(state.rawValue))"
            case .droppedReference(let target):
                "references a \(target.prefix { $0 != "/" }) that was created and deleted locally"
            }
        }
    }

    public struct Result: Sendable, Equatable {
        /// Ready to send, in queue order.
        public var ready: [Int64] = []
        /// Pending but blocked, with the first reason found.
        public var waiting: [Int64: Wait] = [:]
    }

    /// - Parameters:
    ///   - items: the open entries (pending, parked, conflict).
    ///   - onServer: whether a local create `Type/localID` is already on the server.
    public static func plan(_ items: [Item], onServer: (String) -> Bool) -> Result {
        var bySeq: [Int64: Item] = [:]
        var creates: [String: Item] = [:]
        for item in items {
            bySeq[item.seq] = item
            if item.operation == .create { creates[item.target] = item }
        }
        var result = Result()
        for item in items.sorted(by: { $0.seq < $1.seq }) where item.state == .pending {
            if let wait = blocker(of: item, bySeq: bySeq, creates: creates, onServer: onServer) {
                result.waiting[item.seq] = wait
            } else {
                result.ready.append(item.seq)
            }
        }
        return result
    }

    private static func blocker(
        of item: Item, bySeq: [Int64: Item], creates: [String: Item], onServer: (String) -> Bool
    ) -> Wait? {
        if let after = item.after, let earlier = bySeq[after] {
            return .earlierChange(seq: after, state: earlier.state)
        }
        for reference in item.references where reference != item.target {
            if let create = creates[reference] {
                return .reference(target: reference, seq: create.seq, state: create.state)
            }
            if !onServer(reference) { return .droppedReference(target: reference) }
        }
        return nil
    }
}
