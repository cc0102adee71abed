/// Notices unusual reading: one account opening many different patients in a short time
/// (how the WEDA data left). Pure value; the shell feeds it every patient access.
public struct AccessMonitor: Sendable {
    /// More than `threshold` distinct patients within `window` seconds raises an alert.
    public var threshold = 30
    public var window: Double = 600

    public struct Alert: Codable, Sendable, Equatable {
        public var account: String
        public var patients: Int
        public var windowSeconds: Int
        public var at: Double
    }

    var recent: [String: [(patient: String, at: Double)]] = [:]
    public private(set) var alerts: [Alert] = []

    public init(threshold: Int = 30, window: Double = 600) {
        self.threshold = threshold
        self.window = window
    }

    /// Records one access; returns the alert it raised, if any (once per window per account).
    @discardableResult
    public mutating func record(account: String, patient: String, now: Double) -> Alert? {
        var list = recent[account, default: []].filter { now - $0.at < window }
        list.append((patient, now))
        recent[account] = list
        let distinct = Set(list.map(\.patient)).count
        guard distinct > threshold else { return nil }
        if let last = alerts.last(where: { $0.account == account }), now - last.at < window { return nil }
        let alert = Alert(account: account, patients: distinct, windowSeconds: Int(window), at: now)
        alerts.append(alert)
        return alert
    }

    /// Alerts raised within the last `age` seconds.
    public func activeAlerts(now: Double, age: Double = 86_400) -> [Alert] {
        alerts.filter { now - $0.at < age }
    }
}
