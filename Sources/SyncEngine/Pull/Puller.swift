import Foundation
public import Logging
public import SyncModel
public import SyncStore
import Synchronization

/// Mirrors the hosted EHR into the replica: the initial sync (Bulk Data `$export` when
/// offered, else paged searches), then incremental cycles (system `_history` when offered,
/// else `_lastUpdated` searches), and periodic sweeps that find deletions and rollbacks.
///
/// Every page or file chunk commits together with the resume point that follows it, so a
/// crash continues where it stopped. The incremental cursor is server time.
public final class Puller: Sendable {
    public struct Settings: Sendable {
        public var resourceTypes: [String]?
        public var excludeTypes: Set<String>
        public var strategy: SyncConfiguration.Strategy
        /// Seconds between rounds of every patient on per-patient servers.
        public var patientRound: Double
        public var pageSize: Int
        public var bulkExport: SyncConfiguration.BulkExport
        public var groupID: String?
        public var sweepInterval: Double
        public var overlap: Double
        public var massDelete: MassDeleteGuard
        public var maxResourceBytes: Int
        /// Origins besides the EHR's that export files may come from (`[sync] export_origins`).
        public var exportOrigins: Set<String> = []
        /// Waits between attempts to resume an interrupted export file.
        public var resumeBackoff = Backoff()

        public init(_ config: SyncConfiguration) {
            resourceTypes = config.sync.resourceTypes
            excludeTypes = config.sync.excludeTypes
            strategy = config.sync.strategy
            patientRound = config.sync.patientRound
            pageSize = config.sync.pageSize
            bulkExport = config.sync.bulkExport
            groupID = config.sync.groupID
            sweepInterval = config.sync.sweepInterval
            overlap = config.sync.overlap
            massDelete = MassDeleteGuard(
                percent: config.sync.massDeletePercent, count: config.sync.massDeleteCount,
                floor: config.sync.massDeleteFloor)
            maxResourceBytes = config.ehr.maxResourceBytes
            exportOrigins = Set(config.sync.exportOrigins.compactMap { FHIRClient.origin(of: $0) })
        }
    }

    let context: PullContext
    /// The server's capabilities, read once and shared with replay.
    public let capabilities: CapabilityCache

    public init(
        transport: any FHIRTransport, replica: Replica, settings: Settings, logger: Logger,
        capabilities: CapabilityCache? = nil, heartbeat: @escaping @Sendable () -> Void = {}
    ) {
        self.context = PullContext(
            transport: transport, replica: replica, settings: settings, logger: logger,
            progress: ProgressBoard(heartbeat: heartbeat))
        self.capabilities = capabilities ?? CapabilityCache(transport: transport, logger: logger)
    }

    var replica: Replica { context.replica }
    var settings: Settings { context.settings }

    public var progress: PullProgress { context.progress.current }

    /// How current one patient's records are (server time) on a server listed patient by
    /// patient: the start of the last cycle that asked for them, else of the last round; nil
    /// where the whole copy moves together (then the sync cursor says it).
    public func dataAsOf(patient: String) -> String? {
        guard let coverage = progress.coverage, !coverage.perPatient.isEmpty else { return nil }
        if let listed = context.listedAt.at(patient) { return listed }
        if let text = try? replica.syncState.value(State.patientRound),
            let round = try? JSONDecoder().decode(PatientRound.State.self, from: Data(text.utf8))
        {
            return round.since
        }
        return try? replica.syncState.value(State.cursor)
    }

    /// Patients to refresh first on per-patient servers, besides those with an appointment
    /// today or tomorrow (the daemon gives those opened in the viewer within the hour).
    public func prioritise(_ patients: @escaping @Sendable () -> Set<String>) { context.recent.set(patients) }

    /// The types mirrored: configured, or discovered from the server (its CapabilityStatement
    /// and its answers); before discovery, the CapabilityStatement's defaults (empty before
    /// it is read).
    public var mirroredTypes: [String] {
        settings.resourceTypes ?? progress.coverage?.mirrored ?? capabilities.known?.defaultTypes ?? []
    }

    func publish(_ change: (inout PullProgress) -> Void) { context.publish(change) }

    /// One full cycle: finishes (or starts) the initial sync, then one incremental pass and
    /// a sweep when due. Returns when the replica is up to date with the server.
    public func runCycle() async throws {
        do {
            try loadCoverage()
            let caps = try await capabilities.current()
            let coverage = try await discover(caps)
            if try replica.syncState.value(State.initialComplete) != "1" {
                publish { $0.phase = .initialSync }
                try await InitialSync(context: context, capabilities: caps, types: coverage.mirrored).run()
            } else {
                // A type found since the first copy (a new discovery, or one seen in
                // `_history`) gets its own first copy before it is followed.
                let sync = InitialSync(context: context, capabilities: caps, types: [])
                try await sync.copyNewTypes()
            }
            publish { $0.phase = .incremental }
            try await IncrementalSync(context: context, capabilities: caps).run()
            let asOf = try replica.syncState.value(State.cursor)
            publish {
                $0.phase = .idle
                $0.cycles += 1
                $0.lastError = nil
                $0.lastSyncAt = FHIRInstant.format(Date().timeIntervalSince1970)
                $0.dataAsOf = asOf
            }
            try replica.syncState.set([State.lastSyncAt: FHIRInstant.format(Date().timeIntervalSince1970)])
        } catch {
            publish { $0.lastError = "\(error)" }
            throw error
        }
    }

    /// The types last discovered, kept in the replica, for status before the EHR answers.
    func loadCoverage() throws {
        guard progress.coverage == nil, let saved = try replica.syncState.value(State.coverage),
            let coverage = try? JSONDecoder().decode(TypeCoverage.self, from: Data(saved.utf8))
        else { return }
        publish { $0.coverage = coverage }
    }

    /// The types to mirror: discovered once a day, kept in the replica (status shows them
    /// across restarts), kept current meanwhile from the server's answers.
    func discover(_ caps: ServerCapabilities) async throws -> TypeCoverage {
        // Asked again once a day (and at once when the practice changed what to mirror):
        // servers add types, and a refusal may be lifted.
        let now = Date().timeIntervalSince1970
        let fingerprint = Self.fingerprint(settings)
        if let coverage = progress.coverage, let last = try replica.syncState.value(State.discoveredAt),
            let parts = Optional(last.split(separator: " ", maxSplits: 1)), parts.count == 2,
            let at = Double(parts[0]), String(parts[1]) == fingerprint, now - at < 86_400, now >= at
        {
            return coverage
        }
        let found = try await TypeDiscovery(context: context, capabilities: caps).run()
        var coverage = found
        // A type met since (in `_history`, in an export) stays unless the server now says otherwise.
        for entry in progress.coverage?.entries ?? [] where found[entry.type] == nil && entry.access == .search {
            if settings.resourceTypes == nil, !settings.excludeTypes.contains(entry.type) { coverage.set(entry) }
        }
        guard !coverage.mirrored.isEmpty else {
            throw RemoteError.badResponse(route: "metadata", reason: "the EHR serves no resource type to mirror")
        }
        try context.save(coverage)
        try replica.syncState.set([State.discoveredAt: "\(Int(now)) \(fingerprint)"])
        return coverage
    }

    /// What of the settings decides the types asked about.
    static func fingerprint(_ settings: Settings) -> String {
        let configured = settings.resourceTypes?.joined(separator: ",") ?? "*"
        return [configured, settings.excludeTypes.sorted().joined(separator: ","), settings.strategy.rawValue]
            .joined(separator: ";")
    }

    typealias State = SyncStateKey
}
