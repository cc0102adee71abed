import Foundation

/// What `syncctl` asks the daemon, one case per command. A new command is a case here, a
/// handler case in the daemon (the switch is exhaustive, so the compiler finds it) and a
/// `syncctl` command file.
public enum ControlCommand: Sendable, Equatable {
    case status
    case pause
    case resume
    case syncNow
    /// Server changes held for an operator.
    case held
    /// Apply (approve) or reject held changes: some rows, or all when nil.
    case decideHeld(HeldDecision, rows: [Int64]?)
    case verify
    /// Rewrap the data key with the key in `file` (an absolute path on the daemon's machine);
    /// with `reencrypt`, a new data key and every row re-sealed with it (a re-key).
    case keyRotate(file: String, reencrypt: Bool = false)
    case keyBackup(replace: Bool)
    /// Write the backup of what cannot be fetched again (`[backup] dir`) now.
    case backupNow
    /// Replace the replica with one made from the backup in `dir` (an absolute path on the
    /// daemon's machine), at a restart the daemon asks systemd for.
    case backupRestore(dir: String)
    /// Make a new replica from the EHR, carrying over what cannot be fetched again from the
    /// current one; the current file is kept aside. At a restart the daemon asks systemd for.
    case replicaRebuild
    case outbox(all: Bool)
    case outboxRetry(seq: Int64)
    case conflicts
    case conflictShow(seq: Int64)
    case conflictResolve(seq: Int64, keep: ConflictKeep)
    /// A new viewer account; `role` nil is a clinician.
    case userAdd(name: String, displayName: String?, language: String?, password: String?, role: ViewerRole? = nil)
    /// Changes what a viewer account may see (signs it out everywhere).
    case userSetRole(name: String, role: ViewerRole)
    case userPasswd(name: String, password: String?)
    case userSetDisabled(name: String, disabled: Bool)
    case userList
    /// Clears an account's sign-in slow-down (``LoginThrottle``).
    case userUnlock(name: String)
    case auditVerify
    case auditList(AuditQuery)

    /// Which version a reviewer keeps (`syncctl conflicts resolve`).
    public enum ConflictKeep: Sendable, Equatable {
        case local
        case remote
        /// A merged record, the JSON read from the reviewer's file.
        case file(String)
    }

    /// Filters of `syncctl audit list`.
    public struct AuditQuery: Sendable, Equatable {
        public var patient: String?
        public var user: String?
        /// An instant (UTC, `…Z`).
        public var since: String?
        /// The newest N matching records; nil for all.
        public var limit: Int?

        public init(patient: String? = nil, user: String? = nil, since: String? = nil, limit: Int? = 100) {
            self.patient = patient
            self.user = user
            self.since = since
            self.limit = limit
        }
    }

    /// The command's name on the wire.
    public var name: String {
        switch self {
        case .status: "status"
        case .pause: "pause"
        case .resume: "resume"
        case .syncNow: "sync-now"
        case .held: "held"
        case .decideHeld(let decision, _): decision == .approve ? "held-approve" : "held-reject"
        case .verify: "verify"
        case .keyRotate: "key-rotate"
        case .keyBackup: "key-backup"
        case .backupNow: "backup-now"
        case .backupRestore: "backup-restore"
        case .replicaRebuild: "replica-rebuild"
        case .outbox: "outbox"
        case .outboxRetry: "outbox-retry"
        case .conflicts: "conflicts"
        case .conflictShow: "conflict-show"
        case .conflictResolve: "conflict-resolve"
        case .userAdd: "user-add"
        case .userSetRole: "user-role"
        case .userPasswd: "user-passwd"
        case .userSetDisabled(_, let disabled): disabled ? "user-disable" : "user-enable"
        case .userList: "user-list"
        case .userUnlock: "user-unlock"
        case .auditVerify: "audit-verify"
        case .auditList: "audit-list"
        }
    }

