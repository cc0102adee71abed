import Foundation
import Logging
import SyncModel

/// The control socket's commands. Every operator action is logged (without PHI) as an
/// audit trail; errors are answers, never crashes.
extension Daemon {
    static let commands = [
        "status", "pause", "resume", "sync-now", "held", "held-approve", "held-reject", "verify", "key-rotate",
        "key-backup",
    ]

    func handle(_ request: ControlRequest) async -> ControlResponse {
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
            default:
                return .failure(
                    "unknown command \"\(request.command.prefix(40))\"; known: \(Self.commands.joined(separator: ", "))"
                )
            }
        } catch {
            return .failure("\(request.command.prefix(40)) failed: \(error)")
        }
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
