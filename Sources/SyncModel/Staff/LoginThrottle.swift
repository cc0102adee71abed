/// Slows password guessing without letting a stranger lock anyone out. Pure value.
///
/// - An attempt is **admitted before** the password is hashed, and counted at once: a
///   burst of parallel guesses meets the count of the ones before it, not an empty slate.
/// - At most `maxConcurrent` hashes run at once (PBKDF2 costs ~0.3 s of a core): the sync
///   and the viewer keep the rest of the machine. Beyond it, the attempt is told to retry.
/// - Failures count per (account, client address) and per client address: after
///   `freeAttempts` failures within `window` seconds, each further attempt waits a delay
///   that doubles from `baseDelay` up to `maxDelay`. Nothing counts per account alone, so
///   guessing from one machine never locks the doctor out at her own.
/// - A success clears its (account, address) count; an administrator can clear an
///   account's counts (`syncctl user unlock`).
public struct LoginThrottle: Sendable {
    public var freeAttempts = 5
    /// Failures from one address, whatever the accounts, before it is slowed down.
    public var addressFreeAttempts = 20
    public var window: Double = 900
    public var baseDelay: Double = 2
    public var maxDelay: Double = 300
    public var maxConcurrent = 2

    struct Record: Sendable {
        var failures: [Double] = []
        var blockedUntil: Double = 0
    }

    var records: [String: Record] = [:]
    public private(set) var inFlight = 0

    public init() {}

    /// What happens to a sign-in attempt.
    public enum Admission: Sendable, Equatable {
        /// Hash the password; then call ``finish(_:succeeded:now:)`` with the ticket.
        case admitted(Ticket)
        /// Slowed down: retry after this many seconds.
        case wait(Double)
        /// Too many hashes running: retry in a second.
        case busy
    }

    public struct Ticket: Sendable, Equatable {
        let pair: String
        let address: String
    }

    static func pairKey(account: String, address: String) -> String { "pair:\(account)|\(address)" }

    /// Admits an attempt (counting it as a failure until it succeeds), or says why not.
    public mutating func admit(account: String, address: String, now: Double) -> Admission {
        let ticket = Ticket(pair: Self.pairKey(account: account, address: address), address: "address:\(address)")
        let wait = [retryAfter(ticket.pair, now: now), retryAfter(ticket.address, now: now)].compactMap { $0 }.max()
        if let wait { return .wait(wait) }
        guard inFlight < maxConcurrent else { return .busy }
        inFlight += 1
        recordFailure(ticket.pair, free: freeAttempts, now: now)
        recordFailure(ticket.address, free: addressFreeAttempts, now: now)
        return .admitted(ticket)
    }

    /// Ends an admitted attempt. A success takes back its count.
    public mutating func finish(_ ticket: Ticket, succeeded: Bool, now: Double) {
        inFlight = max(0, inFlight - 1)
        guard succeeded else { return }
        records[ticket.pair] = nil
        if var record = records[ticket.address] {
            if !record.failures.isEmpty { record.failures.removeLast() }
            records[ticket.address] = record
        }
    }

    /// Clears every count of an account (an administrator's `syncctl user unlock`); returns
    /// how many addresses were slowed down for it.
    @discardableResult
    public mutating func unlock(account: String) -> Int {
        let prefix = "pair:\(account)|"
        let keys = records.keys.filter { $0.hasPrefix(prefix) }
        for key in keys { records[key] = nil }
        return keys.count
    }

    /// Seconds to wait before this key may try again, or nil when it may try now.
    func retryAfter(_ key: String, now: Double) -> Double? {
        guard let record = records[key], record.blockedUntil > now else { return nil }
        return record.blockedUntil - now
    }

    mutating func recordFailure(_ key: String, free: Int, now: Double) {
        var record = records[key] ?? Record()
        record.failures = record.failures.filter { now - $0 < window } + [now]
        let excess = record.failures.count - free
        if excess >= 0 {
            let delay = min(maxDelay, baseDelay * Double(1 << min(excess, 20)))
            record.blockedUntil = now + delay
        }
        records[key] = record
        if records.count > 10_000 { prune(now: now) }
    }

    mutating func prune(now: Double) {
        records = records.filter { _, r in r.blockedUntil > now || r.failures.contains { now - $0 < window } }
    }
}
