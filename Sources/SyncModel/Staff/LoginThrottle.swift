/// Slows password guessing: after `freeAttempts` failures within `window` seconds for one
/// key (an account name, or a client address), further attempts are refused for a delay
/// that doubles with each failure, up to `maxDelay`. A success clears the key. Pure value.
public struct LoginThrottle: Sendable {
    public var freeAttempts = 5
    public var window: Double = 900
    public var baseDelay: Double = 30
    public var maxDelay: Double = 900

    struct Record: Sendable {
        var failures: [Double] = []
        var blockedUntil: Double = 0
    }

    var records: [String: Record] = [:]

    public init() {}

    /// Seconds to wait before this key may try again, or nil when it may try now.
    public func retryAfter(_ key: String, now: Double) -> Double? {
        guard let record = records[key], record.blockedUntil > now else { return nil }
        return record.blockedUntil - now
    }

    public mutating func recordFailure(_ key: String, now: Double) {
        var record = records[key] ?? Record()
        record.failures = record.failures.filter { now - $0 < window } + [now]
        let excess = record.failures.count - freeAttempts
        if excess >= 0 {
            let delay = min(maxDelay, baseDelay * Double(1 << min(excess, 20)))
            record.blockedUntil = now + delay
        }
        records[key] = record
        if records.count > 10_000 { prune(now: now) }
    }

    public mutating func recordSuccess(_ key: String) {
        records[key] = nil
    }

    mutating func prune(now: Double) {
        records = records.filter { _, r in r.blockedUntil > now || r.failures.contains { now - $0 < window } }
    }
}
