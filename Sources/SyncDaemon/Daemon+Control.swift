import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncServer
import SyncStore

/// The control socket's commands (``ControlCommand``). The peer is named by the kernel and
/// its role checked first (``ControlAccessPolicy``); every administrator action, and every
/// refusal, goes into the audit trail under the peer's real user; errors are answers, never
/// crashes.
extension Daemon {
    var accessPolicy: ControlAccessPolicy {
        ControlAccessPolicy(
            staffGroup: config.controlStaffGroup, adminGroup: config.controlAdminGroup, serviceUID: getuid())
    }

    func handle(_ request: ControlRequest, from peer: ControlPeer) async -> ControlResponse {
        let actor = peer.actor
        if let refusal = accessPolicy.refusal(of: request.command, by: peer) {
            logger.warning(
                "control request refused", metadata: ["command": "\(request.command.name)", "peer": "\(actor)"])
            do {
                try trail(actor, "control-refused", target: request.command.name)
            } catch {
                return .failure("refused (and the refusal could not be recorded: \(error))")
            }
            return .failure(refusal)
        }
        var response = await handle(request, actor: actor)
        if case .failure = response { return response }
        // The EHR's own error text may echo record content: administrators only.
        if accessPolicy.role(of: peer) == .staff, case .outbox(let items) = response {
            response = .outbox(
                items.map { item in
                    var item = item
                    item.reason = item.reason.map(OperationOutcomeText.withoutServerText)
                    return item
                })
        }
        do {
            try trailAdminAction(request.command, actor: actor)
        } catch {
            logger.error("operator action not recorded in the audit trail", metadata: ["reason": "\(error)"])
        }
        return response
    }

    /// Appends one operator line to the audit trail.
    func trail(_ actor: String, _ action: String, target: String? = nil, detail: String? = nil, patient: String? = nil)
        throws
    {
        try replica.audit.append(
            AuditRecord(
                at: FHIRInstant.format(Date().timeIntervalSince1970), actor: actor, action: action, target: target,
                detail: detail, patient: patient))
    }

    /// The trail line of an administrator action whose store does not write one itself
    /// (accounts, retries and resolutions are recorded in the same transaction as the change).
    func trailAdminAction(_ command: ControlCommand, actor: String) throws {
        switch command {
        case .status, .syncNow, .outbox, .conflicts, .userAdd, .userSetRole, .userPasswd, .userSetDisabled, .userList,
            .outboxRetry,
            .conflictResolve, .conflictShow:
            return
        case .decideHeld(_, let rows):
            try trail(
                actor, command.name, detail: rows.map { $0.map(String.init).joined(separator: ",") } ?? "all")
        case .userUnlock(let name):
            try trail(actor, command.name, target: "account \(name)")
        case .keyRotate(_, let reencrypt):
            try trail(actor, command.name, detail: reencrypt ? "new data key, rows re-sealed" : "data key rewrapped")
        case .keyBackup, .pause, .resume, .held, .verify, .auditVerify, .auditList, .backupNow, .replicaRebuild:
            try trail(actor, command.name)
        case .backupRestore(let dir):
            try trail(actor, command.name, target: dir)
        }
    }

