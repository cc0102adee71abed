import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncServer
import SyncStore
import Synchronization

/// Why the daemon could not start; the message names what to fix.
struct DaemonStartError: Error {
    var message: String
    /// sysexits: 78 configuration, 77 permission (key), 74 I/O (replica).
    var exitCode: Int32
}

/// The process shell: wires configuration, key, replica, EHR client, puller and control
/// socket, and runs the sync loop until SIGTERM.
final class Daemon: Sendable {
    let config: SyncConfiguration
    let keySource: KeySource
    let replica: Replica
    let client: FHIRClient
    let puller: Puller
    let capabilities: CapabilityCache
    let reconciler: Reconciler
    let access: AccessLog
    let sessions: SessionStore
    let logger: Logger
    /// What the sync loop and the operator's commands share.
    let loop = Mutex(LoopState())
    /// The listeners, set once at start.
    let listeners = Mutex(Listeners())
    let liveness: Liveness
    let monitor: OutageMonitor
    let notifier = SystemdNotifier()
    /// Cuts the wait between cycles short (`syncctl sync-now`, `resume`).
    let wakeup = Wakeup()
    /// Starts the re-encryption pass at once when `key rotate --reencrypt` begins a re-key.
    let reencryptionWakeup = Wakeup()
    let metrics = SyncMetrics()
    /// The audit trail's last verification and the EHR's witness of it.
    let auditState = Mutex(AuditState())
    /// The last backup (``BackupState``), and what wakes the backup service.
    let backupState = Mutex(BackupState())
    let backupWakeup = Wakeup()
    /// Set by `backup restore` and `replica rebuild`: the process ends with ``restartExitCode``.
    let restartRequested = Mutex(false)
    /// Since when the state directory's disk has been full (a write failed for lack of space,
    /// none has succeeded since), for status.
    let diskFullSince = Mutex<Double?>(nil)
    /// The row sets' last check, for status.
    let integrityState = Mutex<ReplicaIntegrityStatus?>(nil)
    /// Sends the trail to the EHR; nil with `[audit] export = false`.
    let auditExporter: AuditExporter?

    /// The sync loop's state, for status and the operator's commands.
    struct LoopState {
        /// `syncctl pause`: no cycle starts until `resume`.
        var paused = false
        /// A cycle is running.
        var running = false
        /// Set when the EHR was down: the next replay waits a random moment first.
        /// Deletions queued through the local API (a burst is held for an administrator).
        var localDeletes = LocalDeleteGuard()
    }

    /// The listeners started with the daemon.
    struct Listeners {
        var control: ControlServer?
        var localAPI: LocalAPIServer?
        var metrics: MetricsServer?
        /// SHA-256 fingerprint of the local API's certificate, when it serves HTTPS.
        var tlsFingerprint: String?
    }

    var isPaused: Bool { loop.withLock { $0.paused } }

    private init(
        config: SyncConfiguration, keySource: KeySource, replica: Replica, client: FHIRClient, puller: Puller,
        reconciler: Reconciler, liveness: Liveness, monitor: OutageMonitor, logger: Logger
    ) {
        self.reconciler = reconciler
        self.access = AccessLog(
            replica: replica,
            monitor: AccessMonitor(
                threshold: config.audit.alertPatients, window: config.audit.alertWindow,
                overrides: config.audit.alertOverrides),
            logger: logger)
        self.sessions = SessionStore(
            idleTimeout: config.web.sessionIdleTimeout, absoluteTimeout: config.web.sessionAbsoluteTimeout)
        self.monitor = monitor
        self.config = config
        self.keySource = keySource
        self.replica = replica
        self.client = client
        self.puller = puller
        self.capabilities = puller.capabilities
        self.liveness = liveness
        self.logger = logger
        self.auditExporter =
            config.audit.export
            ? AuditExporter(
                transport: client, replica: replica,
                observer: "ehr-sync \(EHRSync.version) on \(ProcessInfo.processInfo.hostName)", logger: logger)
            : nil
    }

