import Foundation

extension OutboxItem {
    /// The screen of `syncctl outbox`: one line per local change, with what happens next.
    /// `all` says whether done and discarded entries were asked for (it only changes the
    /// wording of an empty list).
    public static func listText(_ items: [OutboxItem], all: Bool = false) -> String {
        guard !items.isEmpty else {
            return all
                ? "The outbox is empty: no local changes were made.\n" : "No local changes waiting for the EHR.\n"
        }
        var rows = [["ID", "STATE", "CHANGE", "MADE LOCALLY", "BY", "REASON"]]
        for item in items {
            rows.append([
                String(item.seq), item.state, "\(item.operation) \(item.resourceType)",
                StatusReport.human(item.localTime), item.author, item.reasonText,
            ])
        }
        var out = table(rows)
        var hints: [String] = []
        if items.contains(where: { $0.state == "parked" }) {
            hints.append(
                "Rejected (parked) changes wait for a person: fix the cause the EHR gives, "
                    + "then send them again with `syncctl outbox retry ID`.")
        }
        if items.contains(where: { $0.state == "conflict" }) {
            hints.append("Conflicts wait for review: `syncctl conflicts show ID`.")
        }
        if !hints.isEmpty { out += "\n" + hints.joined(separator: "\n") + "\n" }
        return out
    }

    /// The screen of `syncctl conflicts`: the review queue.
    public static func conflictsText(_ items: [OutboxItem]) -> String {
        guard !items.isEmpty else { return "No conflicts to review.\n" }
        var rows = [["ID", "RECORD", "LOCAL CHANGE", "MADE LOCALLY", "BY", "FOUND"]]
        for item in items {
            rows.append([
                String(item.seq), item.resourceType, item.operation, StatusReport.human(item.localTime), item.author,
                StatusReport.human(item.updatedAt),
            ])
        }
        return table(rows)
            + "\nThe record was changed both here and on the EHR. See where with `syncctl conflicts show ID`.\n"
    }

    /// The REASON column: the entry's own reason, or what happens next in its state.
    var reasonText: String {
        if let reason, !reason.isEmpty { return reason }
        switch state {
        case "pending":
            switch attempts {
            case 0: return "to send"
            case 1: return "to send again (tried once)"
            default: return "to send again (tried \(attempts) times)"
            }
        case "parked": return "rejected by the EHR"
        case "conflict": return "changed here and on the EHR: `syncctl conflicts show \(seq)`"
        case "done": return "on the EHR"
        case "discarded": return "not sent"
        default: return ""
        }
    }

    /// Columns padded to their widest cell, two spaces apart; the last one is not padded.
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        let widths = (0..<columns).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in
                c == columns - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingTrailingSpaces() + "\n"
        }.joined()
    }
}

extension ConflictDetail {
    /// The screen of `syncctl conflicts show ID`: what was changed by whom, each place where
    /// the versions disagree (base / local / EHR), the three full versions, and the commands
    /// that settle it.
    public func text() -> String {
        let record = "\(resourceType)/\(id)"
        var out = "Conflict #\(seq): \(record)\n\n"
        let verb =
            switch operation {
            case "create": "created"
            case "delete": "deleted"
            default: "changed"
            }
        var facts: [(String, String)] = [
            ("Here", "\(verb) by \(author) at \(StatusReport.human(localTime)) (local change, not yet on the EHR)")
        ]
        if remoteDeleted {
            facts.append(("On the EHR", "DELETED meanwhile"))
        } else {
            let version = remoteVersion.map { " (now version \($0))" } ?? ""
            facts.append(("On the EHR", "changed meanwhile\(version)"))
        }
        let width = facts.map(\.0.count).max() ?? 0
        for (label, value) in facts {
            out += label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value + "\n"
        }

        out += "\n"
        switch places.count {
        case 0: out += "The versions disagree; compare them below.\n"
        case 1: out += "1 place disagrees (base: before both changes, local: this practice, EHR: the EHR now):\n"
        default:
            out +=
                "\(places.count) places disagree (base: before both changes, local: this practice, EHR: the EHR now):\n"
        }
        for place in places {
            let whole = place.path.isEmpty
            out += "\n  \(whole ? "the whole record" : place.path)\n"
            out += "    base   \(Self.placeValue(place.base, whole: whole, absent: whole ? "(none)" : "(absent)"))\n"
            out +=
                "    local  \(Self.placeValue(place.local, whole: whole, absent: whole ? "(deleted)" : "(absent)"))\n"
            out +=
                "    EHR    \(Self.placeValue(place.remote, whole: whole, absent: whole ? "(deleted)" : "(absent)"))\n"
        }

        out += "\nBase version (before both changes):\n" + Self.version(base, absent: "(none)")
        out +=
            "\nLocal version (this practice):\n"
            + Self.version(local, absent: operation == "delete" ? "(deleted here)" : "(none)")
        let remoteTitle = remoteVersion.map { "EHR version \($0)" } ?? "EHR version"
        out +=
            "\n\(remoteTitle) (the EHR now):\n"
            + Self.version(remote, absent: remoteDeleted ? "(deleted on the EHR)" : "(none)")

        out += "\nTo settle it (`--json` gives all of this as JSON):\n"
        out += Self.resolveHelp(seq)
        return out
    }

    /// The three ways to resolve a conflict, as commands with what they do.
    static func resolveHelp(_ seq: Int64) -> String {
        let command = "syncctl conflicts resolve \(seq)"
        let rows = [
            ("\(command) --keep local", "send this practice's version over the EHR's"),
            ("\(command) --keep remote", "keep the EHR's version and close the local change"),
            ("\(command) --file FILE", "send a merged record written to FILE (JSON)"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 + "\n" }
            .joined()
    }

    /// A value at one place: compact JSON, or for the whole record a pointer to the full
    /// versions below.
    static func placeValue(_ text: String?, whole: Bool, absent: String) -> String {
        guard let text else { return absent }
        return whole ? "(the version below)" : text
    }

    /// A full version, pretty-printed and indented.
    static func version(_ text: String?, absent: String) -> String {
        guard let text else { return "  \(absent)\n" }
        let pretty: String
        if let value = try? JSONValue(data: Data(text.utf8)) {
            pretty = JSONPretty.text(value)
        } else {
            pretty = text
        }
        return pretty.split(separator: "\n", omittingEmptySubsequences: false).map { "  \($0)\n" }.joined()
    }
}

/// Indented JSON for people: two spaces a level, object keys in the value's (sorted) order,
/// scalars written exactly as ``JSONValue/data()`` writes them (numbers keep their text).
enum JSONPretty {
    static func text(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: "", into: &out)
        return out
    }

    private static func write(_ value: JSONValue, indent: String, into out: inout String) {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            out += "[\n"
            for (i, element) in elements.enumerated() {
                out += inner
                write(element, indent: inner, into: &out)
                out += i == elements.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case .object(let object) where !object.members.isEmpty:
            out += "{\n"
            for (i, member) in object.members.enumerated() {
                out += inner + String(decoding: JSONValue.string(member.key).data(), as: UTF8.self) + ": "
                write(member.value, indent: inner, into: &out)
                out += i == object.members.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        default:
            out += String(decoding: value.data(), as: UTF8.self)
        }
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
