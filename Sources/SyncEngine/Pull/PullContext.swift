import Foundation
import Logging
import SyncModel
import SyncStore
import Synchronization

/// What the pull engines (``InitialSync``, ``IncrementalSync``, ``AttachmentFetcher``) share,
/// handed to each explicitly: the EHR, the replica, the settings, and where progress goes.
/// No engine holds another or reaches back into the ``Puller``.
struct PullContext: Sendable {
    let transport: any FHIRTransport
    let replica: Replica
    let settings: Puller.Settings
    let logger: Logger
    let progress: ProgressBoard
    /// Patients opened recently (set by the daemon).
    let recent = RecentSource()
    /// On per-patient servers: the server time each patient was last listed from, this process.
    let listedAt = PatientListings()

    func publish(_ change: (inout PullProgress) -> Void) { progress.publish(change) }

    /// Prepares the resources of one page, keeping only the types being mirrored.
    func prepare(_ resources: [Data], types: Set<String>?) -> (prepared: [PreparedVersion], rejected: [String: Int]) {
        var prepared: [PreparedVersion] = []
        prepared.reserveCapacity(resources.count)
        var rejected: [String: Int] = [:]
        for result in replica.records.prepareConcurrently(resources) {
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
    func fetchPage(_ url: String, route: String) async throws -> (FHIRResponse, BundlePage) {
        var attempt = 0
        while true {
            attempt += 1
            let response = try await transport.get(url)
            if TypeProbe.isRefusal(response.status) {
                throw RemoteError.refused(
                    route: route, code: response.status,
                    reason: TypeProbe.reason(response.body, url: url))
            }
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

extension PullContext {
    /// The types mirrored and how, as last discovered.
    var coverage: TypeCoverage { progress.current.coverage ?? TypeCoverage() }

    /// Records how a type is listed from now on (a refusal met mid-run, a type found in
    /// `_history`), for status and across restarts.
    func mark(_ type: String, _ access: TypeCoverage.Access, reason: String? = nil) throws {
        var updated = coverage
        guard updated[type]?.access != access || updated[type]?.reason != reason else { return }
        updated.mark(type, access, reason: reason)
        try save(updated)
        switch access {
        case .refused:
            logger.error(
                "the EHR refuses every way tried of listing a type; the mirror is partial",
                metadata: ["type": "\(type)", "reason": "\(reason ?? "")"])
        case .perPatient:
            logger.warning(
                "the EHR refuses listing a type; listing it patient by patient",
                metadata: ["type": "\(type)", "reason": "\(reason ?? "")"])
        case .search:
            logger.info("type mirrored from now on", metadata: ["type": "\(type)"])
        case .absent, .excluded:
            break
        }
    }

    /// Records that the server refuses `_lastUpdated` on a type (listed whole from now on).
    func markWithoutLastUpdated(_ type: String, reason: String) throws {
        var updated = coverage
        updated.markWithoutLastUpdated(type, reason: reason)
        try save(updated)
        logger.warning(
            "the EHR refuses _lastUpdated on a type; its changes are found by listing it whole",
            metadata: ["type": "\(type)", "reason": "\(reason)"])
    }

    func save(_ coverage: TypeCoverage) throws {
        publish { $0.coverage = coverage }
        let json = String(decoding: (try? JSONEncoder().encode(coverage)) ?? Data(), as: UTF8.self)
        try replica.syncState.set([SyncStateKey.coverage: json])
    }

    /// The patients whose records per-patient listings ask for, sorted by id.
    func patientIDs() -> [String] { replica.records.patientIDs() }
}

/// An engine of the pull, run with a ``PullContext``.
protocol PullEngine {
    var context: PullContext { get }
}

extension PullEngine {
    /// The server refuses `Patient/[id]/$everything`: remembered (with `more` state in the same
    /// commit); per-patient types are listed type by type from now on.
    func rememberEverythingRefused(code: Int, reason: String, more: [SyncStateKey: String?] = [:]) throws {
        logger.warning(
            "the EHR refuses Patient/$everything; listing each type for each patient",
            metadata: ["status": "\(code)", "reason": "\(reason)"])
        try replica.syncState.set(more.merging([SyncStateKey.everythingRefused: "HTTP \(code): \(reason)"]) { $1 })
    }

    var replica: Replica { context.replica }
    var client: any FHIRTransport { context.transport }
    var logger: Logger { context.logger }
    var settings: Puller.Settings { context.settings }
}

/// On per-patient servers: the server time each patient was last listed from (this process).
final class PatientListings: Sendable {
    private let listed = Mutex<[String: String]>([:])
    func record(_ patients: [String], at: String) {
        listed.withLock { for patient in patients { $0[patient] = at } }
    }
    func at(_ patient: String) -> String? { listed.withLock { $0[patient] } }
}

/// Where the patients opened recently come from (late-bound: the daemon's access log).
final class RecentSource: Sendable {
    private let source = Mutex<@Sendable () -> Set<String>>({ [] })
    func set(_ patients: @escaping @Sendable () -> Set<String>) { source.withLock { $0 = patients } }
    func current() -> Set<String> { source.withLock { $0 }() }
}

/// The pull's progress, published by the engines and read by status; every publication is a
/// sign of life for the watchdog.
final class ProgressBoard: Sendable {
    private let state = Mutex(PullProgress())
    private let heartbeat: @Sendable () -> Void

    init(heartbeat: @escaping @Sendable () -> Void) { self.heartbeat = heartbeat }

    var current: PullProgress { state.withLock { $0 } }

    func publish(_ change: (inout PullProgress) -> Void) {
        heartbeat()
        state.withLock { change(&$0) }
    }
}
