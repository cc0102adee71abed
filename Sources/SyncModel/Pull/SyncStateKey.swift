/// The name of one sync-state value (cursors, resume points), sealed in the replica's
/// `sync_state` table. The names are the stored format: never rename one.
public struct SyncStateKey: Hashable, Sendable, CustomStringConvertible {
    public let name: String

    private init(_ name: String) { self.name = name }

    public var description: String { name }

    /// "1" once the first full copy finished.
    public static let initialComplete = SyncStateKey("initial.complete")
    /// `search`, `export-system` or `export-group`: how the first copy is made.
    public static let initialMode = SyncStateKey("initial.mode")
    /// Server time when the first copy started: the first incremental cursor.
    public static let initialStartedAt = SyncStateKey("initial.startedAt")
    /// Where the first copy of a type resumes (a next-page link).
    public static func initialNext(_ type: String) -> SyncStateKey { SyncStateKey("initial.next.\(type)") }
    /// How many resources of a type the server announced.
    public static func initialTotal(_ type: String) -> SyncStateKey { SyncStateKey("initial.total.\(type)") }
    /// The status URL of a running `$export`.
    public static let exportStatus = SyncStateKey("export.status")
    /// The manifest of a completed `$export`.
    public static let exportManifest = SyncStateKey("export.manifest")
    /// Lines of one export file already stored.
    public static func exportFile(_ index: Int) -> SyncStateKey { SyncStateKey("export.file.\(index)") }
    /// The incremental cursor (server time).
    public static let cursor = SyncStateKey("cursor")
    /// Server time of the last sweep.
    public static let lastSweep = SyncStateKey("sweep.last")
    /// When the EHR came back after an outage: a sweep slot missed before is not owed
    /// (``SweepSchedule``).
    public static let sweepNotBefore = SyncStateKey("sweep.notBefore")
    /// Local time of the last successful cycle.
    public static let lastSyncAt = SyncStateKey("lastSyncAt")
    /// The last audit trail line the EHR holds as an AuditEvent (``AuditWitness``).
    public static let auditExported = SyncStateKey("audit.exported")
    /// The types mirrored and how (``TypeCoverage``, JSON).
    public static let coverage = SyncStateKey("types.coverage")
    /// When types were last discovered (local seconds) and with which settings.
    public static let discoveredAt = SyncStateKey("types.discoveredAt")
    /// The last complete round of per-patient listings (``PatientRound/State``, JSON).
    public static let patientRound = SyncStateKey("patients.round")
    /// Why the server's `Patient/[id]/$everything` cannot be used, once it refused it.
    public static let everythingRefused = SyncStateKey("everything.refused")
    /// The last patient whose `$everything` the first copy has stored.
    public static let initialEverything = SyncStateKey("initial.everything")
    /// "1" once every mirrored type's first copy is tracked one by one (`initial.next.T = done`).
    public static let typesTracked = SyncStateKey("types.tracked")
    /// Why the server's system `_history` cannot be used, once it refused it.
    public static let historyRefused = SyncStateKey("history.refused")
    /// The last patient (by id) whose records of a type the first copy has stored, for
    /// types listed patient by patient.
    public static func initialPatient(_ type: String) -> SyncStateKey { SyncStateKey("initial.patient.\(type)") }
    /// Why the server's Group `$export` cannot be used for incremental cycles, once it refused it.
    public static let groupExportRefused = SyncStateKey("export.group.refused")
    /// Attachment URLs still to fetch.
    public static let attachmentsPending = SyncStateKey("attachments.pending")
}
