import Foundation

/// The control socket's protocol: one JSON request line, one JSON response line.
///
/// `{"version":1,"command":"outbox-retry","arguments":{"seq":"12","actor":"amartin"}}`: a
/// typed ``ControlCommand`` on the wire as a name and string arguments, and who asked. A
/// request without `version` is version 1. `syncctl` never opens the replica or the key; it
/// asks the daemon.
public struct ControlRequest: Sendable, Equatable, Codable {
    /// The protocol version this side speaks.
    public static let currentVersion = 1

    public var version: Int
    public var command: ControlCommand
    /// Who asked, as the client says (syncctl sends the operator's login name).
    public var actor: String?

    public init(_ command: ControlCommand, actor: String? = nil, version: Int = ControlRequest.currentVersion) {
        self.command = command
        self.actor = actor
        self.version = version
    }

    /// Largest request line accepted, in bytes.
    public static let maxBytes = 64 * 1024

    enum CodingKeys: String, CodingKey {
        case version, command, arguments
    }

    /// Throws ``ControlRequestError`` (what was wrong, for the operator) or a `DecodingError`
    /// when the line is not a request at all.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 1
        guard version <= Self.currentVersion else {
            throw ControlRequestError(
                "this ehr-syncd speaks control protocol \(Self.currentVersion), the request is version \(version): "
                    + "use the syncctl installed with it")
        }
        let name = try c.decode(String.self, forKey: .command)
        var arguments = try c.decodeIfPresent([String: String].self, forKey: .arguments) ?? [:]
        actor = arguments.removeValue(forKey: "actor")
        command = try ControlCommand(name: name, arguments: arguments)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(command.name, forKey: .command)
        var arguments = command.arguments
        if let actor { arguments["actor"] = actor }
        if !arguments.isEmpty { try c.encode(arguments, forKey: .arguments) }
    }
}

/// The daemon's answer: one case per kind of result. On the wire an object with `ok` and
/// the one field of its kind (`{"ok":true,"held":[…]}`, `{"ok":false,"error":"…"}`).
public enum ControlResponse: Sendable, Equatable {
    /// Done; a sentence for the operator.
    case done(String)
    /// Refused or failed; the reason, for the operator.
    case failure(String)
    case status(StatusReport)
    case held([HeldChange])
    case verify(VerifyReport)
    /// Shown once by `syncctl key backup`.
    case recoveryKey(String)
    /// `syncctl outbox` and `syncctl conflicts`.
    case outbox([OutboxItem])
    /// `syncctl conflicts show ID`.
    case conflict(ConflictDetail)
    /// `syncctl user list` (never the password hashes).
    case users([StaffAccountSummary])
    /// `syncctl audit list`: the records asked for, newest last.
    case audit([AuditRecord])
    /// `syncctl audit verify`: the number of records checked when the chain is intact, or the
    /// first line where it breaks.
    case auditVerification(Result<Int, AuditBreak>)

    public var ok: Bool {
        if case .failure = self { return false }
        return true
    }

    public var message: String? { if case .done(let m) = self { m } else { nil } }
    public var error: String? { if case .failure(let e) = self { e } else { nil } }
    public var statusReport: StatusReport? { if case .status(let r) = self { r } else { nil } }
    public var heldChanges: [HeldChange]? { if case .held(let h) = self { h } else { nil } }
    public var verifyReport: VerifyReport? { if case .verify(let r) = self { r } else { nil } }
    public var recoveryKeyText: String? { if case .recoveryKey(let k) = self { k } else { nil } }
    public var outboxItems: [OutboxItem]? { if case .outbox(let items) = self { items } else { nil } }
    public var conflictDetail: ConflictDetail? { if case .conflict(let d) = self { d } else { nil } }
    public var userList: [StaffAccountSummary]? { if case .users(let u) = self { u } else { nil } }
    public var auditRecords: [AuditRecord]? { if case .audit(let r) = self { r } else { nil } }
    public var auditResult: Result<Int, AuditBreak>? {
        if case .auditVerification(let r) = self { r } else { nil }
    }
}