    static func start(configPath: String, logger: Logger) async throws(DaemonStartError) -> Daemon {
        let config: SyncConfiguration
        do {
            config = try SyncConfiguration.load(path: configPath)
        } catch {
            throw DaemonStartError(message: error.description, exitCode: 78)
        }
        let source: KeySource
        let kek: KeyEncryptionKey
        do {
            source = try KeySource.resolve(configuredFile: config.keyFile)
            kek = try source.load()
        } catch {
            throw DaemonStartError(message: error.description, exitCode: 77)
        }
        do {
            if let done = try prepareReplica(config: config, kek: kek, keySource: source.description, logger: logger) {
                logger.notice("\(done)")
            }
        } catch {
            throw DaemonStartError(message: "cannot prepare the replica: \(error)", exitCode: 74)
        }
        let replica: Replica
        do {
            replica = try Replica.open(
                directory: config.stateDirectory, kek: kek, keySource: source.description,
                sizeLimit: config.ehr.maxResourceBytes)
        } catch {
            throw DaemonStartError(message: error.description, exitCode: 74)
        }
        var authorization: (@Sendable () async throws -> String?)?
        var reauthorize: (@Sendable () async -> Void)?
        if let tokenFile = config.ehr.bearerTokenFile {
            let token: String
            do {
                token = try SecretFile.read(path: tokenFile)
            } catch {
                throw DaemonStartError(message: "[ehr] bearer_token_file: \(error.description)", exitCode: 77)
            }
            authorization = { "Bearer \(token)" }
        }
        if let smartConfig = config.ehr.smart {
            // SMART Backend Services: the key file is checked now; tokens are requested when needed.
            let smart: SMARTAuthorizer
            do {
                smart = try SMARTAuthorizer(smartConfig, logger: logger)
            } catch {
                throw DaemonStartError(
                    message: "\(configPath): [ehr.smart] private_key_file: \(error.description)", exitCode: 77)
            }
            logger.info(
                "SMART Backend Services",
                metadata: [
                    "client_id": "\(smart.clientID)", "token_url": "\(smart.tokenURL.absoluteString)",
                    "kid": "\(smart.keyID)",
                ])
            authorization = { try await smart.authorization() }
            reauthorize = { await smart.invalidate() }
        }
        let liveness = Liveness()
        let monitor = OutageMonitor(logger: logger)
        let client = FHIRClient(
            baseURL: config.ehr.baseURL,
            rate: RateController.Settings(
                policy: config.ehr.rateControl, floor: config.ehr.minRequestsPerSecond,
                ceiling: config.ehr.requestsPerSecond),
            connectTimeout: config.ehr.connectTimeout, requestTimeout: config.ehr.requestTimeout,
            logger: logger, authorization: authorization, reauthorize: reauthorize, activity: { liveness.beat() },
            observe: { monitor.record($0) })
        // Read once, shared by pull (which types) and replay (conditional creates).
        let capabilities = CapabilityCache(transport: client, logger: logger)
        let puller = Puller(
            transport: client, replica: replica, settings: Puller.Settings(config), logger: logger,
            capabilities: capabilities, heartbeat: { liveness.beat() })
        var replay = Reconciler.Settings()
        replay.provenance = config.replay.provenance
        replay.concurrency = config.replay.concurrency
        replay.defaultPolicy = config.replay.policy
        replay.policies = config.replay.policies
        replay.device = "ehr-sync \(EHRSync.version) on \(ProcessInfo.processInfo.hostName)"
        let reconciler = Reconciler(transport: client, replica: replica, settings: replay, logger: logger)
        let daemon = Daemon(
            config: config, keySource: source, replica: replica, client: client, puller: puller,
            reconciler: reconciler, liveness: liveness, monitor: monitor, logger: logger)
        // On per-patient servers, patients opened in the viewer within the hour are refreshed first.
        let access = daemon.access
        puller.prioritise { access.recentPatients() }
        // The trail is checked once at start: a broken one is critical in status from the first moment.
        _ = try? daemon.verifyAuditTrail()
        // So are the row sets, cheaply (counts, and the small tables in full): a deleted row or a
        // revived account is critical from the first moment; `syncctl verify` checks the rest.
        _ = try? daemon.checkIntegrity(full: false)
        let resources = (try? replica.records.count()) ?? 0
        logger.info("replica open", metadata: ["resources": "\(resources)", "key": "\(source.description)"])
        do {
            let server = try await ControlServer.start(
                path: config.controlSocket, group: config.controlStaffGroup, logger: logger
            ) { request, peer in
                await daemon.handle(request, from: peer)
            }
            daemon.listeners.withLock { $0.control = server }
            daemon.notifier.notify("READY=1\nSTATUS=\(daemon.summary())")
        } catch {
            await client.shutdown()
            replica.close()
            throw DaemonStartError(
                message: "cannot listen on the control socket \(config.controlSocket) ([control] socket): \(error)",
                exitCode: 74)
        }
        if let local = config.localAPI {
            do {
                try await daemon.startLocalAPI(local)
            } catch {
                await daemon.shutdown()
                throw error
            }
        }
        if let listen = config.metricsListen {
            do {
                let (host, port) = try MetricsServer.parseListen(listen)
                let server = try await MetricsServer.start(host: host, port: port, registry: daemon.metrics.registry) {
                    daemon.refreshMetrics()
                }
                daemon.listeners.withLock { $0.metrics = server }
                logger.info("metrics", metadata: ["listen": "\(listen)"])
            } catch {
                await daemon.shutdown()
                throw DaemonStartError(
                    message: "cannot serve metrics on \(listen) ([metrics] listen): \(error)", exitCode: 74)
            }
        }
        return daemon
    }

