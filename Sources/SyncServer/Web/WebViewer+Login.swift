import Foundation
import HTTPTypes
import Hummingbird
import SyncEngine
import SyncModel
import SyncStore

/// Signing in and out. A failed sign-in says the same thing whatever the cause and takes
/// as long (an unknown account is checked against a decoy hash); failures are throttled per
/// account and per client address, and the throttle is asked before the password is.
extension WebViewer {
    /// A hash of nothing anyone knows, with the real cost: unknown accounts take as long.
    static let decoyHash =
        "pbkdf2-sha256$\(PasswordHash.rounds)$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    func loginPage(_ request: Request) -> Response {
        if signedIn(request) != nil { return WebResponse.redirect("/patients") }
        let l10n = Localization(WebLanguage(acceptLanguage: request.headers[.acceptLanguage]))
        return WebResponse.html(.ok, LoginPage.render(l10n: l10n))
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
        let keys = ["account:" + String(name.prefix(64)), "address:" + address]
        let now = now()
        let wait = throttle.withLock { throttle in keys.compactMap { throttle.retryAfter($0, now: now) }.max() }
        if let wait {
            let seconds = Int(wait.rounded(.up))
            logger.notice("web sign-in throttled", metadata: ["retry_after_s": "\(seconds)"])
            return WebResponse.html(
                .tooManyRequests, LoginPage.render(l10n: l10n, message: .throttled(seconds: seconds), name: name),
                extra: [(.retryAfter, String(seconds))])
        }
        let account: StaffAccount?
        do {
            account = StaffAccount.isValidName(name) ? try dependencies.replica.accounts.account(named: name) : nil
        } catch {
            logger.error("web sign-in: accounts unreadable", metadata: ["reason": "\(error)"])
            return WebResponse.text(.internalServerError, l10n(.readFailed))
        }
        let matches = await Self.verify(password, against: account?.passwordHash ?? Self.decoyHash)
        guard let account, matches, !account.disabled else {
            throttle.withLock { throttle in for key in keys { throttle.recordFailure(key, now: now) } }
            logger.notice("web sign-in refused")
            return WebResponse.html(.unauthorized, LoginPage.render(l10n: l10n, message: .failed, name: name))
        }
        throttle.withLock { $0.recordSuccess(keys[0]) }
        // A new session every time (a token planted before sign-in is worth nothing).
        let cookies = request.headers[values: .cookie].joined(separator: "; ")
        dependencies.sessions.close(WebSession.token(cookieHeader: cookies))
        let token = dependencies.sessions.open(account: account, now: now)
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
