/// Decides whether a cycle's server deletions are too many to apply without an operator.
public struct MassDeleteGuard: Sendable, Equatable {
    public var percent: Double
    public var count: Int
    public var floor: Int

    public init(percent: Double = 5, count: Int = 500, floor: Int = 10) {
        self.percent = percent
        self.count = count
        self.floor = floor
    }

    /// The largest number of deletions applied in one cycle for a replica of `replicaSize`
    /// live resources: the lower of `percent` of it and `count`, never below `floor`.
    public func limit(replicaSize: Int) -> Int {
        let share = Int((Double(replicaSize) * percent / 100).rounded(.down))
        return max(floor, min(share, count))
    }

    public func shouldHold(deletions: Int, replicaSize: Int) -> Bool {
        deletions > limit(replicaSize: replicaSize)
    }
}