    /// One full cycle; true when the replica is up to date.
    func runOnce() async -> Bool {
        do {
            try await cycle()
            return true
        } catch {
            FileHandle.standardError.write(Data("ehr-syncd: sync did not complete: \(error)\n".utf8))
            return false
        }
    }

    private func cycle() async throws {
        loop.withLock { $0.running = true }
        defer { loop.withLock { $0.running = false } }
        try await puller.runCycle()
        // Replay only once the EHR is confirmed online (after an outage: the health probe,
        // then enough successes); a pull that merely outlived an outage does not qualify.
        if monitor.replayAllowed {
            try await replayOutbox()
            await exportAuditTrail()
        } else if try replica.outbox.counts()[.pending, default: 0] > 0 {
            logger.info(
                "replay waits until the EHR is confirmed online", metadata: ["state": "\(monitor.state.rawValue)"])
            // Recovering: the next cycle's successes confirm it; no need to wait a poll interval.
            if monitor.state == .recovering { wakeup.wake() }
        }
    }

    /// Cycles every poll interval until cancelled (at shutdown).
    func syncLoop() async {
        var failures = 0
        var probes = 0
        while !Task.isCancelled {
            if isPaused {
                liveness.setIdle(true)
                await wakeup.wait(.seconds(3600))
                liveness.setIdle(false)
                continue
            }
            if monitor.state == .outage {
                // No sync while the EHR is down: a health probe first, backing off.
                probes += 1
                let since = monitor.failingSince
                if await probe() {
                    probes = 0
                    await comeBack(outage: since.map { Date().timeIntervalSince1970 - $0 } ?? 0)
                } else {
                    liveness.setIdle(true)
                    await wakeup.wait(.milliseconds(Int64(monitor.nextProbeDelay(attempt: probes) * 1000)))
                    liveness.setIdle(false)
                    continue
                }
            }
            var wait = config.sync.pollInterval
            do {
                try await cycle()
                failures = 0
                noteStorage(nil)
            } catch {
                if Task.isCancelled { break }
                noteStorage(error)
                failures += 1
                logger.warning("sync cycle failed", metadata: ["reason": "\(error)", "failures": "\(failures)"])
                wait = min(
                    config.sync.pollInterval,
                    Backoff(base: 2, cap: config.sync.pollInterval).delay(
                        attempt: failures, retryAfter: nil, unit: Double.random(in: 0.5..<1))
                        ?? config.sync.pollInterval)
            }
            liveness.setIdle(true)
            await wakeup.wait(.milliseconds(Int64(wait * 1000)))
            liveness.setIdle(false)
        }
    }