    /// Every command name the daemon knows, for error messages.
    public static let names = [
        "status", "pause", "resume", "sync-now", "held", "held-approve", "held-reject", "verify", "key-rotate",
        "key-backup", "backup-now", "backup-restore", "replica-rebuild", "outbox", "outbox-retry", "conflicts",
        "conflict-show", "conflict-resolve", "user-add",
        "user-role", "user-passwd", "user-disable", "user-enable", "user-list", "user-unlock", "audit-verify",
        "audit-list",
    ]

    // MARK: Wire form

    /// The arguments as sent (`{"seq": "12", "keep": "local"}`): strings, as since version 1.
    public var arguments: [String: String] {
        switch self {
        case .status, .pause, .resume, .syncNow, .held, .verify, .conflicts, .userList, .auditVerify: [:]
        case .decideHeld(_, let rows): ["rows": rows.map { $0.map(String.init).joined(separator: ",") } ?? "all"]
        case .keyRotate(let file, let reencrypt): reencrypt ? ["file": file, "reencrypt": "true"] : ["file": file]
        case .keyBackup(let replace): replace ? ["replace": "true"] : [:]
        case .backupNow, .replicaRebuild: [:]
        case .backupRestore(let dir): ["dir": dir]
        case .outbox(let all): all ? ["all": "true"] : [:]
        case .outboxRetry(let seq), .conflictShow(let seq): ["seq": String(seq)]
        case .conflictResolve(let seq, let keep):
            switch keep {
            case .local: ["seq": String(seq), "keep": "local"]
            case .remote: ["seq": String(seq), "keep": "remote"]
            case .file(let content): ["seq": String(seq), "keep": "file", "content": content]
            }
        case .userAdd(let name, let displayName, let language, let password, let role):
            ["name": name].merging(
                [
                    ("displayName", displayName), ("language", language), ("password", password),
                    ("role", role?.rawValue),
                ]
                .compactMap {
                    key, value in
                    value.map { (key, $0) }
                }, uniquingKeysWith: { a, _ in a })
        case .userPasswd(let name, let password): password.map { ["name": name, "password": $0] } ?? ["name": name]
        case .userSetDisabled(let name, _), .userUnlock(let name): ["name": name]
        case .userSetRole(let name, let role): ["name": name, "role": role.rawValue]
        case .auditList(let query):
            [
                ("patient", query.patient), ("user", query.user), ("since", query.since),
                ("limit", String(query.limit ?? 0)),
            ]
            .reduce(into: [:]) { result, pair in if let value = pair.1 { result[pair.0] = value } }
        }
    }

