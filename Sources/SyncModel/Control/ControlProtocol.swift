import Foundation

/// The control socket's protocol: one JSON request line, one JSON response line.
///
/// `syncctl` never opens the replica or the key; it asks the daemon.
public struct ControlRequest: Codable, Sendable, Equatable {
    public var command: String
    public var arguments: [String: String]?

    public init(command: String, arguments: [String: String]? = nil) {
        self.command = command
        self.arguments = arguments
    }

    /// Largest request line accepted, in bytes.
    public static let maxBytes = 64 * 1024
}

public struct ControlResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var message: String?
    public var status: StatusReport?
    public var held: [HeldChange]?
    public var verify: VerifyReport?
    /// Shown once by `syncctl key backup`.
    public var recoveryKey: String?
    /// `syncctl outbox` and `syncctl conflicts`.
    public var outbox: [OutboxItem]?
    /// `syncctl conflicts show ID`.
    public var conflict: ConflictDetail?
    /// `syncctl user list` (never the password hashes).
    public var users: [StaffAccountSummary]?
    /// `syncctl audit list`: the records asked for, newest last.
    public var audit: [AuditRecord]?
    /// `syncctl audit verify`: the number of records checked when the chain is intact...
    public var auditVerified: Int?
    /// ...or the first line where it breaks.
    public var auditBreak: AuditBreak?

    public init(
        ok: Bool, error: String? = nil, message: String? = nil, status: StatusReport? = nil, held: [HeldChange]? = nil,
        verify: VerifyReport? = nil, recoveryKey: String? = nil, outbox: [OutboxItem]? = nil,
        conflict: ConflictDetail? = nil, users: [StaffAccountSummary]? = nil, audit: [AuditRecord]? = nil,
        auditVerified: Int? = nil, auditBreak: AuditBreak? = nil
    ) {
        self.users = users
        self.audit = audit
        self.auditVerified = auditVerified
        self.auditBreak = auditBreak
        self.outbox = outbox
        self.conflict = conflict
        self.ok = ok
        self.error = error
        self.message = message
        self.status = status
        self.held = held
        self.verify = verify
        self.recoveryKey = recoveryKey
    }

    public static func done(_ message: String) -> ControlResponse { ControlResponse(ok: true, message: message) }

    public static func failure(_ message: String) -> ControlResponse { ControlResponse(ok: false, error: message) }

    /// The answer to `audit-verify`: the record count, or where the chain breaks.
    public static func auditVerification(_ result: Result<Int, AuditBreak>) -> ControlResponse {
        switch result {
        case .success(let count): ControlResponse(ok: true, auditVerified: count)
        case .failure(let broken): ControlResponse(ok: true, auditBreak: broken)
        }
    }

    /// What an `audit-verify` answer says, or nil when it says neither.
    public var auditVerification: Result<Int, AuditBreak>? {
        if let auditBreak { return .failure(auditBreak) }
        return auditVerified.map { .success($0) }
    }
}

/// On the control socket as `{"seq": 3, "reason": "line altered"}`.
extension AuditBreak: Codable {
    enum CodingKeys: String, CodingKey {
        case seq, reason
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(seq: try c.decode(Int64.self, forKey: .seq), reason: try c.decode(String.self, forKey: .reason))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seq, forKey: .seq)
        try c.encode(reason, forKey: .reason)
    }
}

/// An unusual-reading alert as `syncctl status` shows it: one account opened many
/// different patients in a short time.
public struct AccessAlert: Codable, Sendable, Equatable {
    public var account: String
    /// Distinct patients opened within the window.
    public var patients: Int
    public var windowSeconds: Int
    /// When the alert was raised (ISO 8601).
    public var at: String

    public init(account: String, patients: Int, windowSeconds: Int, at: String) {
        self.account = account
        self.patients = patients
        self.windowSeconds = windowSeconds
        self.at = at
    }

    public init(_ alert: AccessMonitor.Alert) {
        self.init(
            account: alert.account, patients: alert.patients, windowSeconds: alert.windowSeconds,
            at: FHIRInstant.format(alert.at))
    }
}

/// What `syncctl status --json` prints. Field names are an interface: extend, never rename.
public struct StatusReport: Codable, Sendable, Equatable {
    /// `starting`, `initial-sync`, `online`, `degraded`, `outage`, `recovering`, `paused`.
    public var state: String
    /// Live resources in the replica.
    public var resources: Int
    public var initialSyncComplete: Bool
    /// Local time of the last complete sync cycle (ISO 8601), or nil.
    public var lastSyncAt: String?
    /// Server time the replica is complete up to.
    public var dataAsOf: String?
    /// Since when the EHR has been failing, when it is.
    public var failingSince: String?
    public var lastError: String?
    public var initialSync: InitialSyncProgress?
    public var heldChanges: Int
    public var heldRegressions: Int
    public var heldMassDeletions: Int
    public var rejectedResources: Int
    public var keySource: String
    public var version: String
    /// Local changes not yet on the EHR: to send, waiting on another change, rejected
    /// (parked), and in the conflict review queue.
    public var outboxPending: Int = 0
    public var outboxWaiting: Int = 0
    public var outboxParked: Int = 0
    public var conflicts: Int = 0
    /// Unusual reading noticed within the last day (`AccessMonitor`).
    public var accessAlerts: [AccessAlert] = []
    /// SHA-256 fingerprint of the local API's HTTPS certificate, when it serves HTTPS.
    public var localAPICertificate: String?

