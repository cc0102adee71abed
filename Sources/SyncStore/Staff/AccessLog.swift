import Foundation
public import Logging
public import SyncModel
import Synchronization

/// Records every access to a patient's data in the audit trail (who, when, which patient,
/// what: sealed in the replica, hash-chained) and watches for unusual reading.
public final class AccessLog: Sendable {
    let replica: Replica
    let monitor: Mutex<AccessMonitor>
    /// Patients opened within the hour (refreshed first on per-patient servers).
    let recent = Mutex(RecentPatients())
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
        try await record(
            actor: actor, action: action, patients: patient.map { [$0] } ?? [], target: target, detail: detail)
    }

    /// Appends one access that exposed `patients` (a search page, its `_include`d records, a
    /// list): one line per distinct patient, committed together, each counted by the
    /// unusual-reading alert; one line naming no patient when the list is empty.
    public func record(actor: String, action: String, patients: [String], target: String?, detail: String? = nil)
        async throws(ReplicaError)
    {
        let now = Date().timeIntervalSince1970
        let at = FHIRInstant.format(now)
        var seen = Set<String>()
        let distinct = patients.filter { seen.insert($0).inserted }
        let records =
            distinct.isEmpty
            ? [AuditRecord(at: at, actor: actor, action: action, target: target, detail: detail)]
            : distinct.map {
                AuditRecord(at: at, actor: actor, action: action, target: target, detail: detail, patient: $0)
            }
        do {
            try await commits.submit(records)
        } catch let error as ReplicaError {
            throw error
        } catch {
            throw ReplicaError.from(error)
        }
        guard !distinct.isEmpty else { return }
        recent.withLock { for patient in distinct { $0.record(patient, at: now) } }
        let alert = monitor.withLock { monitor in
            var raised: AccessMonitor.Alert?
            for patient in distinct {
                if let alert = monitor.record(account: actor, patient: patient, now: now) { raised = alert }
            }
            return raised
        }
        if let alert {
            logger.warning(
                "unusual reading: one account opened many patients",
                metadata: [
                    "account": "\(alert.account)", "patients": "\(alert.patients)",
                    "window_s": "\(alert.windowSeconds)",
                ])
        }
    }

    /// Patients opened within the hour.
    public func recentPatients() -> Set<String> {
        recent.withLock { $0.patients(now: Date().timeIntervalSince1970) }
    }

    /// Alerts of the last day, for status.
    public func alerts() -> [AccessMonitor.Alert] {
        monitor.withLock { $0.activeAlerts(now: Date().timeIntervalSince1970) }
    }
}