    /// Tells systemd the state every few seconds, and that the daemon is alive while the
    /// sync loop shows signs of life.
    func watchdog() async {
        let interval = notifier.watchdogInterval ?? .seconds(10)
        while !Task.isCancelled {
            var message = "STATUS=\(summary())"
            if notifier.watchdogInterval != nil, liveness.isAlive(limit: interval * 2) {
                message = "WATCHDOG=1\n" + message
            }
            notifier.notify(message)
            try? await Task.sleep(for: interval)
        }
    }

    /// A re-key's background work (``Replica/resealBatch(limit:)``): batches of rows re-sealed
    /// with the new data key between other work, resumed after a restart, until a pass finds
    /// nothing left under the old key. Idle otherwise, until `key rotate --reencrypt` wakes it.
    func reencrypt() async {
        while !Task.isCancelled {
            var resealed = 0
            var unreadable = 0
            do {
                while !Task.isCancelled {
                    let step = try replica.resealBatch()
                    resealed += step.resealed
                    unreadable += step.unreadable
                    if step.finished {
                        logger.notice(
                            "re-encryption done: every record is sealed with the new data key",
                            metadata: ["rows": "\(resealed)", "unreadable": "\(unreadable)"])
                        try? trail("ehr-syncd", "reencryption-done", detail: "\(resealed) rows re-sealed")
                    }
                    if !step.more { break }
                    await Task.yield()
                }
            } catch {
                logger.error("re-encryption paused", metadata: ["reason": "\(error)", "rows": "\(resealed)"])
                await reencryptionWakeup.wait(.seconds(60))
                continue
            }
            if unreadable > 0 {
                logger.error(
                    "re-encryption left rows that no key opens (altered); run syncctl verify",
                    metadata: ["rows": "\(unreadable)"])
            }
            await reencryptionWakeup.wait(.seconds(3600))
        }
    }

    /// After an upgrade to replica schema v6: outlines for the rows stored before it, a batch
    /// at a time between other work (reads scan those rows meanwhile).
    func fillOutlines() async {
        var rows = 0
        do {
            while !Task.isCancelled {
                let n = try replica.records.fillOutlines()
                if n == 0 { break }
                if rows == 0 { logger.info("adding outlines to rows stored before this version (one-time upgrade)") }
                rows += n
                await Task.yield()
            }
        } catch {
            logger.warning("outline upgrade stopped", metadata: ["reason": "\(error)", "rows": "\(rows)"])
            return
        }
        if rows > 0 { logger.info("outline upgrade", metadata: ["rows": "\(rows)", "done": "\(!Task.isCancelled)"]) }
    }

    /// Closes what the services left: listeners still open (a start that failed half-way),
    /// the HTTP client, and last the replica.
    func shutdown() async {
        let open = listeners.withLock { $0 }
        if let server = open.localAPI { await server.stop() }
        if let server = open.control { await server.stop() }
        if let server = open.metrics { await server.stop() }
        await client.shutdown()
        replica.close()
        logger.info("stopped")
    }

    /// The health probe that must pass before sync resumes after an outage: the
    /// CapabilityStatement and one cheap search.
    func probe() async -> Bool {
        do {
            let metadata = try await client.get("metadata", probe: true)
            guard metadata.status == 200 else { return false }
            let type = config.sync.resourceTypes?.first ?? "Patient"
            let search = try await client.get("\(type)?_count=1&_elements=id", probe: true)
            return search.status == 200
        } catch {
            return false
        }
    }

