import Foundation
import Logging
import NIOCore
import SyncEngine
import SyncModel
import SyncServer
import SyncStore

/// The clinician → server path in the shell: the local API feeds the outbox; after each
/// successful pull the outbox is replayed.
extension Daemon {
    func startLocalAPI(_ local: SyncConfiguration.LocalAPI) async throws(DaemonStartError) {
        let credentials: LocalCredentials
        do {
            credentials = try LocalCredentials.load(path: local.tokenFile)
        } catch {
            throw DaemonStartError(message: "[local_api] token_file: \(error.description)", exitCode: 77)
        }
        let (host, port): (String, Int)
        do {
            let address = try ListenAddress.parse(local.listen)
            guard address.isLoopback || local.usesTLS else {
                throw ListenAddressError(
                    "\(local.listen) is reachable from the network: HTTPS is required beyond loopback")
            }
            (host, port) = (address.host, address.port)
        } catch {
            throw DaemonStartError(message: "[local_api] listen: \(error)", exitCode: 78)
        }
        var tls: TLSIdentity?
        do {
            if let certificate = local.tlsCertificate, let key = local.tlsKey {
                tls = try TLSIdentity.load(certificate: certificate, key: key)
            } else if local.tlsSelfSigned {
                let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                tls = try TLSIdentity.selfSigned(
                    directory: config.stateDirectory,
                    hostnames: ["localhost", ProcessInfo.processInfo.hostName],
                    addresses: Self.certificateAddresses(listenHost: bare))
            }
        } catch {
            throw DaemonStartError(message: error.description, exitCode: 77)
        }
        if let tls {
            listeners.withLock { $0.tlsFingerprint = tls.fingerprint }
            logger.notice("local API certificate", metadata: ["sha256": "\(tls.fingerprint)"])
        }
        let reconciler = self.reconciler
        let replica = self.replica
        let wakeup = self.wakeup
        loop.withLock {
            $0.localDeletes = LocalDeleteGuard(threshold: local.deleteBurst, window: local.deleteBurstWindow)
        }
        var handlers = LocalAPIHandlers(
            enqueue: { [weak self] change throws(OutboxError) in
                guard let self else { return try reconciler.enqueue(change) }
                do throws(OutboxError) {
                    guard change.operation == .delete else {
                        let queued = try reconciler.enqueue(change)
                        self.noteStorage(nil)
                        return queued
                    }
                    let (hold, reason) = self.loop.withLock { state in
                        (state.localDeletes.shouldHold(now: Date().timeIntervalSince1970), state.localDeletes.reason)
                    }
                    let queued = try reconciler.enqueue(change, holdReason: hold ? reason : nil)
                    self.noteStorage(nil)
                    return queued
                } catch {
                    if case .replica(let inner) = error { self.noteStorage(inner) }
                    throw error
                }
            },
            read: { type, id throws(ReplicaError) in try replica.outbox.localView(type: type, id: id) },
            search: { request throws(ReplicaError) in try replica.search(request) },
            everything: { id throws(ReplicaError) in try replica.everything(patientID: id) },
            dataAsOf: { try? replica.syncState.value(.cursor) },
            queued: { [weak self] in
                wakeup.wake()
                self?.backupWakeup.wake()
            })
        // The mirrored types, known without touching the replica: metadata is fetched often.
        let puller = self.puller
        handlers.types = { puller.mirroredTypes }
        let access = self.access
        handlers.audit = { actor, action, patients, target throws(ReplicaError) in
            try await access.record(actor: actor, action: action, patients: patients, target: target)
        }
        var web: WebViewer?
        if config.web.enabled {
            var dependencies = WebViewer.Dependencies(
                replica: replica, enqueue: { change throws(OutboxError) in try reconciler.enqueue(change) },
                queued: { [weak self] in
                    wakeup.wake()
                    self?.backupWakeup.wake()
                },
                banner: { [weak self] in
                    self?.banner()
                        ?? ViewerBanner(
                            state: "starting", failingSince: nil, dataAsOf: nil, unsent: 0, conflicts: 0)
                },
                access: access, sessions: sessions)
            let client = self.client
            dependencies.attachmentURL = { client.url($0) }
            let puller = self.puller
            dependencies.patientDataAsOf = { puller.dataAsOf(patient: $0) }
            web = WebViewer(dependencies, logger: logger)
        }
        do {
            let server = try await LocalAPIServer.start(
                host: host, port: port, credentials: credentials, maxBodyBytes: config.ehr.maxResourceBytes,
                handlers: handlers, web: web, tls: tls,
                allowedHosts: Self.allowedHosts(listenHost: host, configured: local.hostNames), logger: logger)
            listeners.withLock { $0.localAPI = server }
        } catch {
            throw DaemonStartError(
                message: "cannot listen on \(local.listen) ([local_api] listen): \(error)", exitCode: 74)
        }
    }