    /// Reads a command from its wire form; the error says what was expected, in words an
    /// operator can act on.
    public init(name: String, arguments: [String: String]) throws(ControlRequestError) {
        func seq() throws(ControlRequestError) -> Int64 {
            let text = arguments["seq"].map { $0.hasPrefix("#") ? String($0.dropFirst()) : $0 }
            guard let text, let seq = Int64(text), seq > 0 else {
                throw ControlRequestError("expected an entry number like 12 (see `syncctl outbox`)")
            }
            return seq
        }
        func required(_ key: String) throws(ControlRequestError) -> String {
            guard let value = arguments[key] else { throw ControlRequestError("\(name) needs \(key)") }
            return value
        }
        func flag(_ key: String) -> Bool { arguments[key] == "true" }
        func nonEmpty(_ key: String) -> String? { arguments[key].flatMap { $0.isEmpty ? nil : $0 } }
        switch name {
        case "status": self = .status
        case "pause": self = .pause
        case "resume": self = .resume
        case "sync-now": self = .syncNow
        case "held": self = .held
        case "held-approve", "held-reject":
            self = .decideHeld(name == "held-approve" ? .approve : .reject, rows: try Self.rows(arguments["rows"]))
        case "verify": self = .verify
        case "key-rotate":
            guard let file = nonEmpty("file") else {
                throw ControlRequestError("key-rotate needs the new key file (syncctl key rotate FILE)")
            }
            self = .keyRotate(file: file, reencrypt: flag("reencrypt"))
        case "key-backup": self = .keyBackup(replace: flag("replace"))
        case "backup-now": self = .backupNow
        case "backup-restore":
            guard let dir = nonEmpty("dir"), dir.hasPrefix("/") else {
                throw ControlRequestError("backup-restore needs the backup's folder as an absolute path")
            }
            self = .backupRestore(dir: dir)
        case "replica-rebuild": self = .replicaRebuild
        case "outbox": self = .outbox(all: flag("all"))
        case "outbox-retry": self = .outboxRetry(seq: try seq())
        case "conflicts": self = .conflicts
        case "conflict-show": self = .conflictShow(seq: try seq())
        case "conflict-resolve":
            let seq = try seq()
            switch arguments["keep"] {
            case "local": self = .conflictResolve(seq: seq, keep: .local)
            case "remote": self = .conflictResolve(seq: seq, keep: .remote)
            case "file":
                guard let content = nonEmpty("content") else {
                    throw ControlRequestError("conflict-resolve --file needs the merged record (the file is empty)")
                }
                self = .conflictResolve(seq: seq, keep: .file(content))
            default:
                throw ControlRequestError(
                    "conflict-resolve needs keep=local, keep=remote or keep=file with the merged record")
            }
        case "user-add":
            self = .userAdd(
                name: try required("name"), displayName: arguments["displayName"], language: nonEmpty("language"),
                password: arguments["password"], role: try nonEmpty("role").map(Self.viewerRole))
        case "user-role":
            self = .userSetRole(name: try required("name"), role: try Self.viewerRole(try required("role")))
        case "user-passwd": self = .userPasswd(name: try required("name"), password: arguments["password"])
        case "user-disable", "user-enable":
            self = .userSetDisabled(name: try required("name"), disabled: name == "user-disable")
        case "user-list": self = .userList
        case "user-unlock": self = .userUnlock(name: try required("name"))
        case "audit-verify": self = .auditVerify
        case "audit-list":
            var query = AuditQuery(patient: nonEmpty("patient"), user: nonEmpty("user"))
            if let text = nonEmpty("since") {
                guard let instant = AuditRecord.sinceInstant(text) else {
                    throw ControlRequestError(
                        "since must be a date like 2026-11-01 or an instant like 2026-11-01T08:00:00Z, "
                            + "not \"\(ControlRequestError.printable(text))\"")
                }
                query.since = instant
            }
            if let text = nonEmpty("limit") {
                guard let n = Int(text), n >= 0 else { throw ControlRequestError("limit must be a number, 0 for all") }
                query.limit = n == 0 ? nil : n
            }
            self = .auditList(query)
        default:
            throw ControlRequestError(
                "unknown command \"\(ControlRequestError.printable(name, limit: 40))\"; known: "
                    + Self.names.joined(separator: ", "))
        }
    }

    /// A viewer role by name, or the error listing the roles.
    static func viewerRole(_ text: String) throws(ControlRequestError) -> ViewerRole {
        guard let role = ViewerRole(name: text) else {
            throw ControlRequestError(
                "unknown role \"\(ControlRequestError.printable(text, limit: 40))\"; expected "
                    + ViewerRole.allCases.map(\.rawValue).joined(separator: " or "))
        }
        return role
    }

    /// `"all"` (or nothing) or a comma-separated list of row numbers.
    public static func rows(_ text: String?) throws(ControlRequestError) -> [Int64]? {
        guard let text, text != "all" else { return nil }
        let parts = text.split(separator: ",").map { Int64($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else {
            throw ControlRequestError("expected `all` or row numbers like 3,4 (see `syncctl held`)")
        }
        return parts.compactMap { $0 }
    }
}

/// A control request the daemon cannot act on, and why (shown to the operator as is).
public struct ControlRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }

    /// An argument quoted back in an error: control characters dropped, length bounded.
    public static func printable(_ text: String, limit: Int = 64) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }.prefix(limit)))
    }
}
