import Foundation
import HTTPTypes
import Hummingbird
import SyncEngine
import SyncModel
import SyncStore

/// Signing in and out. A failed sign-in says the same thing whatever the cause and takes
/// as long (an unknown account is checked against a decoy hash); attempts are admitted and
/// counted before the password is hashed, per (account, address) and per address
/// (``LoginThrottle``), and failures are in the audit trail.
extension WebViewer {
    /// A hash of nothing anyone knows, with the real cost: unknown accounts take as long.
    static let decoyHash =
        "pbkdf2-sha256$\(PasswordHash.rounds)$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    func loginPage(_ request: Request) -> Response {
        if signedIn(request) != nil { return WebResponse.redirect("/patients") }
        let l10n = Localization(WebLanguage(acceptLanguage: request.headers[.acceptLanguage]))
        return loginForm(.ok, l10n: l10n)
    }

    /// The sign-in page with a fresh CSRF token, in the page and in its cookie.
    func loginForm(
        _ status: HTTPResponse.Status, l10n: Localization, message: LoginPage.Message? = nil, name: String = "",
        extra: [(HTTPField.Name, String)] = []
    ) -> Response {
        let token = SessionStore.randomToken()
        return WebResponse.html(
            status, LoginPage.render(l10n: l10n, message: message, name: name, csrf: token),
            extra: extra + [(.setCookie, WebSession.setLoginCookie(token: token))])
    }

    func login(_ request: Request, address: String) async -> Response {
        let l10n = Localization(WebLanguage(acceptLanguage: request.headers[.acceptLanguage]))
        let form: WebForm
        do {
            form = WebForm(encoded: String(buffer: try await request.body.collect(upTo: 16 * 1024)))
        } catch {
            return WebResponse.text(.contentTooLarge, l10n(.badRequest))
        }
        let name = (form["name"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        let password = form["password"] ?? ""
        // Login CSRF: the form must carry the token of the sign-in cookie this browser got.
        let cookies = request.headers[values: .cookie].joined(separator: "; ")
        let expected = WebSession.token(cookieHeader: cookies, named: WebSession.loginCookieName) ?? ""
        guard WebSession.csrfMatches(form["csrf"], expected: expected) else {
            logger.notice("web sign-in refused: missing or wrong sign-in form token")
            return loginForm(.forbidden, l10n: l10n, message: .expired, name: name)
        }
        let now = now()
        // Admitted (and counted) before the password is hashed; at most two hashes at once.
        let admission = dependencies.sessions.logins.withLock {
            $0.admit(account: String(name.prefix(64)), address: address, now: now)
        }
        let ticket: LoginThrottle.Ticket
        switch admission {
        case .admitted(let admitted):
            ticket = admitted
        case .wait(let wait):
            let seconds = Int(wait.rounded(.up))
            logger.notice("web sign-in throttled", metadata: ["retry_after_s": "\(seconds)"])
            return loginForm(
                .tooManyRequests, l10n: l10n, message: .throttled(seconds: seconds), name: name,
                extra: [(.retryAfter, String(seconds))])
        case .busy:
            return loginForm(
                .tooManyRequests, l10n: l10n, message: .throttled(seconds: 1), name: name, extra: [(.retryAfter, "1")])
        }
        let account: StaffAccount?
        let epoch = StaffAccount.isValidName(name) ? dependencies.sessions.epoch(of: name) : 0
        do {
            account = StaffAccount.isValidName(name) ? try dependencies.replica.accounts.account(named: name) : nil
        } catch {
            dependencies.sessions.logins.withLock { $0.finish(ticket, succeeded: false, now: now) }
            logger.error("web sign-in: accounts unreadable", metadata: ["reason": "\(error)"])
            return WebResponse.text(.internalServerError, l10n(.readFailed))
        }
        let matches = await Self.verify(password, against: account?.passwordHash ?? Self.decoyHash)
        guard let account, matches, !account.disabled else {
            dependencies.sessions.logins.withLock { $0.finish(ticket, succeeded: false, now: now) }
            logger.notice("web sign-in refused")
            do {
                try await dependencies.access.record(
                    actor: StaffAccount.isValidName(name) ? name : "unknown account", action: "sign-in-failed",
                    patient: nil, target: "web viewer", detail: "from \(address)")
            } catch {
                logger.error("failed sign-in not recorded", metadata: ["reason": "\(error)"])
            }
            return loginForm(.unauthorized, l10n: l10n, message: .failed, name: name)
        }
        dependencies.sessions.logins.withLock { $0.finish(ticket, succeeded: true, now: now) }
        // A new session every time (a token planted before sign-in is worth nothing).
        dependencies.sessions.close(WebSession.token(cookieHeader: cookies))
        guard let token = dependencies.sessions.open(account: account, now: now, epoch: epoch) else {
            // The account was changed (role, password, disabled) while its password was checked.
            logger.notice("web sign-in raced an account change; refused")
            return loginForm(.unauthorized, l10n: l10n, message: .failed, name: name)
        }
        do {
            try await dependencies.access.record(
                actor: account.name, action: "sign-in", patient: nil, target: "web viewer")
        } catch {
            dependencies.sessions.close(token)
            logger.error("web sign-in not recorded; refused", metadata: ["reason": "\(error)"])
            return WebResponse.text(.internalServerError, l10n(.auditFailed))
        }
        logger.info("web sign-in")
        return WebResponse.redirect("/patients", extra: [(.setCookie, WebSession.setCookie(token: token))])
    }

    func logout(_ request: Request, _ signed: Signed) async -> Response {
        switch await checkedForm(request, signed) {
        case .refused(let response): return response
        case .value: break
        }
        dependencies.sessions.close(signed.token)
        do {
            try await dependencies.access.record(
                actor: signed.session.account, action: "sign-out", patient: nil, target: "web viewer")
        } catch {
            logger.error("web sign-out not recorded", metadata: ["reason": "\(error)"])
        }
        return WebResponse.redirect("/login", extra: [(.setCookie, WebSession.clearCookie())])
    }

    /// PBKDF2 (about 0.3 s) off the server's threads.
    static func verify(_ password: String, against hash: String) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(returning: PasswordHash.verify(password, against: hash))
            }
        }
    }
}
