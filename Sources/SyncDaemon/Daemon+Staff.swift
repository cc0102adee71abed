import Foundation
import Logging
import SyncModel

/// Staff accounts and the audit trail (`syncctl user`, `syncctl audit`). Passwords arrive
/// in clear over the group-restricted control socket, are hashed here and never logged,
/// echoed or kept; every account change is appended to the audit trail.
extension Daemon {
    static let staffCommands = [
        "user-add", "user-passwd", "user-disable", "user-enable", "user-list", "audit-verify", "audit-list",
    ]

    /// Most records `audit-list` returns when no limit is given.
    static let defaultAuditLimit = 100
    /// Longest password accepted (PBKDF2 takes any length; this bounds the work).
    static let maximumPasswordLength = 1024

    /// Answers the staff and audit commands; nil for any other command.
    func handleStaff(_ request: ControlRequest) async -> ControlResponse? {
        guard Self.staffCommands.contains(request.command) else { return nil }
        let arguments = request.arguments ?? [:]
        do {
            switch request.command {
            case "user-add":
                return try addUser(arguments)
            case "user-passwd":
                return try changePassword(arguments)
            case "user-disable", "user-enable":
                return try setDisabled(request.command == "user-disable", arguments)
            case "user-list":
                return ControlResponse(ok: true, users: try replica.accounts().map(StaffAccountSummary.init))
            case "audit-verify":
                let result = try replica.verifyAudit()
                switch result {
                case .success(let count):
                    logger.notice("operator action", metadata: ["action": "audit-verify", "records": "\(count)"])
                case .failure(let broken):
                    logger.error(
                        "audit trail broken",
                        metadata: ["action": "audit-verify", "line": "\(broken.seq)", "reason": "\(broken.reason)"])
                }
                return .auditVerification(result)
            case "audit-list":
                return try listAudit(arguments)
            default:
                return nil
            }
        } catch let error as StaffRefusal {
            return .failure(error.description)
        } catch {
            return .failure("\(request.command) failed: \(error)")
        }
    }

    func addUser(_ arguments: [String: String]) throws -> ControlResponse {
        let name = try Self.accountName(arguments["name"])
        let language = arguments["language"].flatMap { $0.isEmpty ? nil : $0 } ?? "fr"
        guard StaffAccount.languages.contains(language) else {
            throw StaffRefusal("language must be fr or en, not \"\(printableArgument(language))\"")
        }
        let displayName = Self.displayName(arguments["displayName"]) ?? name
        guard try replica.account(named: name) == nil else {
            throw StaffRefusal(
                "user \(name) already exists; change the password with `syncctl user passwd \(name)`")
        }
        let hash = try Self.hash(arguments["password"])
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        let account = StaffAccount(
            name: name, displayName: displayName, language: language, passwordHash: hash, createdAt: now,
            passwordChangedAt: now)
        try replica.saveAccount(account, actor: Self.actor(arguments["actor"]), action: "user-add")
        logger.notice("operator action", metadata: ["action": "user-add", "account": "\(name)"])
        return .done("user \(name) added (\(displayName), language \(language))")
    }

    func changePassword(_ arguments: [String: String]) throws -> ControlResponse {
        var account = try existingAccount(arguments["name"])
        account.passwordHash = try Self.hash(arguments["password"])
        account.passwordChangedAt = FHIRInstant.format(Date().timeIntervalSince1970)
        try replica.saveAccount(account, actor: Self.actor(arguments["actor"]), action: "user-passwd")
        sessions.closeAll(account: account.name)
        logger.notice("operator action", metadata: ["action": "user-passwd", "account": "\(account.name)"])
        return .done("password of \(account.name) changed; their open sessions are closed")
    }

    func setDisabled(_ disabled: Bool, _ arguments: [String: String]) throws -> ControlResponse {
        var account = try existingAccount(arguments["name"])
        let action = disabled ? "user-disable" : "user-enable"
        // Signed out even when already disabled: no session of a disabled account survives.
        if disabled { sessions.closeAll(account: account.name) }
        guard account.disabled != disabled else {
            return .done("user \(account.name) is already \(disabled ? "disabled" : "enabled")")
        }
        account.disabled = disabled
        try replica.saveAccount(account, actor: Self.actor(arguments["actor"]), action: action)
        logger.notice("operator action", metadata: ["action": "\(action)", "account": "\(account.name)"])
        return .done(
            disabled
                ? "user \(account.name) disabled; their open sessions are closed"
                : "user \(account.name) enabled")
    }

    func listAudit(_ arguments: [String: String]) throws -> ControlResponse {
        var since: String?
        if let text = arguments["since"], !text.isEmpty {
            guard let instant = AuditRecord.sinceInstant(text) else {
                throw StaffRefusal(
                    "since must be a date like 2026-11-01 or an instant like 2026-11-01T08:00:00Z, "
                        + "not \"\(printableArgument(text))\"")
            }
            since = instant
        }
        var limit = Self.defaultAuditLimit
        if let text = arguments["limit"], !text.isEmpty {
            guard let n = Int(text), n >= 0 else { throw StaffRefusal("limit must be a number, 0 for all") }
            limit = n
        }
        let patient = arguments["patient"].flatMap { $0.isEmpty ? nil : $0 }
        let user = arguments["user"].flatMap { $0.isEmpty ? nil : $0 }
        let records = try replica.auditRecords(since: since, newest: limit == 0 ? nil : limit) {
            $0.matches(patient: patient, user: user)
        }
        logger.notice("operator action", metadata: ["action": "audit-list", "records": "\(records.count)"])
        return ControlResponse(ok: true, audit: records)
    }

    func existingAccount(_ name: String?) throws -> StaffAccount {
        let name = try Self.accountName(name)
        guard let account = try replica.account(named: name) else {
            throw StaffRefusal("no user \(name) (see `syncctl user list`)")
        }
        return account
    }

    /// A valid login name, or a refusal saying what one looks like.
    static func accountName(_ text: String?) throws -> String {
        guard let name = text, StaffAccount.isValidName(name) else {
            throw StaffRefusal(
                "invalid user name \"\(printableArgument(text ?? ""))\": 2 to 64 characters, lowercase letters, "
                    + "digits, '.', '-' and '_'")
        }
        return name
    }

    /// The display name without control characters, bounded; nil when none was given.
    static func displayName(_ text: String?) -> String? {
        let cleaned = printableArgument(text ?? "", limit: 120).trimmingCharacters(in: .whitespaces)
        return cleaned.isEmpty ? nil : cleaned
    }

    /// The password's hash; a refusal naming the rule it breaks (never the password).
    static func hash(_ password: String?) throws -> String {
        guard let password, !password.isEmpty else { throw StaffRefusal("no password given") }
        guard password.count <= maximumPasswordLength else {
            throw StaffRefusal("the password must be at most \(maximumPasswordLength) characters")
        }
        do {
            return try PasswordHash.make(password)
        } catch {
            throw StaffRefusal(error.description)
        }
    }
}

/// A staff or audit command refused, with the reason shown to the operator as is.
struct StaffRefusal: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An argument quoted back in an error: control characters dropped, length bounded.
func printableArgument(_ text: String, limit: Int = 64) -> String {
    String(
        String.UnicodeScalarView(
            text.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }.prefix(limit)))
}