extension ControlResponse: Codable {
    enum CodingKeys: String, CodingKey {
        case ok, error, message, status, held, verify, recoveryKey, outbox, conflict, users, audit
        case auditVerified, auditBreak
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if try !c.decode(Bool.self, forKey: .ok) {
            self = .failure(try c.decodeIfPresent(String.self, forKey: .error) ?? "the daemon refused")
        } else if let report = try c.decodeIfPresent(StatusReport.self, forKey: .status) {
            self = .status(report)
        } else if let held = try c.decodeIfPresent([HeldChange].self, forKey: .held) {
            self = .held(held)
        } else if let report = try c.decodeIfPresent(VerifyReport.self, forKey: .verify) {
            self = .verify(report)
        } else if let key = try c.decodeIfPresent(String.self, forKey: .recoveryKey) {
            self = .recoveryKey(key)
        } else if let items = try c.decodeIfPresent([OutboxItem].self, forKey: .outbox) {
            self = .outbox(items)
        } else if let detail = try c.decodeIfPresent(ConflictDetail.self, forKey: .conflict) {
            self = .conflict(detail)
        } else if let users = try c.decodeIfPresent([StaffAccountSummary].self, forKey: .users) {
            self = .users(users)
        } else if let records = try c.decodeIfPresent([AuditRecord].self, forKey: .audit) {
            self = .audit(records)
        } else if let broken = try c.decodeIfPresent(AuditBreak.self, forKey: .auditBreak) {
            self = .auditVerification(.failure(broken))
        } else if let count = try c.decodeIfPresent(Int.self, forKey: .auditVerified) {
            self = .auditVerification(.success(count))
        } else {
            self = .done(try c.decodeIfPresent(String.self, forKey: .message) ?? "done")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ok, forKey: .ok)
        switch self {
        case .done(let message): try c.encode(message, forKey: .message)
        case .failure(let error): try c.encode(error, forKey: .error)
        case .status(let report): try c.encode(report, forKey: .status)
        case .held(let held): try c.encode(held, forKey: .held)
        case .verify(let report): try c.encode(report, forKey: .verify)
        case .recoveryKey(let key): try c.encode(key, forKey: .recoveryKey)
        case .outbox(let items): try c.encode(items, forKey: .outbox)
        case .conflict(let detail): try c.encode(detail, forKey: .conflict)
        case .users(let users): try c.encode(users, forKey: .users)
        case .audit(let records): try c.encode(records, forKey: .audit)
        case .auditVerification(.success(let count)): try c.encode(count, forKey: .auditVerified)
        case .auditVerification(.failure(let broken)): try c.encode(broken, forKey: .auditBreak)
        }
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

/// The audit trail's state in `syncctl status`: critical when it is not intact.
public struct AuditTrailStatus: Codable, Sendable, Equatable {
    /// The chain verifies and the EHR's witness agrees (or has not been asked yet).
    public var intact: Bool
    /// Lines in the trail.
    public var lines: Int
    /// What is wrong, when something is (`line 4 missing`, `head missing`, the witness's verdict).
    public var problem: String?
    /// What the EHR witnessed (``AuditWitness/Verdict/text``).
    public var witness: String

    public init(intact: Bool, lines: Int, problem: String?, witness: String) {
        self.intact = intact
        self.lines = lines
        self.problem = problem
        self.witness = witness
    }
}

/// The replica's row sets in `syncctl status`: critical when a table's rows are not the set
/// its sealed digest describes (checked cheaply at start, in full by `syncctl verify`).
public struct ReplicaIntegrityStatus: Codable, Sendable, Equatable {
    public var intact: Bool
    /// What is wrong, in words without content.
    public var problems: [String]
    /// `start` (counts and small tables) or `full` (`syncctl verify`): the last check's depth.
    public var checked: String

    public init(problems: [String], checked: String) {
        self.intact = problems.isEmpty
        self.problems = problems
        self.checked = checked
    }
}

/// The disk holding the replica, in `syncctl status`: critical while it is full (the copy is
/// stopped, local changes are refused with 507, reads that cannot be recorded are refused).
public struct StorageStatus: Codable, Sendable, Equatable {
    /// A write failed for lack of space and none has succeeded since.
    public var full: Bool
    /// Since when (UTC instant), while full.
    public var fullSince: String?
    /// Free bytes on the state directory's file system, when known.
    public var freeBytes: Int64?

    public init(full: Bool, fullSince: String?, freeBytes: Int64?) {
        self.full = full
        self.fullSince = fullSince
        self.freeBytes = freeBytes
    }
}

/// The resource types of the EHR, in `syncctl status`: which are mirrored (and how), which
/// the server refuses to list (critical: the mirror is partial) and which the configuration
/// leaves out.
public struct TypesStatus: Codable, Sendable, Equatable {
    public struct Refusal: Codable, Sendable, Equatable {
        public var type: String
        public var reason: String
    }

    public var mirrored: [String]
    /// Mirrored patient by patient (the server refuses listing them whole).
    public var perPatient: [String]
    /// Mirrored although the CapabilityStatement does not declare them.
    public var undeclared: [String]
    public var refused: [Refusal]
    /// Skipped by configuration (`[sync] exclude_types`, `resource_types`).
    public var excluded: [String]
    /// Declared by the CapabilityStatement, not served.
    public var declaredNotServed: [String]
    /// A served type is neither mirrored nor excluded.
    public var partial: Bool

