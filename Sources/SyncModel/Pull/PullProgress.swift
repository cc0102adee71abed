/// What the puller is doing, for status and logs. Plain value; the puller publishes it.
public struct PullProgress: Sendable, Equatable, Codable {
    public struct TypeProgress: Sendable, Equatable, Codable {
        public var type: String
        public var done: Int
        public var total: Int?
    }

    public enum Phase: String, Sendable, Codable {
        case starting
        case initialSync = "initial-sync"
        case incremental
        case idle
    }

    public var phase: Phase = .starting
    public var initialMode: String?
    public var types: [TypeProgress] = []
    /// Resources refused as bad data since start.
    public var rejected = 0
    public var lastError: String?
    /// Local wall-clock time of the last complete cycle.
    public var lastSyncAt: String?
    /// Server time the replica is complete up to.
    public var dataAsOf: String?
    public var cycles = 0
    /// The types mirrored and how, once discovered.
    public var coverage: TypeCoverage?

    public init() {}

    /// Adds newly stored resources to a type's count (counting rows again would cost a scan
    /// per page: quadratic over a large first sync).
    package mutating func addDone(_ type: String, _ count: Int, total: Int?) {
        let done = (types.first { $0.type == type }?.done ?? 0) + count
        setDone(type, done: done, total: total)
    }

    package func done(_ type: String) -> Int { types.first { $0.type == type }?.done ?? 0 }

    package mutating func setDone(_ type: String, done: Int, total: Int?) {
        if let i = types.firstIndex(where: { $0.type == type }) {
            types[i].done = done
            if let total { types[i].total = total }
        } else {
            types.append(TypeProgress(type: type, done: done, total: total))
        }
    }
}
