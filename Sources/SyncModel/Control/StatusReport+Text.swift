import Foundation

extension StatusReport {
    /// The human screen of `syncctl status`: what a receptionist needs, in plain words.
    /// `now` (seconds since 1970) makes ages like "3 min ago" testable.
    public func text(now: Double) -> String {
        var lines: [(String, String)] = []
        let stateText: String
        switch state {
        case "online": stateText = "online — the EHR answers and the copy is current"
        case "degraded": stateText = "degraded — the EHR answers badly; retrying"
        case "outage":
            stateText = "OUTAGE — the EHR is unreachable\(failingSince.map { " since \(Self.human($0))" } ?? "")"
        case "recovering": stateText = "recovering — the EHR answers again; checking it before syncing"
        case "initial-sync": stateText = "first copy in progress"
        case "starting": stateText = "starting"
        case "paused": stateText = "PAUSED by an operator — run `syncctl resume` to sync again"
        default: stateText = state
        }
        lines.append(("EHR", stateText))
        if let asOf = dataAsOf {
            lines.append(("Data as of", "\(Self.human(asOf)) (\(Self.age(asOf, now: now)))"))
        } else {
            lines.append(("Data as of", "no complete copy yet"))
        }
        lines.append(("Records", "\(resources) mirrored"))
        if let initial = initialSync, !initialSyncComplete {
            let total = initial.total.map { " of \($0)" } ?? ""
            lines.append(("First copy", "\(initial.done)\(total) records (\(initial.mode ?? "starting"))"))
        }
        if let types {
            var text = "\(types.mirrored.count) mirrored"
            if !types.perPatient.isEmpty { text += " (\(types.perPatient.count) patient by patient)" }
            if !types.undeclared.isEmpty {
                text +=
                    "; \(types.undeclared.count) found although the EHR does not declare them ("
                    + Self.some(types.undeclared) + ")"
            }
            if !types.excluded.isEmpty {
                text += "; skipped by configuration: " + Self.some(types.excluded)
            }
            lines.append(("Types", text))
            if types.partial {
                lines.append(
                    (
                        "Missing",
                        "PARTIAL MIRROR — the EHR refuses to list: "
                            + types.refused.map { "\($0.type) (\($0.reason))" }.joined(separator: "; ")
                    ))
            }
        }
        if let last = lastSyncAt { lines.append(("Last sync", "\(Self.human(last)) (\(Self.age(last, now: now)))")) }
        if heldChanges > 0 {
            var parts: [String] = []
            if heldRegressions > 0 { parts.append("\(heldRegressions) older versions (server restored?)") }
            if heldMassDeletions > 0 { parts.append("\(heldMassDeletions) deletions (mass delete)") }
            lines.append(("Held changes", "\(heldChanges) need an operator: " + parts.joined(separator: ", ")))
        } else {
            lines.append(("Held changes", "none"))
        }
        if rejectedResources > 0 {
            lines.append(("Skipped", "\(rejectedResources) unusable records from the EHR (see logs)"))
        }
        if outboxPending + outboxWaiting + outboxParked > 0 {
            var parts: [String] = []
            if outboxPending > 0 { parts.append("\(outboxPending) to send") }
            if outboxWaiting > 0 { parts.append("\(outboxWaiting) waiting") }
            if outboxParked > 0 { parts.append("\(outboxParked) rejected") }
            var text = parts.joined(separator: ", ") + " (syncctl outbox)"
            if outboxPending > 0, let rate = requestRate, state == "online" {
                // What pace the EHR allows now (adaptive: it grows while the EHR keeps up).
                text += "; sending at \(String(format: "%.1f", rate.requestsPerSecond)) requests/s"
                if rate.slowStart { text += " (starting slow after the outage)" }
            }
            lines.append(("Local changes", text))
        }
        if conflicts > 0 { lines.append(("Conflicts", "\(conflicts) to review (syncctl conflicts)")) }
        if let error = lastError, state != "online" { lines.append(("Last error", error)) }
        if let trail = auditTrail, !trail.intact {
            lines.append(("Audit trail", "BROKEN: \(trail.problem ?? "see syncctl audit verify")"))
        }
        if let storage, storage.full {
            let free = storage.freeBytes.map { " (\($0 / 1_048_576) MB free)" } ?? ""
            let since = storage.fullSince.map { " since \(Self.human($0))" } ?? ""
            lines.append(
                (
                    "Disk",
                    "FULL\(since)\(free): the copy is stopped and local changes are refused until space is freed; "
                        + "everything resumes by itself"
                ))
        }
        if let backup {
            let when = backup.lastAt.map { Self.human($0) } ?? "not yet"
            var text = "\(when) to \(backup.dir) (\(backup.outboxEntries) local change(s))"
            if let error = backup.lastError { text = "FAILED (\(error)); last good: " + text }
            if backup.stale { text += "; OLD: check the backup disk" }
            lines.append(("Backup", text))
        }
        if let integrity, !integrity.intact {
            lines.append(("Integrity", "BROKEN: " + integrity.problems.joined(separator: "; ") + " (syncctl verify)"))
        }
        if let reencryption {
            lines.append(
                (
                    "Re-encryption",
                    "\(reencryption.percent)% (\(reencryption.done) of \(reencryption.total) rows, pass \(reencryption.pass)); "
                        + "records are served meanwhile"
                ))
        }
        lines.append(("Key", keySource))
        if let fingerprint = localAPICertificate { lines.append(("HTTPS", "certificate SHA-256 \(fingerprint)")) }
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
            .joined(separator: "\n") + "\n" + accessAlertsText
    }

    /// The first few names, and how many more (`--json` has them all).
    static func some(_ names: [String], limit: Int = 5) -> String {
        names.count <= limit
            ? names.joined(separator: ", ")
            : names.prefix(limit).joined(separator: ", ") + " and \(names.count - limit) more (status --json)"
    }

    /// `2026-11-29T09:20:00.000Z` → `2026-11-29 09:20 UTC`.
    static func human(_ instant: String) -> String {
        guard let t = FHIRInstant.parse(instant) else { return instant }
        let s = FHIRInstant.format(t)
        return String(s.prefix(10)) + " " + String(s.dropFirst(11).prefix(5)) + " UTC"
    }

    static func age(_ instant: String, now: Double) -> String {
        guard let t = FHIRInstant.parse(instant) else { return "unknown age" }
        let seconds = max(0, now - t)
        switch seconds {
        case ..<60: return "just now"
        case ..<3600: return "\(Int(seconds / 60)) min ago"
        case ..<86_400: return "\(Int(seconds / 3600)) h ago"
        default: return "\(Int(seconds / 86_400)) days ago"
        }
    }
}
