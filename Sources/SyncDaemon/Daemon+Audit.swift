import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncStore

/// The audit trail's integrity: its own chain, checked at start and on `syncctl audit
/// verify`, and the EHR as its outside witness (``AuditExporter``), fed every cycle the EHR
/// answers. Either finding a break makes status critical.
extension Daemon {
    struct AuditState {
        var lines = 0
        /// Where the chain breaks, from the last local verification.
        var localBreak: AuditBreak?
        var witness: AuditWitness.Verdict = .unknown
    }

    /// Verifies the chain and remembers the outcome for status.
    @discardableResult
    func verifyAuditTrail() throws -> Result<Int, AuditBreak> {
        let result = try replica.audit.verify()
        auditState.withLock { state in
            switch result {
            case .success(let count):
                state.lines = count
                state.localBreak = nil
            case .failure(let broken):
                state.localBreak = broken
            }
        }
        if case .failure(let broken) = result {
            logger.critical(
                "audit trail broken", metadata: ["line": "\(broken.seq)", "reason": "\(broken.reason)"])
        }
        return result
    }

    /// `syncctl audit verify`: the chain, then (when the EHR answers) the witness.
    func verifyAuditTrailAndWitness() async throws -> Result<Int, AuditBreak> {
        let local = try verifyAuditTrail()
        guard case .success = local else { return local }
        if config.audit.export { await exportAuditTrail(force: true) }
        switch auditState.withLock({ $0.witness }) {
        case .shorter(let end):
            return .failure(
                AuditBreak(
                    seq: end + 1,
                    reason:
                        "line missing: the EHR witnessed line \(end + 1) and later (trail cut short or restored from an older copy)"
                ))
        case .diverged(let seq):
            return .failure(AuditBreak(seq: seq, reason: "line altered: it differs from the line the EHR witnessed"))
        default:
            return local
        }
    }

    /// Sends the trail's new lines to the EHR and checks it against what the EHR holds.
    /// Costs nothing on a cycle with no new line once checked (`force`: check anyway).
    func exportAuditTrail(force: Bool = false) async {
        guard let exporter = auditExporter else { return }
        do {
            let known = auditState.withLock { $0.witness }
            if case .shorter = known { return }
            if case .diverged = known { return }
            let exported = Int64(try replica.syncState.value(.auditExported) ?? "0") ?? 0
            if !force, known != .unknown, try replica.audit.lastSeq() <= exported { return }
            let verdict = try await exporter.run()
            auditState.withLock { $0.witness = verdict }
            switch verdict {
            case .shorter, .diverged:
                logger.critical(
                    "audit trail disagrees with the EHR's witness", metadata: ["verdict": "\(verdict.text)"])
            case .refused(let reason):
                logger.warning("the EHR does not take the audit trail", metadata: ["reason": "\(reason)"])
            default:
                break
            }
        } catch {
            logger.info("audit trail not sent to the EHR this cycle", metadata: ["reason": "\(error)"])
        }
    }

    /// The trail's line in status.
    func auditTrailStatus() -> AuditTrailStatus {
        let state = auditState.withLock { $0 }
        let lines = (try? replica.audit.lastSeq()).map(Int.init) ?? state.lines
        var problem: String?
        if let broken = state.localBreak {
            problem = "record #\(broken.seq): \(broken.reason) (syncctl audit verify)"
        } else if state.witness.isBroken {
            problem = state.witness.text
        }
        let witness = config.audit.export ? state.witness.text : "not sent to the EHR ([audit] export = false)"
        return AuditTrailStatus(intact: problem == nil, lines: lines, problem: problem, witness: witness)
    }
}

extension Daemon {
    /// The full row-set check, once after start, in the background (a few seconds for a large
    /// practice): finds what the check at start cannot, such as an older sealed version of a
    /// record put back, without waiting for an operator's `syncctl verify`.
    func checkIntegrityInBackground() async {
        await Task.yield()
        guard !Task.isCancelled else { return }
        do {
            let problems = try checkIntegrity(full: true)
            if problems.isEmpty { logger.info("replica integrity: every row matches its table's sealed digest") }
        } catch {
            logger.warning("replica integrity check not run", metadata: ["reason": "\(error)"])
        }
    }

    /// Checks the replica's row sets (``Replica/rowSetProblems(full:)``), remembers the outcome
    /// for status and logs a break; returns the problems.
    @discardableResult
    func checkIntegrity(full: Bool) throws -> [String] {
        let problems = try replica.rowSetProblems(full: full)
        integrityState.withLock { $0 = ReplicaIntegrityStatus(problems: problems, checked: full ? "full" : "start") }
        for problem in problems {
            logger.critical("replica integrity broken", metadata: ["problem": "\(problem)"])
        }
        return problems
    }
}