    func handle(_ request: ControlRequest, actor: String) async -> ControlResponse {
        do {
            switch request.command {
            case .status:
                return .status(try status())
            case .pause:
                loop.withLock { $0.paused = true }
                logger.notice("operator action", metadata: ["action": "pause"])
                return .done("paused: no sync starts until `syncctl resume` (a cycle in progress finishes)")
            case .resume:
                loop.withLock { $0.paused = false }
                wakeup.wake()
                logger.notice("operator action", metadata: ["action": "resume"])
                return .done("resumed")
            case .syncNow:
                if isPaused { return .failure("sync is paused; run `syncctl resume` first") }
                wakeup.wake()
                logger.notice("operator action", metadata: ["action": "sync-now"])
                return .done("a sync cycle starts now (or right after the one in progress)")
            case .held:
                return .held(try replica.held.list())
            case .backupNow, .backupRestore, .replicaRebuild:
                return try handleBackup(request.command)
            case .decideHeld(let decision, let rows):
                let count = try replica.held.decide(decision, rows: rows)
                logger.notice(
                    "operator action", metadata: ["action": "\(request.command.name)", "count": "\(count)"])
                return .done(
                    decision == .approve
                        ? "\(count) held change(s) applied to the replica"
                        : "\(count) held change(s) rejected; the replica keeps its versions")
            case .verify:
                var report = try replica.records.verify()
                report.rowSetProblems = try checkIntegrity(full: true)
                logger.notice("operator action", metadata: ["action": "verify", "ok": "\(report.ok)"])
                return .verify(report)
            case .keyRotate(let file, true):
                let newKEK = try KeySource.file(path: file).load()
                let recovery = try replica.beginReencryption(newKEK: newKEK)
                reencryptionWakeup.wake()
                logger.notice("operator action", metadata: ["action": "key-rotate", "reencrypt": "true"])
                return .recoveryKey(recovery.text)
            case .keyRotate(let file, false):
                let newKEK = try KeySource.file(path: file).load()
                try replica.rotateKey(to: newKEK)
                logger.notice("operator action", metadata: ["action": "key-rotate"])
                return .done(
                    "the replica's data key is now wrapped by the key in \(file). Point [key] file at it "
                        + "(or re-encrypt the systemd credential from it) before the next restart, then destroy the old key."
                )
            case .keyBackup(let replace):
                guard let recovery = try replica.createRecoveryKey(replace: replace) else {
                    return .failure(
                        "a recovery key was already made and shown once; `syncctl key backup --replace` makes a new one "
                            + "(the old printed key then stops working)")
                }
                logger.notice("operator action", metadata: ["action": "key-backup", "replaced": "\(replace)"])
                return .recoveryKey(recovery.text)
            case .outbox, .outboxRetry, .conflicts, .conflictShow, .conflictResolve:
                return try await handleOutbox(request.command, actor: actor)
            case .userAdd, .userSetRole, .userPasswd, .userSetDisabled, .userList, .userUnlock, .auditVerify,
                .auditList:
                return try await handleStaff(request.command, actor: actor)
            }
        } catch let error as StaffRefusal {
            return .failure(error.description)
        } catch let error as OutboxError {
            return .failure(error.description)
        } catch {
            return .failure("\(request.command.name) failed: \(error)")
        }
    }

    /// The outbox and the conflict review queue (`syncctl outbox`, `syncctl conflicts`).
    /// Refusals (no such entry, wrong state, an unusable merged record) are answered with
    /// the reason alone.
    func handleOutbox(_ command: ControlCommand, actor: String) async throws -> ControlResponse {
        switch command {
        case .outbox(let all):
            let (open, plan) = try reconciler.plan()
            let entries = all ? try replica.outbox.entries() : open
            return .outbox(entries.map { OutboxItem($0, waiting: plan.waiting[$0.seq]) })
        case .conflicts:
            let entries = try replica.outbox.entries(states: [.conflict])
            return .outbox(entries.map { OutboxItem($0, waiting: nil) })
        case .conflictShow(let seq):
            guard let entry = try replica.outbox.entry(seq: seq) else { throw OutboxError.noSuchEntry(seq) }
            guard entry.state == .conflict else {
                throw OutboxError.wrongState(seq: seq, state: entry.state, expected: "conflict")
            }
            // The review shows clinical content: the patients it exposes are in the trail first,
            // and counted by the unusual-reading alert like any other read.
            let payload = entry.payload
            let id = payload.serverID ?? payload.localID
            let patients = [payload.base, payload.resource, payload.remote].compactMap { $0 }.flatMap {
                PatientAttribution.patients(in: $0, type: entry.resourceType, id: id)
            }
            try await access.record(actor: actor, action: "conflict-show", patients: patients, target: "outbox #\(seq)")
            logger.notice("operator action", metadata: ["action": "conflict-show", "entry": "\(seq)"])
            return .conflict(ConflictDetail(entry))
        case .outboxRetry(let seq):
            try replica.outbox.retryParked(seq: seq, actor: actor)
            wakeup.wake()
            logger.notice("operator action", metadata: ["action": "outbox-retry", "entry": "\(seq)"])
            return .done("change #\(seq) is queued again; it is sent \(nextSend())")
        case .conflictResolve(let seq, let keep):
            let choice: ConflictChoice
            let outcome: String
            let kept: String
            switch keep {
            case .local:
                choice = .local
                kept = "local"
                outcome = "this practice's version is queued to go over the EHR's; it is sent \(nextSend())"
            case .remote:
                choice = .remote
                kept = "remote"
                outcome = "the EHR's version stays and the local change is closed"
            case .file(let content):
                choice = .content(Data(content.utf8))
                kept = "file"
                outcome = "the merged record is queued for the EHR; it is sent \(nextSend())"
            }
            try replica.outbox.resolveConflict(seq: seq, choice: choice, actor: actor)
            if choice != .remote { wakeup.wake() }
            logger.notice(
                "operator action", metadata: ["action": "conflict-resolve", "entry": "\(seq)", "kept": "\(kept)"])
            return .done("conflict #\(seq) resolved: \(outcome)")
        default:
            return .failure("\(command.name) is not an outbox command")
        }
    }

    /// When a change queued now reaches the EHR.
    func nextSend() -> String {
        isPaused
            ? "once sync resumes (`syncctl resume`)" : "with the next sync cycle, starting now"
    }
}
