import Foundation
public import Logging
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
        public var pageSize: Int
        public var bulkExport: SyncConfiguration.BulkExport
        public var groupID: String?
        public var sweepInterval: Double
        public var overlap: Double
        public var massDelete: MassDeleteGuard
        public var maxResourceBytes: Int

        public init(_ config: SyncConfiguration) {
            resourceTypes = config.sync.resourceTypes
            pageSize = config.sync.pageSize
            bulkExport = config.sync.bulkExport
            groupID = config.sync.groupID
            sweepInterval = config.sync.sweepInterval
            overlap = config.sync.overlap
            massDelete = MassDeleteGuard(
                percent: config.sync.massDeletePercent, count: config.sync.massDeleteCount,
                floor: config.sync.massDeleteFloor)
            maxResourceBytes = config.ehr.maxResourceBytes
        }
    }

    let client: FHIRClient
    let replica: Replica
    let settings: Settings
    let logger: Logger
    let progressBox = Mutex(PullProgress())
    let capabilitiesBox = Mutex<ServerCapabilities?>(nil)
    let heartbeat: @Sendable () -> Void

    public init(
        client: FHIRClient, replica: Replica, settings: Settings, logger: Logger,
        heartbeat: @escaping @Sendable () -> Void = {}
    ) {
        self.heartbeat = heartbeat
        self.client = client
        self.replica = replica
        self.settings = settings
        self.logger = logger
    }

    public var progress: PullProgress { progressBox.withLock { $0 } }

    /// The types mirrored: configured, or the defaults of the server's CapabilityStatement once
    /// read (empty before).
    public var mirroredTypes: [String] {
        settings.resourceTypes ?? capabilitiesBox.withLock { $0?.defaultTypes } ?? []
    }

    func publish(_ change: (inout PullProgress) -> Void) {
        heartbeat()
        progressBox.withLock { change(&$0) }
    }

    /// One full cycle: finishes (or starts) the initial sync, then one incremental pass and
    /// a sweep when due. Returns when the replica is up to date with the server.
    public func runCycle() async throws {
        do {
            let caps = try await capabilities()
            let types = try await resourceTypes(caps)
            if try replica.syncState(State.initialComplete) != "1" {
                publish { $0.phase = .initialSync }
                try await InitialSync(puller: self, capabilities: caps, types: types).run()
            }
            publish { $0.phase = .incremental }
            try await IncrementalSync(puller: self, capabilities: caps, types: types).run()
            let asOf = try replica.syncState(State.cursor)
            publish {
                $0.phase = .idle
                $0.cycles += 1
                $0.lastError = nil
                $0.lastSyncAt = FHIRInstant.format(Date().timeIntervalSince1970)
                $0.dataAsOf = asOf
            }
            try replica.setSyncState([State.lastSyncAt: FHIRInstant.format(Date().timeIntervalSince1970)])
        } catch {
            publish { $0.lastError = "\(error)" }
            throw error
        }
    }

    /// The server's capabilities, fetched once per process.
    public func capabilities() async throws -> ServerCapabilities {
        if let caps = capabilitiesBox.withLock({ $0 }) { return caps }
        let response = try await client.get("metadata")
        guard response.status == 200 else { throw RemoteError.status(route: "metadata", code: response.status) }
        let caps = try ServerCapabilities.parse(response.body)
        capabilitiesBox.withLock { $0 = caps }
        logger.info(
            "server capabilities",
            metadata: [
                "types": "\(caps.searchableTypes.count)", "history_system": "\(caps.systemHistory)",
                "export_system": "\(caps.systemExport)", "export_group": "\(caps.groupExport)",
            ])
        return caps
    }

    func resourceTypes(_ caps: ServerCapabilities) async throws -> [String] {
        if let configured = settings.resourceTypes { return configured }
        let types = caps.defaultTypes
        guard !types.isEmpty else {
            throw RemoteError.badResponse(
                route: "metadata", reason: "the CapabilityStatement offers no searchable type to mirror")
        }
        return types
    }

    /// Names of sync-state entries.
    enum State {
        static let initialComplete = "initial.complete"
        static let initialMode = "initial.mode"
        static let initialStartedAt = "initial.startedAt"
        static func initialNext(_ type: String) -> String { "initial.next.\(type)" }
        static func initialTotal(_ type: String) -> String { "initial.total.\(type)" }
        static let exportStatus = "export.status"
        static let exportManifest = "export.manifest"
        static func exportFile(_ index: Int) -> String { "export.file.\(index)" }
        static let cursor = "cursor"
        static let lastSweep = "sweep.last"
        static let lastSyncAt = "lastSyncAt"
    }

    /// Prepares the resources of one page, keeping only the types being mirrored.
    func prepare(_ resources: [Data], types: Set<String>?) -> (prepared: [PreparedVersion], rejected: [String: Int]) {
        var prepared: [PreparedVersion] = []
        prepared.reserveCapacity(resources.count)
        var rejected: [String: Int] = [:]
        for result in replica.prepareConcurrently(resources) {
            switch result {
            case .success(let p):
                if let types, !types.contains(p.envelope.resourceType) { continue }
                prepared.append(p)
            case .failure(let error):
                rejected[error.description, default: 0] += 1
            }
        }
        if !rejected.isEmpty {
            let count = rejected.values.reduce(0, +)
            publish { $0.rejected += count }
            for (reason, n) in rejected {
                logger.warning(
                    "skipped bad resources from the server", metadata: ["count": "\(n)", "reason": "\(reason)"])
            }
        }
        return (prepared, rejected)
    }

    /// GET a Bundle page; a 200 whose body is not a Bundle is retried a few times (a proxy
    /// or a server under stress can send garbage) before failing the cycle.
    func fetchPage(_ url: String, route: String) async throws -> (FHIRClient.Response, BundlePage) {
        var attempt = 0
        while true {
            attempt += 1
            let response = try await client.get(url)
            guard response.status == 200 else { throw RemoteError.status(route: route, code: response.status) }
            do {
                return (response, try BundlePage.parse(response.body))
            } catch {
                guard attempt < 4 else {
                    throw RemoteError.badResponse(route: route, reason: "page is not a Bundle: \(error)")
                }
                logger.warning("unusable page; refetching", metadata: ["route": "\(route)", "reason": "\(error)"])
            }
        }
    }
}
