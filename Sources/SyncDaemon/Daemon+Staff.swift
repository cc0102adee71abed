import Foundation
import Logging
import SyncEngine
import SyncModel
import SyncServer
import SyncStore

/// Staff accounts and the audit trail (`syncctl user`, `syncctl audit`). Passwords arrive
/// in clear over the group-restricted control socket, are hashed here and never logged,
/// echoed or kept; every account change is appended to the audit trail.
extension Daemon {
    /// Most records `audit-list` returns when no limit is given.
    static let defaultAuditLimit = 100
    /// Longest password accepted (PBKDF2 takes any length; this bounds the work).
    static let maximumPasswordLength = 1024

    /// Answers the staff and audit commands.
    func handleStaff(_ command: ControlCommand, actor: String) async throws -> ControlResponse {
        switch command {
        case .userAdd(let name, let displayName, let language, let password, let role):
            return try addUser(
                name: name, displayName: displayName, language: language, password: password,
                role: role ?? .clinician, actor: actor)
        case .userSetRole(let name, let role):
            var account = try existingAccount(name)
            guard account.role != role else { return .done("user \(account.name) is already \(role.rawValue)") }
            account.role = role
            try replica.accounts.save(account, actor: actor, action: "user-role")
            // After the save: a sign-in that read the old role opens no session (SessionStore.epoch).
            sessions.closeAll(account: account.name)
            logger.notice(
                "operator action", metadata: ["action": "user-role", "account": "\(account.name)", "role": "\(role)"])
            return .done("user \(account.name) is now \(role.rawValue); their open sessions are closed")
        case .userPasswd(let name, let password):
            var account = try existingAccount(name)
            account.passwordHash = try Self.hash(password)
            account.passwordChangedAt = FHIRInstant.format(Date().timeIntervalSince1970)
            try replica.accounts.save(account, actor: actor, action: "user-passwd")
            sessions.closeAll(account: account.name)
            logger.notice("operator action", metadata: ["action": "user-passwd", "account": "\(account.name)"])
            return .done("password of \(account.name) changed; their open sessions are closed")
        case .userSetDisabled(let name, let disabled):
            return try setDisabled(disabled, name: name, actor: actor)
        case .userList:
            return .users(try replica.accounts.all().map(StaffAccountSummary.init))
        case .userUnlock(let name):
            let account = try existingAccount(name)
            let addresses = sessions.unlock(account: account.name)
            logger.notice("operator action", metadata: ["action": "user-unlock", "account": "\(account.name)"])
            return .done(
                addresses == 0
                    ? "\(account.name) was not slowed down; nothing to clear"
                    : "\(account.name) may sign in again at once (slow-down cleared for \(addresses) address(es))")
        case .auditVerify:
            let result = try await verifyAuditTrailAndWitness()
            switch result {
            case .success(let count):
                logger.notice("operator action", metadata: ["action": "audit-verify", "records": "\(count)"])
            case .failure(let broken):
                logger.error(
                    "audit trail broken",
                    metadata: ["action": "audit-verify", "line": "\(broken.seq)", "reason": "\(broken.reason)"])
            }
            return .auditVerification(result)
        case .auditList(let query):
            let records = try replica.audit.records(since: query.since, newest: query.limit) {
                $0.matches(patient: query.patient, user: query.user)
            }
            logger.notice("operator action", metadata: ["action": "audit-list", "records": "\(records.count)"])
            return .audit(records)
        default:
            return .failure("\(command.name) is not a staff command")
        }
    }

    func addUser(
        name: String, displayName: String?, language: String?, password: String?, role: ViewerRole, actor: String
    ) throws -> ControlResponse {
        let name = try Self.accountName(name)
        let language = language ?? "fr"
        guard StaffAccount.languages.contains(language) else {
            throw StaffRefusal("language must be fr or en, not \"\(printableArgument(language))\"")
        }
        let displayName = Self.displayName(displayName) ?? name
        guard try replica.accounts.account(named: name) == nil else {
            throw StaffRefusal(
                "user \(name) already exists; change the password with `syncctl user passwd \(name)`")
        }
        let hash = try Self.hash(password)
        let now = FHIRInstant.format(Date().timeIntervalSince1970)
        let account = StaffAccount(
            name: name, displayName: displayName, language: language, role: role, passwordHash: hash, createdAt: now,
            passwordChangedAt: now)
        try replica.accounts.save(account, actor: actor, action: "user-add")
        logger.notice("operator action", metadata: ["action": "user-add", "account": "\(name)", "role": "\(role)"])
        return .done("user \(name) added (\(displayName), language \(language), role \(role.rawValue))")
    }

    func setDisabled(_ disabled: Bool, name: String, actor: String) throws -> ControlResponse {
        var account = try existingAccount(name)
        let action = disabled ? "user-disable" : "user-enable"
        guard account.disabled != disabled else {
            // Signed out even when already disabled: no session of a disabled account survives.
            if disabled { sessions.closeAll(account: account.name) }
            return .done("user \(account.name) is already \(disabled ? "disabled" : "enabled")")
        }
        account.disabled = disabled
        try replica.accounts.save(account, actor: actor, action: action)
        // After the save: a sign-in that read the account before it opens no session.
        if disabled { sessions.closeAll(account: account.name) }
        logger.notice("operator action", metadata: ["action": "\(action)", "account": "\(account.name)"])
        return .done(
            disabled
                ? "user \(account.name) disabled; their open sessions are closed"
                : "user \(account.name) enabled")
    }

    func existingAccount(_ name: String?) throws -> StaffAccount {
        let name = try Self.accountName(name)
        guard let account = try replica.accounts.account(named: name) else {
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
    ControlRequestError.printable(text, limit: limit)
}
