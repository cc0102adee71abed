/// One line of the audit trail: who did what, when, to which record (sealed on disk).
public struct AuditRecord: Codable, Sendable, Equatable {
    public var at: String
    /// The account or credential (`uid 1000`, a local API author, a staff account).
    public var actor: String
    /// What was done, e.g. `conflict-resolve`, `outbox-retry`, `local-write`.
    public var action: String
    /// The record concerned, as `Type/id`, when there is one.
    public var target: String?
    public var detail: String?
    /// The patient whose data was accessed, when there is one (sealed like everything here).
    public var patient: String?

    public init(
        at: String, actor: String, action: String, target: String? = nil, detail: String? = nil,
        patient: String? = nil
    ) {
        self.at = at
        self.actor = actor
        self.action = action
        self.target = target
        self.detail = detail
        self.patient = patient
    }
}

/// Where the audit chain breaks.
public struct AuditBreak: Error, Sendable, Equatable {
    public var seq: Int64
    public var reason: String

    public init(seq: Int64, reason: String) {
        self.seq = seq
        self.reason = reason
    }
}