    public struct InitialSyncProgress: Codable, Sendable, Equatable {
        public var mode: String?
        public var done: Int
        public var total: Int?
        public var types: [PullProgress.TypeProgress]

        public init(mode: String?, done: Int, total: Int?, types: [PullProgress.TypeProgress]) {
            self.mode = mode
            self.done = done
            self.total = total
            self.types = types
        }
    }

    public init(
        state: String, resources: Int, initialSyncComplete: Bool, lastSyncAt: String?, dataAsOf: String? = nil,
        failingSince: String? = nil, lastError: String? = nil, initialSync: InitialSyncProgress? = nil,
        heldChanges: Int = 0, heldRegressions: Int = 0, heldMassDeletions: Int = 0, rejectedResources: Int = 0,
        keySource: String, version: String = EHRSync.version
    ) {
        self.state = state
        self.resources = resources
        self.initialSyncComplete = initialSyncComplete
        self.lastSyncAt = lastSyncAt
        self.dataAsOf = dataAsOf
        self.failingSince = failingSince
        self.lastError = lastError
        self.initialSync = initialSync
        self.heldChanges = heldChanges
        self.heldRegressions = heldRegressions
        self.heldMassDeletions = heldMassDeletions
        self.rejectedResources = rejectedResources
        self.keySource = keySource
        self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case state, resources, initialSyncComplete, lastSyncAt, dataAsOf, failingSince, lastError, initialSync
        case heldChanges, heldRegressions, heldMassDeletions, rejectedResources, keySource, version
        case outboxPending, outboxWaiting, outboxParked, conflicts
        case accessAlerts, localAPICertificate
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        state = try c.decode(String.self, forKey: .state)
        resources = try c.decode(Int.self, forKey: .resources)
        initialSyncComplete = try c.decode(Bool.self, forKey: .initialSyncComplete)
        lastSyncAt = try c.decodeIfPresent(String.self, forKey: .lastSyncAt)
        dataAsOf = try c.decodeIfPresent(String.self, forKey: .dataAsOf)
        failingSince = try c.decodeIfPresent(String.self, forKey: .failingSince)
        lastError = try c.decodeIfPresent(String.self, forKey: .lastError)
        initialSync = try c.decodeIfPresent(InitialSyncProgress.self, forKey: .initialSync)
        heldChanges = try c.decode(Int.self, forKey: .heldChanges)
        heldRegressions = try c.decode(Int.self, forKey: .heldRegressions)
        heldMassDeletions = try c.decode(Int.self, forKey: .heldMassDeletions)
        rejectedResources = try c.decode(Int.self, forKey: .rejectedResources)
        keySource = try c.decode(String.self, forKey: .keySource)
        version = try c.decode(String.self, forKey: .version)
        outboxPending = try c.decodeIfPresent(Int.self, forKey: .outboxPending) ?? 0
        outboxWaiting = try c.decodeIfPresent(Int.self, forKey: .outboxWaiting) ?? 0
        outboxParked = try c.decodeIfPresent(Int.self, forKey: .outboxParked) ?? 0
        conflicts = try c.decodeIfPresent(Int.self, forKey: .conflicts) ?? 0
        accessAlerts = try c.decodeIfPresent([AccessAlert].self, forKey: .accessAlerts) ?? []
        localAPICertificate = try c.decodeIfPresent(String.self, forKey: .localAPICertificate)
    }

    /// Absent values are written as `null`, never left out: scripts read `lastSyncAt` even
    /// before the first sync.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(state, forKey: .state)
        try c.encode(resources, forKey: .resources)
        try c.encode(initialSyncComplete, forKey: .initialSyncComplete)
        try c.encode(lastSyncAt, forKey: .lastSyncAt)
        try c.encode(dataAsOf, forKey: .dataAsOf)
        try c.encode(failingSince, forKey: .failingSince)
        try c.encode(lastError, forKey: .lastError)
        try c.encode(initialSync, forKey: .initialSync)
        try c.encode(heldChanges, forKey: .heldChanges)
        try c.encode(heldRegressions, forKey: .heldRegressions)
        try c.encode(heldMassDeletions, forKey: .heldMassDeletions)
        try c.encode(rejectedResources, forKey: .rejectedResources)
        try c.encode(keySource, forKey: .keySource)
        try c.encode(version, forKey: .version)
        try c.encode(outboxPending, forKey: .outboxPending)
        try c.encode(outboxWaiting, forKey: .outboxWaiting)
        try c.encode(outboxParked, forKey: .outboxParked)
        try c.encode(conflicts, forKey: .conflicts)
        try c.encode(accessAlerts, forKey: .accessAlerts)
        try c.encode(localAPICertificate, forKey: .localAPICertificate)
    }

    /// Monitoring verdict (Nagios convention): 0 ok, 1 warning, 2 critical.
    public var exitCode: Int32 {
        switch state {
        case "outage": return 2
        case "degraded", "recovering", "initial-sync", "starting", "paused": return 1
        default:
            return heldChanges > 0 || rejectedResources > 0 || outboxParked > 0 || conflicts > 0
                || !accessAlerts.isEmpty ? 1 : 0
        }
    }
}
