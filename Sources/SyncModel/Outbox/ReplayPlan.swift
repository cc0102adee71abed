/// Which queued changes can be sent now, and why the others wait: the causal order of
/// replay, as a pure function of the open outbox entries.
///
/// A change is ready when it is pending and everything it depends on is on the server:
/// the earlier change of the same resource (`after`) and the local creates it references.
/// A change whose dependency is parked or in conflict waits, with that as its reason, and
/// blocks nothing else.
///
/// Local creates may reference each other in a cycle (Encounter.diagnosis ↔
/// Condition.encounter, Observation.hasMember ↔ derivedFrom, Patient.link pairs): each would
/// wait for the other forever. One member of each cycle is made ready with its references to
/// the others left out (``Result/detached``): the replay sends it without them and queues an
/// update restoring them, which waits, like any change, until the others exist. The member
/// chosen is one whose only unmet references are in the cycle, preferring one whose
/// references into the cycle sit in repeating elements (so no singular element is lost in
/// between), then the oldest.
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
        /// Of `references`, those only inside repeating elements
        /// (``ResourceReferences/inArraysOnly(_:)``), which the resource can be sent without.
        public var detachable: Set<String>

        public init(
            seq: Int64, state: OutboxState, operation: OutboxOperation, target: String, after: Int64? = nil,
            references: [String] = [], detachable: Set<String> = []
        ) {
            self.seq = seq
            self.state = state
            self.operation = operation
            self.target = target
            self.after = after
            self.references = references
            self.detachable = detachable
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
        /// Creates in `ready` that break a cycle: the references to leave out when sending them
        /// (restored by an update once the others exist).
        public var detached: [Int64: [String]] = [:]
    }

    /// - Parameters:
    ///   - items: the open entries (pending, parked, conflict).
    ///   - onServer: whether a local create `Type/localID` is already on the server.
    ///   - detachable: of a create caught in a cycle, the references it can be sent without
    ///     (asked only then: it may mean parsing the resource); by default ``Item/detachable``.
    public static func plan(
        _ items: [Item], onServer: (String) -> Bool, detachable: ((Item) -> Set<String>)? = nil
    ) -> Result {
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
        breakCycles(
            &result, creates: creates, bySeq: bySeq, onServer: onServer, detachable: detachable ?? { $0.detachable })
        return result
    }

    /// Makes one member of each cycle of waiting local creates ready, detached from the others.
    static func breakCycles(
        _ result: inout Result, creates: [String: Item], bySeq: [Int64: Item], onServer: (String) -> Bool,
        detachable: (Item) -> Set<String>
    ) {
        let waiting = creates.values.filter { $0.state == .pending && result.waiting[$0.seq] != nil }
        guard waiting.count >= 2 else { return }
        let nodes = waiting.sorted { $0.seq < $1.seq }
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($0.element.target, $0.offset) })
        let edges = nodes.map { node in
            node.references.compactMap { $0 == node.target ? nil : index[$0] }
        }
        for component in stronglyConnected(edges) where component.count >= 2 {
            let members = component.map { nodes[$0] }
            let inCycle = Set(members.map(\.target))
            let candidates = members.filter { member in
                let outside = Item(
                    seq: member.seq, state: member.state, operation: member.operation, target: member.target,
                    after: member.after, references: member.references.filter { !inCycle.contains($0) })
                return blocker(of: outside, bySeq: bySeq, creates: creates, onServer: onServer) == nil
            }
            let lost = Dictionary(
                uniqueKeysWithValues: candidates.map { member in
                    let free = detachable(member)
                    return (member.seq, member.references.filter { inCycle.contains($0) && !free.contains($0) }.count)
                })
            guard let chosen = candidates.min(by: { (lost[$0.seq]!, $0.seq) < (lost[$1.seq]!, $1.seq) }) else {
                continue
            }
            result.waiting[chosen.seq] = nil
            result.ready.append(chosen.seq)
            result.detached[chosen.seq] = chosen.references.filter { inCycle.contains($0) && $0 != chosen.target }
        }
        result.ready.sort()
    }

    /// The strongly connected components of a graph given as adjacency lists (Tarjan's
    /// algorithm, iterative: a long chain of creates does not exhaust the stack).
    static func stronglyConnected(_ edges: [[Int]]) -> [[Int]] {
        var index = [Int?](repeating: nil, count: edges.count)
        var low = [Int](repeating: 0, count: edges.count)
        var onStack = [Bool](repeating: false, count: edges.count)
        var stack: [Int] = []
        var components: [[Int]] = []
        var next = 0
        for root in edges.indices where index[root] == nil {
            var work: [(node: Int, edge: Int)] = [(root, 0)]
            index[root] = next
            low[root] = next
            next += 1
            stack.append(root)
            onStack[root] = true
            while let (node, edge) = work.last {
                if edge < edges[node].count {
                    work[work.count - 1].edge += 1
                    let target = edges[node][edge]
                    if let seen = index[target] {
                        if onStack[target] { low[node] = min(low[node], seen) }
                    } else {
                        index[target] = next
                        low[target] = next
                        next += 1
                        stack.append(target)
                        onStack[target] = true
                        work.append((target, 0))
                    }
                    continue
                }
                work.removeLast()
                if let parent = work.last { low[parent.node] = min(low[parent.node], low[node]) }
                if low[node] == index[node] {
                    var component: [Int] = []
                    while let top = stack.popLast() {
                        onStack[top] = false
                        component.append(top)
                        if top == node { break }
                    }
                    components.append(component)
                }
            }
        }
        return components
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
