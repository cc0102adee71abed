import Foundation

extension StaffAccountSummary {
    /// The screen of `syncctl user list`: one line per account (never a password or hash).
    public static func listText(_ users: [StaffAccountSummary]) -> String {
        guard !users.isEmpty else { return "No staff accounts yet. Add one with `syncctl user add NAME`.\n" }
        var rows = [["NAME", "DISPLAY NAME", "ROLE", "LANGUAGE", "STATUS", "CREATED", "PASSWORD CHANGED"]]
        for user in users {
            rows.append([
                user.name, user.displayName, user.role.rawValue, user.language, user.disabled ? "disabled" : "active",
                StatusReport.human(user.createdAt), StatusReport.human(user.passwordChangedAt),
            ])
        }
        return staffTable(rows)
    }
}

extension AuditRecord {
    /// The screen of `syncctl audit list`: one line per record, newest last. `limit` is the
    /// number of records asked for (nil: all); when the list is that long, a line says how
    /// to see older ones.
    public static func listText(_ records: [AuditRecord], limit: Int? = nil) -> String {
        guard !records.isEmpty else { return "No matching audit records.\n" }
        var rows = [["TIME (UTC)", "USER", "ACTION", "PATIENT", "TARGET"]]
        for record in records {
            rows.append([
                humanSeconds(record.at), record.actor, record.action, record.patient ?? "-", record.target ?? "-",
            ])
        }
        var out = staffTable(rows)
        if let limit, limit > 0, records.count >= limit {
            out += "\nShowing the last \(limit) matching records; `--limit N` shows more (`--limit 0`: all).\n"
        }
        return out
    }

    /// The canonical instant (`2026-11-01T00:00:00.000Z`, as the trail stores it) for a
    /// `--since` value: a date (`2026-11-01`, midnight UTC) or an ISO 8601 instant; nil
    /// when it is neither.
    public static func sinceInstant(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let instant = trimmed.utf8.count == 10 ? trimmed + "T00:00:00Z" : trimmed
        return FHIRInstant.parse(instant).map { FHIRInstant.format($0) }
    }

    /// Whether this record concerns `patient` (its id) and was made by `user`: an account
    /// name, or syncctl's `name (uid N)`. Nil matches anything.
    public func matches(patient: String?, user: String?) -> Bool {
        if let patient, self.patient != patient { return false }
        if let user, actor != user, !actor.hasPrefix(user + " (") { return false }
        return true
    }

    /// `2026-11-29T09:20:15.123Z` → `2026-11-29 09:20:15`.
    static func humanSeconds(_ instant: String) -> String {
        guard let t = FHIRInstant.parse(instant) else { return instant }
        let s = FHIRInstant.format(t)
        return String(s.prefix(10)) + " " + String(s.dropFirst(11).prefix(8))
    }
}

extension AuditBreak {
    /// The screen of `syncctl audit verify`.
    public static func verifyText(_ result: Result<Int, AuditBreak>) -> String {
        switch result {
        case .success(let count):
            return "audit trail intact: \(count) record\(count == 1 ? "" : "s")\n"
        case .failure(let broken):
            return "audit trail BROKEN at record #\(broken.seq): \(broken.reason)\n"
                + "The trail was changed outside ehr-sync (a line edited, removed or moved) from this record on. "
                + "Keep a copy of replica.sqlite and its backups for the investigation.\n"
        }
    }

    /// The exit code of `syncctl audit verify`: 0 intact, 2 broken.
    public static func exitCode(_ result: Result<Int, AuditBreak>) -> Int32 {
        switch result {
        case .success: 0
        case .failure: 2
        }
    }
}

extension AccessAlert {
    /// One line of `syncctl status`.
    public var text: String {
        let window = windowSeconds % 60 == 0 ? "\(windowSeconds / 60) min" : "\(windowSeconds) s"
        let account = printable(account)
        return "Unusual reading: account \(account) opened \(patients) patients in \(window) at "
            + "\(StatusReport.human(at)) (syncctl audit list --user \(account))"
    }
}

extension StatusReport {
    /// The unusual-reading alerts under the status screen, after a blank line; empty when
    /// there are none.
    var accessAlertsText: String {
        accessAlerts.isEmpty ? "" : "\n" + accessAlerts.map { $0.text + "\n" }.joined()
    }
}

/// Columns padded to their widest cell, two spaces apart; the last one is not padded.
/// Control characters in cells (from names and records) are shown as spaces.
func staffTable(_ rows: [[String]]) -> String {
    let clean = rows.map { $0.map(printable) }
    guard let columns = clean.first?.count else { return "" }
    let widths = (0..<columns).map { c in clean.map { $0[c].count }.max() ?? 0 }
    return clean.map { row in
        var line = row.enumerated().map { c, cell in
            c == columns - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
        while line.last == " " { line.removeLast() }
        return line + "\n"
    }.joined()
}

/// `text` with control characters (escape sequences, newlines) shown as spaces.
func printable(_ text: String) -> String {
    String(
        String.UnicodeScalarView(text.unicodeScalars.map { CharacterSet.controlCharacters.contains($0) ? " " : $0 }))
}
