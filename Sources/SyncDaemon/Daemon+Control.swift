import Foundation
import Logging
import SyncModel

/// The control socket's commands. Every operator action is logged (without PHI) as an
/// audit trail; errors are answers, never crashes.
extension Daemon {
    static let commands = [
        "status", "pause", "resume", "sync-now", "held", "held-approve", "held-reject", "verify", "key-rotate",
        "key-backup", "outbox", "outbox-retry", "conflicts", "conflict-show", "conflict-resolve",
    ]

    func handle(_ request: ControlRequest) async -> ControlResponse {
        if let response = await handleStaff(request) { return response }
        do {
            switch request.command {
            case "status":
                return ControlResponse(ok: true, status: try status())
            case "pause":
                paused.withLock { $0 = true }
                logger.notice("operator action", metadata: ["action": "pause"])
                return .done("paused: no sync starts until `syncctl resume` (a cycle in progress finishes)")
            case "resume":
                paused.withLock { $0 = false }
                wakeup.wake()
                logger.notice("operator action", metadata: ["action": "resume"])
                return .done("resumed")
            case "sync-now":
                if paused.withLock({ $0 }) { return .failure("sync is paused; run `syncctl resume` first") }
                wakeup.wake()
                logger.notice("operator action", metadata: ["action": "sync-now"])
                return .done("a sync cycle starts now (or right after the one in progress)")
            case "held":
                return ControlResponse(ok: true, held: try replica.heldChanges())
            case "held-approve", "held-reject":
                let decision: HeldDecision = request.command == "held-approve" ? .approve : .reject
                let rows = try Self.rows(request.arguments?["rows"])
                let count = try replica.decide(decision, rows: rows)
                logger.notice("operator action", metadata: ["action": "\(request.command)", "count": "\(count)"])
                return .done(
                    decision == .approve
                        ? "\(count) held change(s) applied to the replica"
                        : "\(count) held change(s) rejected; the replica keeps its versions")
            case "verify":
                let report = try replica.verify()
                logger.notice("operator action", metadata: ["action": "verify", "ok": "\(report.ok)"])
                return ControlResponse(ok: true, verify: report)
            case "key-rotate":
                guard let file = request.arguments?["file"], !file.isEmpty else {
                    return .failure("key-rotate needs the new key file (syncctl key rotate FILE)")
                }
                let newKEK = try KeySource.file(path: file).load()
                try replica.rotateKey(to: newKEK)
                logger.notice("operator action", metadata: ["action": "key-rotate"])
                return .done(
                    "the replica's data key is now wrapped by the key in \(file). Point [key] file at it "
                        + "(or re-encrypt the systemd credential from it) before the next restart, then destroy the old key."
                )
            case "key-backup":
                let replace = request.arguments?["replace"] == "true"
                guard let recovery = try replica.createRecoveryKey(replace: replace) else {
                    return .failure(
                        "a recovery key was already made and shown once; `syncctl key backup --replace` makes a new one "
                            + "(the old printed key then stops working)")
                }
                logger.notice("operator action", metadata: ["action": "key-backup", "replaced": "\(replace)"])
                return ControlResponse(ok: true, recoveryKey: recovery.text)
            case "outbox", "outbox-retry", "conflicts", "conflict-show", "conflict-resolve":
                return try handleOutbox(request)
            default:
                return .failure(
                    "unknown command \"\(request.command.prefix(40))\"; known: \((Self.commands + Self.staffCommands).joined(separator: ", "))"
                )
            }
        } catch {
            return .failure("\(request.command.prefix(40)) failed: \(error)")
        }
    }