    public init(_ coverage: TypeCoverage) {
        mirrored = coverage.mirrored
        perPatient = coverage.perPatient
        undeclared = coverage.undeclared
        refused = coverage.refused.map { Refusal(type: $0.type, reason: $0.reason ?? "no reason given") }
        excluded = coverage.excluded
        declaredNotServed = coverage.absentDeclared
        partial = coverage.isPartial
    }
}

/// The backup of what cannot be fetched again (`[backup] dir`), in `syncctl status`: a
/// warning when the last one failed or is old.
public struct BackupStatus: Codable, Sendable, Equatable {
    public var dir: String
    /// When the last backup was written (UTC instant); nil before the first.
    public var lastAt: String?
    public var lastError: String?
    /// Local changes it holds.
    public var outboxEntries: Int
    /// Older than four intervals while the daemon runs.
    public var stale: Bool

    public init(dir: String, lastAt: String?, lastError: String?, outboxEntries: Int, stale: Bool) {
        self.dir = dir
        self.lastAt = lastAt
        self.lastError = lastError
        self.outboxEntries = outboxEntries
        self.stale = stale
    }

    public var healthy: Bool { lastError == nil && !stale }
}

/// A re-key's background re-sealing (`syncctl key rotate --reencrypt`), in status while it runs.
public struct ReencryptionStatus: Codable, Sendable, Equatable {
    /// Rows visited in this pass, of all rows with sealed values.
    public var done: Int
    public var total: Int
    /// 1 for the pass that re-seals; 2 or more check that nothing sealed with the old key is left.
    public var pass: Int

    public init(done: Int, total: Int, pass: Int) {
        self.done = done
        self.total = total
        self.pass = pass
    }

    /// `done` of `total` as a whole percentage (100 only when done).
    public var percent: Int { total == 0 ? 100 : min(99, done * 100 / total) }
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
    /// The audit trail: its own chain (checked at start and on `syncctl audit verify`) and
    /// what the EHR witnessed of it. nil from daemons before this field.
    public var auditTrail: AuditTrailStatus?
    /// The row sets' last check (``ReplicaIntegrityStatus``); nil before the first.
    public var integrity: ReplicaIntegrityStatus?
    /// A re-key's progress while it re-seals rows; nil otherwise.
    public var reencryption: ReencryptionStatus?
    /// The state directory's disk (``StorageStatus``); nil from daemons before this field.
    public var storage: StorageStatus?
    /// The backup (``BackupStatus``); nil when none is configured.
    public var backup: BackupStatus?
    /// The EHR's resource types and how each is mirrored (``TypesStatus``); nil before the
    /// first discovery.
    public var types: TypesStatus?
    /// The request rate towards the EHR (``RequestRateStatus``); nil from daemons before it.
    public var requestRate: RequestRateStatus?

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
        case accessAlerts, localAPICertificate, auditTrail, integrity, reencryption, storage, backup, types
        case requestRate
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
        auditTrail = try c.decodeIfPresent(AuditTrailStatus.self, forKey: .auditTrail)
        integrity = try c.decodeIfPresent(ReplicaIntegrityStatus.self, forKey: .integrity)
        reencryption = try c.decodeIfPresent(ReencryptionStatus.self, forKey: .reencryption)
        storage = try c.decodeIfPresent(StorageStatus.self, forKey: .storage)
        backup = try c.decodeIfPresent(BackupStatus.self, forKey: .backup)
        types = try c.decodeIfPresent(TypesStatus.self, forKey: .types)
        requestRate = try c.decodeIfPresent(RequestRateStatus.self, forKey: .requestRate)
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
        try c.encode(auditTrail, forKey: .auditTrail)
        try c.encode(integrity, forKey: .integrity)
        try c.encode(reencryption, forKey: .reencryption)
        try c.encode(storage, forKey: .storage)
        try c.encode(backup, forKey: .backup)
        try c.encode(types, forKey: .types)
        try c.encode(requestRate, forKey: .requestRate)
    }

    /// Monitoring verdict (Nagios convention): 0 ok, 1 warning, 2 critical.
    public var exitCode: Int32 {
        if auditTrail?.intact == false || integrity?.intact == false || storage?.full == true { return 2 }
        if types?.partial == true { return 2 }
        switch state {
        case "outage": return 2
        case "degraded", "recovering", "initial-sync", "starting", "paused": return 1
        default:
            return heldChanges > 0 || rejectedResources > 0 || outboxParked > 0 || conflicts > 0
                || !accessAlerts.isEmpty || backup?.healthy == false ? 1 : 0
        }
    }
}

/// The daemon's request rate towards the EHR (``RateController``): one budget for catch-up
/// pulls and replay.
public struct RequestRateStatus: Codable, Sendable, Equatable {
    /// `adaptive` or `fixed` (`[ehr] rate_control`).
    public var policy: String
    /// The current rate, requests a second.
    public var requestsPerSecond: Double
    /// The ceiling (`[ehr] requests_per_second`).
    public var ceiling: Double
    /// Starting slow again (after an outage).
    public var slowStart: Bool

    public init(policy: String, requestsPerSecond: Double, ceiling: Double, slowStart: Bool) {
        self.policy = policy
        self.requestsPerSecond = requestsPerSecond
        self.ceiling = ceiling
        self.slowStart = slowStart
    }
}
