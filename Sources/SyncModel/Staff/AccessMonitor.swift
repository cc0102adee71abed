/// Notices unusual reading: one account opening many different patients in a short time
/// (how the WEDA data left). Pure value; the shell feeds it every patient access.
public struct AccessMonitor: Sendable {
    /// More than `threshold` distinct patients within `window` seconds raises an alert.
    public var threshold = 30
    public var window: Double = 600
    /// Thresholds of their own for some accounts or local API tokens (an integration that
    /// legitimately reads many patients), by account name.
    public var overrides: [String: Int] = [:]

    public struct Alert: Codable, Sendable, Equatable {
        public var account: String
        public var patients: Int
        public var windowSeconds: Int
        public var at: Double
    }

    /// One account's reading within the window: each access in order, and when each patient
    /// was last opened (its count is the number of distinct patients). Amortised O(1) a record.
    struct Reading: Sendable {
        var accesses: [(patient: String, at: Double)] = []
        var expired = 0
        var lastOpened: [String: Double] = [:]

        mutating func record(_ patient: String, at now: Double, window: Double) {
            accesses.append((patient, now))
            lastOpened[patient] = now
            while expired < accesses.count, now - accesses[expired].at >= window {
                let (old, at) = accesses[expired]
                if lastOpened[old] == at { lastOpened[old] = nil }
                expired += 1
            }
            if expired > 1024, expired * 2 > accesses.count {
                accesses.removeFirst(expired)
                expired = 0
            }
        }
    }

    var recent: [String: Reading] = [:]
    public private(set) var alerts: [Alert] = []

    public init(threshold: Int = 30, window: Double = 600, overrides: [String: Int] = [:]) {
        self.threshold = threshold
        self.window = window
        self.overrides = overrides
    }

    /// The number of distinct patients within the window above which `account` raises an alert.
    public func threshold(for account: String) -> Int {
        overrides[account] ?? threshold
    }

    /// Records one access; returns the alert it raised, if any (once per window per account).
    @discardableResult
    public mutating func record(account: String, patient: String, now: Double) -> Alert? {
        recent[account, default: Reading()].record(patient, at: now, window: window)
        let distinct = distinctPatients(account: account)
        guard distinct > threshold(for: account) else { return nil }
        if let last = alerts.last(where: { $0.account == account }), now - last.at < window { return nil }
        let alert = Alert(account: account, patients: distinct, windowSeconds: Int(window), at: now)
        alerts.append(alert)
        return alert
    }

    /// Distinct patients the account opened within the window, as of its last access.
    public func distinctPatients(account: String) -> Int {
        recent[account]?.lastOpened.count ?? 0
    }

    /// Alerts raised within the last `age` seconds.
    public func activeAlerts(now: Double, age: Double = 86_400) -> [Alert] {
        alerts.filter { now - $0.at < age }
    }
}