    /// The outbox and the conflict review queue (`syncctl outbox`, `syncctl conflicts`).
    /// Refusals (no such entry, wrong state, an unusable merged record) are answered with
    /// the reason alone.
    func handleOutbox(_ request: ControlRequest) throws -> ControlResponse {
        let arguments = request.arguments ?? [:]
        do {
            switch request.command {
            case "outbox":
                let (open, plan) = try reconciler.plan()
                let entries = arguments["all"] == "true" ? try replica.outboxEntries() : open
                return ControlResponse(ok: true, outbox: entries.map { OutboxItem($0, waiting: plan.waiting[$0.seq]) })
            case "conflicts":
                let entries = try replica.outboxEntries(states: [.conflict])
                return ControlResponse(ok: true, outbox: entries.map { OutboxItem($0, waiting: nil) })
            case "conflict-show":
                let seq = try Self.seq(arguments["seq"])
                guard let entry = try replica.outboxEntry(seq: seq) else { throw OutboxError.noSuchEntry(seq) }
                guard entry.state == .conflict else {
                    throw OutboxError.wrongState(seq: seq, state: entry.state, expected: "conflict")
                }
                logger.notice("operator action", metadata: ["action": "conflict-show", "entry": "\(seq)"])
                return ControlResponse(ok: true, conflict: ConflictDetail(entry))
            case "outbox-retry":
                let seq = try Self.seq(arguments["seq"])
                try replica.retryParked(seq: seq, actor: Self.actor(arguments["actor"]))
                wakeup.wake()
                logger.notice("operator action", metadata: ["action": "outbox-retry", "entry": "\(seq)"])
                return .done("change #\(seq) is queued again; it is sent \(nextSend())")
            case "conflict-resolve":
                let seq = try Self.seq(arguments["seq"])
                let choice: ConflictChoice
                let outcome: String
                switch arguments["keep"] {
                case "local":
                    choice = .local
                    outcome = "this practice's version is queued to go over the EHR's; it is sent \(nextSend())"
                case "remote":
                    choice = .remote
                    outcome = "the EHR's version stays and the local change is closed"
                case "file":
                    guard let content = arguments["content"], !content.isEmpty else {
                        return .failure("conflict-resolve --file needs the merged record (the file is empty)")
                    }
                    choice = .content(Data(content.utf8))
                    outcome = "the merged record is queued for the EHR; it is sent \(nextSend())"
                default:
                    return .failure(
                        "conflict-resolve needs keep=local, keep=remote or keep=file with the merged record")
                }
                try replica.resolveConflict(seq: seq, choice: choice, actor: Self.actor(arguments["actor"]))
                if choice != .remote { wakeup.wake() }
                logger.notice(
                    "operator action",
                    metadata: ["action": "conflict-resolve", "entry": "\(seq)", "kept": "\(arguments["keep"] ?? "")"])
                return .done("conflict #\(seq) resolved: \(outcome)")
            default:
                return .failure("unknown command \"\(request.command.prefix(40))\"")
            }
        } catch let error as OutboxError {
            return .failure(error.description)
        }
    }

    /// When a change queued now reaches the EHR.
    func nextSend() -> String {
        paused.withLock { $0 }
            ? "once sync resumes (`syncctl resume`)" : "with the next sync cycle, starting now"
    }

    /// An outbox entry number, as given by `syncctl outbox` (a leading `#` is allowed).
    static func seq(_ text: String?) throws -> Int64 {
        let digits = text.map { $0.hasPrefix("#") ? String($0.dropFirst()) : $0 }
        guard let digits, let seq = Int64(digits), seq > 0 else {
            throw ControlClientError("expected an entry number like 12 (see `syncctl outbox`)")
        }
        return seq
    }

    /// Who asked, for the replica's audit trail: syncctl's user, or `syncctl` when it did
    /// not say. Control characters are dropped and the length bounded.
    static func actor(_ text: String?) -> String {
        let cleaned = String(
            String.UnicodeScalarView(
                (text ?? "").unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) })
        ).trimmingCharacters(in: .whitespaces)
        return cleaned.isEmpty ? "syncctl" : String(cleaned.prefix(120))
    }

    /// `"all"` or a comma-separated list of row numbers.
    static func rows(_ text: String?) throws -> [Int64]? {
        guard let text, text != "all" else { return nil }
        let parts = text.split(separator: ",").map { Int64($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
            throw ControlClientError("expected `all` or row numbers like 3,4 (see `syncctl held`)")
        }
        return parts.compactMap { $0 }
    }
}

struct ControlClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