    /// Sets the metrics from the current status, before each scrape.
    func refreshMetrics() {
        guard let status = try? status() else { return }
        metrics.update(
            from: status, http: client.stats,
            outboxDepth: status.outboxPending + status.outboxWaiting + status.outboxParked + status.conflicts,
            conflicts: status.conflicts)
    }

    /// One line for systemd's STATUS=: state, records, data age.
    func summary() -> String {
        guard let status = try? status() else { return "starting" }
        var text = "\(status.state), \(status.resources) records"
        if let asOf = status.dataAsOf { text += ", data as of \(asOf)" }
        if status.heldChanges > 0 { text += ", \(status.heldChanges) held changes" }
        let unsent = status.outboxPending + status.outboxWaiting + status.outboxParked
        if unsent > 0 { text += ", \(unsent) local changes not yet on the EHR" }
        if status.conflicts > 0 { text += ", \(status.conflicts) conflicts to review" }
        return text
    }

    /// What status and the viewer's banner call the daemon's state.
    func state(initialComplete: Bool) -> String {
        let ehr = monitor.state
        if isPaused { return "paused" }
        if ehr != .online { return ehr.rawValue }
        if !initialComplete {
            return puller.progress.phase == .starting && !loop.withLock({ $0.running }) ? "starting" : "initial-sync"
        }
        return "online"
    }

    func status() throws -> StatusReport {
        let progress = puller.progress
        let initialComplete = try replica.syncState.value(.initialComplete) == "1"
        let held = try replica.held.summary()
        let state = state(initialComplete: initialComplete)
        var initial: StatusReport.InitialSyncProgress?
        if !progress.types.isEmpty || !initialComplete {
            let known = progress.types.compactMap(\.total)
            initial = .init(
                mode: progress.initialMode, done: progress.types.reduce(0) { $0 + $1.done },
                total: known.count == progress.types.count && !known.isEmpty ? known.reduce(0, +) : nil,
                types: progress.types)
        }
        let outbox = try outboxStatus()
        var report = StatusReport(
            state: state, resources: try replica.records.count(), initialSyncComplete: initialComplete,
            lastSyncAt: try replica.syncState.value(.lastSyncAt), dataAsOf: try replica.syncState.value(.cursor),
            failingSince: monitor.failingSince.map { FHIRInstant.format($0) },
            lastError: progress.lastError, initialSync: initial, heldChanges: held.total,
            heldRegressions: held.regressions, heldMassDeletions: held.massDeletions,
            rejectedResources: progress.rejected, keySource: keySource.description)
        report.outboxPending = outbox.pending
        report.outboxWaiting = outbox.waiting
        report.outboxParked = outbox.parked
        report.conflicts = outbox.conflicts
        report.accessAlerts = access.alerts().map(AccessAlert.init)
        report.localAPICertificate = listeners.withLock { $0.tlsFingerprint }
        report.auditTrail = auditTrailStatus()
        report.integrity = integrityState.withLock { $0 }
        report.reencryption = try? replica.reencryptionProgress()
        report.backup = backupStatus()
        if let coverage = progress.coverage {
            report.types = TypesStatus(coverage)
            // Not complete while a served type is neither mirrored nor excluded.
            if coverage.isPartial { report.initialSyncComplete = false }
        }
        let rate = client.currentRate
        report.requestRate = RequestRateStatus(
            policy: config.ehr.rateControl.rawValue, requestsPerSecond: (rate.rate * 10).rounded() / 10,
            ceiling: config.ehr.requestsPerSecond, slowStart: rate.slowStart)
        let fullSince = diskFullSince.withLock { $0 }
        report.storage = StorageStatus(
            full: fullSince != nil, fullSince: fullSince.map { FHIRInstant.format($0) },
            freeBytes: Self.freeBytes(config.stateDirectory))
        return report
    }
}
