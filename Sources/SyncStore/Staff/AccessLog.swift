import Foundation
public import Logging
public import SyncModel
import Synchronization

/// Records every access to a patient's data in the audit trail (who, when, which patient,
/// what: sealed in the replica, hash-chained) and watches for unusual reading.
public final class AccessLog: Sendable {
    let replica: Replica
    let monitor: Mutex<AccessMonitor>
    let logger: Logger
    /// Concurrent accesses share one durable commit.
    let commits: GroupCommit<AuditRecord>

    public init(replica: Replica, monitor: AccessMonitor = AccessMonitor(), logger: Logger) {
        self.replica = replica
        self.monitor = Mutex(monitor)
        self.logger = logger
        self.commits = GroupCommit(label: "ehr-sync.audit") { records in try replica.audit.append(records) }
    }

    /// Appends one access; returns once it is committed durably (with whatever other
    /// accesses arrived meanwhile). `patient` is the patient's id when the access concerns
    /// one patient; `target` the record (`Type/id`) or the search.
    public func record(actor: String, action: String, patient: String?, target: String?, detail: String? = nil)
        async throws(ReplicaError)
    {
        let now = Date().timeIntervalSince1970
        do {
            try await commits.submit(
                AuditRecord(
                    at: FHIRInstant.format(now), actor: actor, action: action, target: target, detail: detail,
                    patient: patient))
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw .database(String(describing: error))
        }
        guard let patient else { return }
        let alert = monitor.withLock { $0.record(account: actor, patient: patient, now: now) }
        if let alert {
            logger.warning(
                "unusual reading: one account opened many patients",
                metadata: [
                    "account": "\(alert.account)", "patients": "\(alert.patients)",
                    "window_s": "\(alert.windowSeconds)",
                ])
        }
    }

    /// Alerts of the last day, for status.
    public func alerts() -> [AccessMonitor.Alert] {
        monitor.withLock { $0.activeAlerts(now: Date().timeIntervalSince1970) }
    }
}