    /// The EHR answered again after an outage of `outage` seconds. Before the first catch-up
    /// and replay request, a random wait drawn over a window that grows with the outage (at
    /// most `[replay] start_jitter`), so practices coming back together do not all come at
    /// once; then the request rate starts slow (``RateController``).
    func comeBack(outage: Double) async {
        client.restartRate()
        // A sweep missed during the outage is not owed now, when every practice is back.
        try? replica.syncState.set([.sweepNotBefore: SyncCursor(serverTime: Date().timeIntervalSince1970).text])
        let wait = ReconnectionJitter.wait(
            outage: outage, cap: config.replay.startJitter, unit: Double.random(in: 0..<1))
        logger.notice(
            "EHR back; first requests after a random wait",
            metadata: ["outage_s": "\(Int(outage))", "wait_s": "\(String(format: "%.1f", wait))"])
        if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
    }

    /// Replays pending local changes (paced by the client's rate, one budget with pulls).
    func replayOutbox() async throws {
        let counts = try replica.outbox.counts()
        guard (counts[.pending] ?? 0) > 0 else { return }
        let caps = try await capabilities.current()
        logger.notice("replay started", metadata: ["pending": "\(counts[.pending] ?? 0)"])
        let started = ContinuousClock.now
        let outcome = try await reconciler.replay(conditionalCreate: { caps.conditionalCreateTypes.contains($0) })
        let elapsed = started.duration(to: .now)
        if outcome != Reconciler.PassOutcome() {
            logger.notice(
                "replay pass",
                metadata: [
                    "elapsed_s":
                        "\(String(format: "%.3f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))",
                    "done": "\(outcome.done)", "parked": "\(outcome.parked)", "conflicts": "\(outcome.conflicts)",
                    "discarded": "\(outcome.discarded)", "waiting": "\(outcome.waiting)",
                ])
        }
    }

    /// Names the local API answers to: localhost, this machine's name, the listen addresses
    /// (every interface's when listening on all) and `[local_api] host_names`.
    static func allowedHosts(listenHost: String, configured: [String]) -> AllowedHosts {
        let bare = listenHost.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let host = ProcessInfo.processInfo.hostName
        return AllowedHosts(
            ["localhost", host, host.split(separator: ".").first.map(String.init) ?? host]
                + certificateAddresses(listenHost: bare) + configured)
    }

    /// Addresses a self-signed certificate names: the listen address, or every interface's
    /// when listening on all of them, plus loopback.
    static func certificateAddresses(listenHost: String) -> [String] {
        var addresses: Set<String> = ["127.0.0.1", "::1"]
        if listenHost == "0.0.0.0" || listenHost == "::" {
            for device in (try? System.enumerateDevices()) ?? [] {
                if let ip = device.address?.ipAddress { addresses.insert(ip) }
            }
        } else {
            addresses.insert(listenHost)
        }
        return addresses.sorted()
    }

    /// The web viewer's banner (on every page): the EHR state, the data's age and the unsent
    /// changes, without the record counts of a full status.
    func banner() -> ViewerBanner {
        guard let initialComplete = try? replica.syncState.value(.initialComplete) == "1",
            let outbox = try? outboxCounts()
        else {
            return ViewerBanner(state: "starting", failingSince: nil, dataAsOf: nil, unsent: 0, conflicts: 0)
        }
        return ViewerBanner(
            state: state(initialComplete: initialComplete),
            failingSince: monitor.failingSince.map { FHIRInstant.format($0) },
            dataAsOf: try? replica.syncState.value(.cursor), unsent: outbox.unsent, conflicts: outbox.conflicts)
    }

    /// Open outbox entries by kind, without planning (for the banner).
    func outboxCounts() throws -> (unsent: Int, conflicts: Int) {
        let counts = try replica.outbox.counts()
        return ((counts[.pending] ?? 0) + (counts[.parked] ?? 0), counts[.conflict] ?? 0)
    }

    struct OutboxStatus {
        var pending = 0
        var waiting = 0
        var parked = 0
        var conflicts = 0
    }

    func outboxStatus() throws -> OutboxStatus {
        let counts = try replica.outbox.counts()
        var status = OutboxStatus(
            pending: counts[.pending] ?? 0, parked: counts[.parked] ?? 0, conflicts: counts[.conflict] ?? 0)
        if status.pending > 0 {
            status.waiting = try reconciler.plan().plan.waiting.count
            status.pending -= status.waiting
        }
        return status
    }
}
